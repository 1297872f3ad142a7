#!/usr/bin/env python3
"""Prepare a boot bundle of Debian's PV GRUB, unmodified, as a PV domain.

    prepare_grub.py --bundle-tool PVKIT_BUNDLE --work DIR --out BUNDLE [--mem MIB]

Downloads grub-xen-host (apt-get download: Debian packages, nothing else), whose
grub-x86_64-xen.bin is GRUB 2 built as a 64-bit Xen PV kernel (what Xen hosts boot guests'
own kernels with), and writes a boot bundle with pvkit-bundle, which checks the image as the
hypervisor will. The package stays in DIR for the next run.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cmake"))
from debian_packages import download, unpack  # noqa: E402


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle-tool", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mem", default="32")
    options = parser.parse_args(argv)
    os.makedirs(options.work, exist_ok=True)

    root = os.path.join(options.work, "grub-xen-host")
    unpack(download("grub-xen-host", options.work), root)
    image = os.path.join(root, "usr", "lib", "grub-xen", "grub-x86_64-xen.bin")
    if not os.path.isfile(image):
        sys.exit(f"prepare_grub: no {image} in grub-xen-host")
    subprocess.run([options.bundle_tool, "create", options.out, image, "--name", "grub", "--mem", options.mem],
                   check=True)
    print(f"prepare_grub: {options.out}: grub-x86_64-xen.bin, {options.mem} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
