#!/usr/bin/env python3
"""Prepare a boot bundle of Debian's own Linux kernel, unmodified, as a PV domain.

    prepare_linux.py --bundle-tool PVKIT_BUNDLE --work DIR --out BUNDLE [--mem MIB]
                     [--blkback BLKBACK_ELF --disk-out DISK_BUNDLE]

Downloads (apt-get download: Debian packages, nothing else) the kernel that linux-image-amd64
depends on and busybox-static, unpacks them, makes an initramfs whose /init prints a line from
user space, reads a line from the console and powers off, and writes a boot bundle with
pvkit-bundle (which unwraps the bzImage and checks the kernel as the hypervisor will). The
packages stay in DIR for the next run.

With --blkback, also writes DISK_BUNDLE: pvkit's blkback example serving a 4 MiB RAM disk, and the
same Linux with that disk as xvda, whose /init loads Debian's xen-blkfront module, writes 1 MiB of
random bytes to /dev/xvda, drops its caches, reads them back and compares, then powers off.
"""

import argparse
import glob
import os
import re
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cmake"))
from debian_packages import download, unpack  # noqa: E402

INIT = """#!/bin/sh
/bin/busybox echo "pvkit: hello from Linux user space"
/bin/busybox uname -sr
/bin/busybox date -u +"pvkit: the date is %Y-%m-%d"
/bin/busybox echo "pvkit: type a line"
read line
/bin/busybox echo "pvkit: read [$line]"
/bin/busybox poweroff -f
"""

DISK_INIT = """#!/bin/sh
b=/bin/busybox
$b mkdir -p /proc /sys
$b mount -t proc proc /proc
$b mount -t sysfs sysfs /sys
$b insmod /xen-blkfront.ko || $b echo "pvkit: insmod xen-blkfront failed"
n=0
while [ ! -e /sys/block/xvda ] && [ $n -lt 100 ]; do $b usleep 100000; n=$((n + 1)); done
$b echo "pvkit: xvda has $($b cat /sys/block/xvda/size) sectors, read-only $($b cat /sys/block/xvda/ro)"
$b mknod /dev/xvda b 202 0
$b mknod /dev/urandom c 1 9
$b dd if=/dev/urandom of=/written bs=4096 count=256 2>/dev/null
$b dd if=/written of=/dev/xvda bs=4096 conv=fsync 2>/dev/null
$b blockdev --flushbufs /dev/xvda
$b echo 3 > /proc/sys/vm/drop_caches
$b dd if=/dev/xvda of=/read bs=4096 count=256 2>/dev/null
if $b cmp /written /read; then
    $b echo "pvkit: 1 MiB written to xvda and read back, the same bytes"
else
    $b echo "pvkit: xvda gave back other bytes"
fi
$b poweroff -f
"""


def kernel_package():
    """The versioned kernel package linux-image-amd64 depends on."""
    depends = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True).stdout
    match = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)\b", depends)
    if match is None:
        sys.exit("prepare_linux: apt knows no linux-image-amd64 (run `apt-get update` once, as root)")
    return match.group(1)


def cpio_newc(entries):
    """An uncompressed newc cpio archive of (name, mode, data) entries, as the kernel unpacks it."""
    out = bytearray()
    for number, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = [number, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        out += b"070701" + b"".join(b"%08X" % value for value in fields) + encoded
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle-tool", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mem", default="128")
    parser.add_argument("--blkback")
    parser.add_argument("--disk-out")
    options = parser.parse_args(argv)
    if bool(options.blkback) != bool(options.disk_out):
        parser.error("--blkback and --disk-out go together")
    os.makedirs(options.work, exist_ok=True)

    kernel_root = os.path.join(options.work, "kernel")
    busybox_root = os.path.join(options.work, "busybox")
    unpack(download(kernel_package(), options.work), kernel_root)
    unpack(download("busybox-static", options.work), busybox_root)
    kernels = glob.glob(os.path.join(kernel_root, "boot", "vmlinuz-*"))
    if len(kernels) != 1:
        sys.exit(f"prepare_linux: expected one kernel in {kernel_root}/boot, found {kernels}")

    with open(os.path.join(busybox_root, "bin", "busybox"), "rb") as busybox:
        busybox_binary = busybox.read()
    directory, executable, link = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, stat.S_IFLNK | 0o777
    base = [("bin", directory, b""), ("bin/busybox", executable, busybox_binary), ("bin/sh", link, b"busybox"),
            ("dev", directory, b"")]
    initramfs = os.path.join(options.work, "initramfs.cpio")
    with open(initramfs, "wb") as archive:
        archive.write(cpio_newc(base + [("init", executable, INIT.encode())]))

    subprocess.run([options.bundle_tool, "create", options.out, kernels[0], "--name", "linux", "--mem", options.mem,
                    "--vcpus", "2", "--ramdisk", initramfs, "--cmdline", "console=hvc0 rdinit=/init"], check=True)
    print(f"prepare_linux: {options.out}: {os.path.basename(kernels[0])} with a busybox initramfs, {options.mem} MiB")

    if options.blkback:
        modules = glob.glob(os.path.join(kernel_root, "lib", "modules", "*", "kernel", "drivers", "block",
                                         "xen-blkfront.ko"))
        if len(modules) != 1:
            sys.exit(f"prepare_linux: expected one xen-blkfront.ko in {kernel_root}, found {modules}")
        with open(modules[0], "rb") as module:
            blkfront = module.read()
        disk_initramfs = os.path.join(options.work, "disk-initramfs.cpio")
        with open(disk_initramfs, "wb") as archive:
            archive.write(cpio_newc(base + [("xen-blkfront.ko", stat.S_IFREG | 0o644, blkfront),
                                            ("init", executable, DISK_INIT.encode())]))
        subprocess.run([options.bundle_tool, "create", options.disk_out, options.blkback, "--name", "disk",
                        "--mem", "16", kernels[0], "--name", "linux", "--mem", options.mem, "--ramdisk", disk_initramfs,
                        "--cmdline", "console=hvc0 rdinit=/init",
                        "--disk", "vdev=xvda, backend=disk, access=rw, target=ram:4M"], check=True)
        print(f"prepare_linux: {options.disk_out}: blkback serving xvda to the same kernel")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
