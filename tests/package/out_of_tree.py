#!/usr/bin/env python3
"""Installs pvkit from the images build into a fresh prefix, builds tests/package/sample (a kernel
of its own) against it with find_package(pvkit), and boots the result under the reference
hypervisor.

    out_of_tree.py --images BUILD/images --hypervisor HV.elf --work DIR
"""
import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(*command):
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="the freestanding images build directory")
    parser.add_argument("--hypervisor", required=True, help="the reference hypervisor image")
    parser.add_argument("--work", required=True, help="a directory to install and build in (emptied first)")
    options = parser.parse_args()

    shutil.rmtree(options.work, ignore_errors=True)
    prefix = os.path.join(options.work, "prefix")
    build = os.path.join(options.work, "build")
    run("cmake", "--install", options.images, "--prefix", prefix)
    run("cmake", "-S", os.path.join(HERE, "sample"), "-B", build, "-G", "Ninja",
        f"-DCMAKE_TOOLCHAIN_FILE={prefix}/lib/cmake/pvkit/toolchain-x86_64-freestanding.cmake",
        f"-DCMAKE_PREFIX_PATH={prefix}")
    run("cmake", "--build", build)
    kernel = os.path.join(build, "out_of_tree_kernel.elf")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "cmake", "qemu_boot.py"), options.hypervisor,
                             "--initrd", kernel, "--status", "0",
                             "--expect", r"\(dom1\) out-of-tree kernel: 4096 pages, magic xen-3\.0-x86_64, slept at least 5 ms",
                             "--expect", "all domains have stopped: dom1 powered off"])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
