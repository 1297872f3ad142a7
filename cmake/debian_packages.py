"""Debian packages for the third-party kernel tests: fetched with apt-get download (Debian's
archive, nothing else), kept in a work directory for the next run, and unpacked there."""

import glob
import os
import subprocess
import sys


def download(package, work):
    """The .deb of `package` in `work`, downloaded if it is not there yet."""
    found = glob.glob(os.path.join(work, f"{package}_*.deb"))
    if not found:
        subprocess.run(["apt-get", "download", package], cwd=work, check=True)
        found = glob.glob(os.path.join(work, f"{package}_*.deb"))
    if len(found) != 1:
        sys.exit(f"debian_packages: expected one {package} package in {work}, found {found}")
    return found[0]


def unpack(deb, into):
    subprocess.run(["dpkg-deb", "-x", deb, into], check=True)
