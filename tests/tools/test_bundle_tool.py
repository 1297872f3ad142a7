#!/usr/bin/env python3
"""pvkit-bundle on real images: `check` accepts the example guest and refuses, in one line that
starts with the file name, what the hypervisor would refuse; `create` writes bundles that the
hypervisor's reader (bundle_readback, libhv compiled for the host) and an independent cpio reader
below both read back as asked. bzImages are built here around the example guest, compressed with
Python's gzip and lzma modules and the zstd command (Debian's zstd), and must be unwrapped to the
guest's exact bytes or refused.

Usage: test_bundle_tool.py [-v] --tool PVKIT-BUNDLE --readback BUNDLE_READBACK --guest HELLO.ELF
                           --hypervisor PVKIT-HV.ELF
"""
import argparse
import bz2
import gzip
import lzma
import os
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

ARGS = None


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def run(*args):
    return subprocess.run([ARGS.tool, *map(str, args)], capture_output=True, text=True, timeout=60)


def read_newc(data):
    """The entries of a newc archive as (name, mode, data, data_offset), read without libhv."""
    entries = []
    position = 0
    while True:
        header = data[position:position + 110]
        assert len(header) == 110, f"truncated header at {position}"
        assert header[:6] == b"070701", f"bad magic at {position}"
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, filesize, namesize = fields[1], fields[6], fields[11]
        name_end = position + 110 + namesize
        name = data[position + 110:name_end - 1].decode()
        assert data[name_end - 1] == 0
        data_offset = (name_end + 3) & ~3
        if name == "TRAILER!!!":
            return entries, data_offset
        entries.append((name, mode, data[data_offset:data_offset + filesize], data_offset))
        position = (data_offset + filesize + 3) & ~3


def elf_without_notes():
    """A minimal x86-64 ELF executable with one PT_LOAD and no notes at all."""
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x400000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, 0x100, 0x100, 0x1000)
    body = header + load
    return body + bytes(0x100 - len(body))


def compressed(data, compression):
    """`data` compressed as Linux's build compresses vmlinux (scripts/Makefile.lib): gzip as it is,
    the others followed by the uncompressed size in 4 little-endian bytes."""
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "xz":
        stream = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    elif compression == "lzma":
        stream = lzma.compress(data, format=lzma.FORMAT_ALONE)
    elif compression == "zstd":
        stream = subprocess.run(["zstd", "-q", "-c", "-19"], input=data, capture_output=True, check=True).stdout
    elif compression == "bzip2":
        stream = bz2.compress(data)
    else:
        raise ValueError(compression)
    return stream + struct.pack("<I", len(data))


def bzimage(payload, setup_sects=1, version=0x020F, payload_offset=None, payload_length=None):
    """A bzImage laid out as Linux's build lays one out, reduced to what pvkit-bundle reads: the
    boot sector with the setup header, setup_sects more sectors of setup (0 meaning 4), then the
    protected-mode part: a stand-in for the decompressor, the payload, and a tail after it."""
    setup = bytearray((setup_sects or 4) * 512 + 512)
    setup[0x1F1] = setup_sects
    setup[0x1FE:0x200] = b"\x55\xaa"
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    decompressor = b"\xcc" * 0x300
    struct.pack_into("<II", setup, 0x248, len(decompressor) if payload_offset is None else payload_offset,
                     len(payload) if payload_length is None else payload_length)
    return bytes(setup) + decompressor + payload + b"\xcc" * 0x40


def gzip_of_zeros(size):
    """A gzip stream of `size` zero bytes, made without holding them."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1 << 20)
    parts = [encoder.compress(chunk) for _ in range(size >> 20)]
    return b"".join(parts) + encoder.compress(bytes(size & ((1 << 20) - 1))) + encoder.flush()


class ToolTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def file(self, name, content):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    def refused(self, result, path, *fragments):
        """Exit status 1 and one line on stderr, starting with `path`, holding each fragment."""
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stdout, "")
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith(str(path) + ":"), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])


class Check(ToolTest):
    def test_the_example_guest_is_accepted(self):
        result = run("check", ARGS.guest)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith(f"{ARGS.guest}: ok, a Xen PV kernel that fits 16 MiB"), result.stdout)
        self.assertIn('GUEST_OS "pvkit", GUEST_VERSION "0.1"', result.stdout)  # libguest's default names
        self.assertIn('XEN_VERSION "xen-3.0"', result.stdout)
        self.assertIn("hypercall page 0x", result.stdout)
        self.assertIn("of 4096 pages mapped", result.stdout)

    def test_a_guest_names_itself_in_its_notes(self):
        result = run("check", ARGS.named_guest)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('notes: GUEST_OS "tinyos", GUEST_VERSION "0.1", XEN_VERSION "xen-3.0"', result.stdout)

    def test_options_reach_the_plan(self):
        ramdisk = self.file("initrd", bytes(10000))
        result = run("check", "--mem", 8, ARGS.guest, "--ramdisk", ramdisk, "--cmdline", "quiet", "--privileged")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("fits 8 MiB (privileged)", result.stdout)
        self.assertRegex(result.stdout, r"ramdisk \d+\+3,")  # 10000 bytes: 3 pages
        self.assertIn("of 2048 pages mapped", result.stdout)

    def test_a_missing_file(self):
        missing = os.path.join(self.dir, "missing.elf")
        self.refused(run("check", missing), missing, "cannot read", "No such file or directory")

    def test_a_directory(self):
        self.refused(run("check", self.dir), self.dir, "cannot read")

    def test_a_file_that_is_not_elf(self):
        path = self.file("notes.txt", b"not an ELF file at all, but long enough to hold an ELF header" * 2)
        self.refused(run("check", path), path, "not a kernel the hypervisor can load", "not an ELF file")

    def test_an_elf_file_without_xen_notes(self):
        path = self.file("plain.elf", elf_without_notes())
        self.refused(run("check", path), path, "no Xen ELF notes")

    def test_the_hypervisor_image_is_not_a_pv_kernel(self):
        # A PVH image: a PHYS32_ENTRY note, none of the notes a PV kernel has.
        self.refused(run("check", ARGS.hypervisor), ARGS.hypervisor, "not a kernel the hypervisor can load")

    def test_too_little_memory(self):
        self.refused(run("check", ARGS.guest, "--mem", 1), ARGS.guest,
                     "cannot be built with 1 MiB", "memory is too small", "needs at least 4 MiB")
        big = self.file("big-initrd", bytes(5 << 20))
        self.refused(run("check", ARGS.guest, "--mem", 7, "--ramdisk", big), ARGS.guest,
                     "cannot be built with 7 MiB and ramdisk", "needs at least 8 MiB")
        self.assertEqual(run("check", ARGS.guest, "--mem", 8, "--ramdisk", big).returncode, 0)

    def test_a_missing_ramdisk_is_named(self):
        missing = os.path.join(self.dir, "initrd")
        self.refused(run("check", ARGS.guest, "--ramdisk", missing), missing, "cannot read")

    def test_a_command_line_too_long(self):
        self.refused(run("check", ARGS.guest, "--cmdline", "x" * 1024), ARGS.guest, "longer than 1023 bytes")
        self.assertEqual(run("check", ARGS.guest, "--cmdline", "x" * 1023).returncode, 0)

    def test_usage_errors(self):
        for args in [(), ("check",), ("check", ARGS.guest, ARGS.guest), ("check", ARGS.guest, "--bogus"),
                     ("check", ARGS.guest, "--mem"), ("check", ARGS.guest, "--mem", "0"),
                     ("check", ARGS.guest, "--mem", "12k"), ("check", ARGS.guest, "--name", "x"),
                     ("frobnicate",), ("create",), ("create", "out.cpio"),
                     ("create", "out.cpio", "--mem", "8", ARGS.guest), ("create", "out.cpio", "--bogus"),
                     ("create", "out.cpio", ARGS.guest, "--mem", "8", "--mem", "9")]:
            with self.subTest(args=args):
                self.assertEqual(run(*args).returncode, 2)
        self.assertEqual(run("--help").returncode, 0)
        self.assertIn("create OUT.cpio DOMAIN...", run("--help").stdout)


class BzImage(ToolTest):
    COMPRESSIONS = ("gzip", "xz", "lzma", "zstd")

    def test_each_compression_is_unwrapped_to_the_elf(self):
        guest = read_bytes(ARGS.guest)
        plain = run("check", ARGS.guest)
        self.assertEqual(plain.returncode, 0, plain.stderr)
        for compression in self.COMPRESSIONS:
            with self.subTest(compression=compression):
                payload = compressed(guest, compression)
                path = self.file(f"hello-{compression}.bzImage", bzimage(payload))
                result = run("check", path)
                self.assertEqual(result.returncode, 0, result.stderr)
                lines = result.stdout.splitlines()
                self.assertEqual(lines[0], f"{path}: ok, a Xen PV kernel that fits 16 MiB")
                self.assertEqual(lines[1], f"  unwrapped from a bzImage: {compression} payload of "
                                           f"{len(payload)} bytes, ELF of {len(guest)} bytes")
                # The rest is what the ELF itself gives: notes, entry, layout.
                self.assertEqual(lines[2:], plain.stdout.splitlines()[1:])

    def test_four_setup_sectors_when_setup_sects_is_0(self):
        path = self.file("hello.bzImage", bzimage(compressed(read_bytes(ARGS.guest), "gzip"), setup_sects=0))
        result = run("check", path)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("unwrapped from a bzImage: gzip payload", result.stdout)

    def test_a_payload_outside_the_file(self):
        payload = compressed(read_bytes(ARGS.guest), "gzip")
        image = bzimage(payload, payload_offset=1 << 20)
        path = self.file("beyond.bzImage", image)
        self.refused(run("check", path), path, f"a bzImage whose payload ({len(payload)} bytes at offset "
                     f"{1024 + (1 << 20)}) lies outside the file ({len(image)} bytes)")
        longer = self.file("longer.bzImage", bzimage(payload, payload_length=len(payload) + 0x41))
        self.refused(run("check", longer), longer, "lies outside the file")
        fits = self.file("fits.bzImage", bzimage(payload, payload_length=len(payload) + 0x40))
        self.assertEqual(run("check", fits).returncode, 0)

    def test_a_boot_protocol_without_payload_fields(self):
        path = self.file("old.bzImage", bzimage(compressed(read_bytes(ARGS.guest), "gzip"), version=0x0206))
        self.refused(run("check", path), path,
                     "a bzImage of boot protocol 2.06, which does not say where its payload is")
        short = self.file("short.bzImage", bzimage(b"")[:0x24c])
        self.refused(run("check", short), short, "a bzImage that ends inside its setup header")

    def test_compressions_that_are_not_unwrapped(self):
        guest = read_bytes(ARGS.guest)
        for compression, payload in [("bzip2", compressed(guest, "bzip2")),
                                     ("lz4", bytes([0x02, 0x21, 0x4C, 0x18]) + bytes(100)),
                                     ("lzo", bytes([0x89, 0x4C, 0x5A, 0x4F, 0x00, 0x0D, 0x0A]) + bytes(100))]:
            with self.subTest(compression=compression):
                path = self.file(f"hello-{compression}.bzImage", bzimage(payload))
                self.refused(run("check", path), path,
                             f"a bzImage compressed with {compression}, which pvkit-bundle cannot unwrap")
        path = self.file("unknown.bzImage", bzimage(b"\x00\x01\x02\x03 no known magic"))
        self.refused(run("check", path), path,
                     "in no compression format pvkit-bundle knows (it starts 00 01 02 03")

    def test_a_truncated_payload(self):
        guest = read_bytes(ARGS.guest)
        for compression in self.COMPRESSIONS:
            for keep in (0.5, 0.95):
                with self.subTest(compression=compression, keep=keep):
                    payload = compressed(guest, compression)
                    path = self.file(f"cut-{compression}.bzImage", bzimage(payload[:int(len(payload) * keep)]))
                    self.refused(run("check", path), path, f"a bzImage whose {compression} payload is truncated")

    def test_a_corrupt_payload(self):
        guest = read_bytes(ARGS.guest)
        # lzma-alone has no check: a changed byte may decode to other bytes without an error.
        for compression in ("gzip", "xz", "zstd"):
            with self.subTest(compression=compression):
                payload = bytearray(compressed(guest, compression))
                middle = len(payload) // 2
                payload[middle:middle + 8] = bytes(b ^ 0x55 for b in payload[middle:middle + 8])
                path = self.file(f"bad-{compression}.bzImage", bzimage(bytes(payload)))
                self.refused(run("check", path), path, f"a bzImage whose {compression} payload is corrupt: ")

    def test_a_payload_that_is_not_elf(self):
        for compression in self.COMPRESSIONS:
            with self.subTest(compression=compression):
                payload = compressed(b"no ELF here\n" * 100, compression)
                path = self.file(f"text-{compression}.bzImage", bzimage(payload))
                self.refused(run("check", path), path,
                             f"a bzImage whose {compression} payload is not an ELF file once decompressed "
                             "(it starts 6e 6f 20 45 4c 46 20 68)")

    def test_an_elf_inside_that_is_not_a_pv_kernel(self):
        path = self.file("plain.bzImage", bzimage(compressed(elf_without_notes(), "xz")))
        self.refused(run("check", path), path, "not a kernel the hypervisor can load (the ELF unwrapped from "
                     "this bzImage's xz payload): no Xen ELF notes")

    def test_at_most_256_mib_are_decompressed(self):
        limit = 256 << 20
        path = self.file("zeros.bzImage", bzimage(gzip_of_zeros(limit)))
        self.refused(run("check", path), path,
                     "gzip payload is not an ELF file once decompressed (it starts 00 00")
        path = self.file("bomb.bzImage", bzimage(gzip_of_zeros(limit + 1)))
        self.refused(run("check", path), path, "a bzImage whose gzip payload decompresses to more than 256 MiB")


class Create(ToolTest):
    def readback(self, bundle):
        result = subprocess.run([ARGS.readback, bundle], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        domains = []
        for line in result.stdout.splitlines():
            fields, _, cmdline = line.partition(" cmdline=")
            domain = dict(field.split("=", 1) for field in fields.split(" "))
            domain["cmdline"] = cmdline
            domains.append(domain)
        return domains

    def file_at(self, archive, where):
        _, _, place = where.partition("@")
        offset, size = map(int, place.split("+"))
        self.assertEqual(offset % 4, 0)
        return archive[offset:offset + size]

    def test_a_bundle_reads_back_as_asked(self):
        guest = read_bytes(ARGS.guest)
        ramdisk = self.file("initrd.img", b"ramdisk bytes")
        os.mkdir(os.path.join(self.dir, "cfg"))
        # Another file called hello.elf, named by a configuration relative to its own directory.
        other_guest = os.path.join(self.dir, "cfg", "hello.elf")
        with open(other_guest, "wb") as f:
            f.write(guest)
        config = self.file("cfg/third.cfg", b'# from a file\nname = "third"\nkernel = "hello.elf"\n'
                                            b"memory = 12; vcpus = 2\non_crash = 'preserve'\n"
                                            b'cmdline = "tab\\there"\n')
        out = os.path.join(self.dir, "bundle.cpio")
        cmdline = 'console=hvc0 say="hi there" back\\slash'
        result = run("create", out, ARGS.guest, "--name", "first", "--mem", 8, "--ramdisk", ramdisk,
                     "--cmdline", cmdline, ARGS.guest, "--config", config, ARGS.guest, "--name", "dom0", "--privileged")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("wrote", result.stdout)
        archive = read_bytes(out)
        self.assertEqual(len(archive) % 512, 0)

        domains = self.readback(out)
        self.assertEqual([d["name"] for d in domains], ["first", "hello", "third", "dom0"])
        self.assertEqual([d["config"] for d in domains], [f"domains/{n}.cfg" for n in range(4)])
        self.assertEqual([d["memory"] for d in domains], ["8", "16", "12", "16"])
        self.assertEqual([d["vcpus"] for d in domains], ["1", "1", "2", "1"])
        self.assertEqual([d["privileged"] for d in domains], ["0", "0", "0", "1"])
        self.assertEqual([d["on_crash"] for d in domains], ["destroy", "destroy", "preserve", "destroy"])
        self.assertEqual(domains[0]["cmdline"], cmdline)
        self.assertEqual(domains[2]["cmdline"], "tab\there")
        for domain in domains:
            self.assertEqual(self.file_at(archive, domain["kernel"]), guest)
        self.assertEqual(self.file_at(archive, domains[0]["ramdisk"]), b"ramdisk bytes")
        # One stored copy per host file; the other hello.elf under another name.
        self.assertEqual(domains[0]["kernel"], domains[1]["kernel"])
        self.assertEqual(domains[0]["kernel"].partition("@")[0], "images/hello.elf")
        self.assertEqual(domains[2]["kernel"].partition("@")[0], "images/1-hello.elf")

        # The same archive through an independent newc reader, as cpio(1) or Linux would read it.
        entries, end = read_newc(archive)
        names = [name for name, _, _, _ in entries]
        self.assertEqual(names, ["domains"] + [f"domains/{n}.cfg" for n in range(4)] +
                         ["images", "images/hello.elf", "images/initrd.img", "images/1-hello.elf"])
        self.assertEqual(entries[0][1], 0o40755)
        self.assertEqual(entries[1][1], 0o100644)
        self.assertEqual(archive[end:], bytes(len(archive) - end))
        self.assertIn(b'cmdline = "console=hvc0 say=\\"hi there\\" back\\\\slash"\n', entries[1][2])
        self.assertIn(b'kernel = "images/1-hello.elf"\n', entries[3][2])

        # Equal inputs, equal bytes.
        again = os.path.join(self.dir, "again.cpio")
        run("create", again, ARGS.guest, "--name", "first", "--mem", 8, "--ramdisk", ramdisk,
            "--cmdline", cmdline, ARGS.guest, "--config", config, ARGS.guest, "--name", "dom0", "--privileged")
        self.assertEqual(read_bytes(again), archive)

    def test_disks_reach_the_bundle_with_their_backends(self):
        config = self.file("app.cfg", b'name = "app"\nkernel = "' + ARGS.guest.encode() + b'"\n'
                                      b"disk = [ 'ram:1M,,xvdb,backend=control',\n  'vdev=xvdc1, access=ro, backend=store, target=ram:2M' ]\n")
        out = os.path.join(self.dir, "bundle.cpio")
        result = run("create", out, ARGS.guest, "--name", "control", "--privileged", ARGS.guest, "--name", "store",
                     ARGS.guest, "--name", "first", "--disk", "vdev=xvda,backend=store,target=ram:4M",
                     "--disk", "ram:8M,raw,xvdb,r,backend=control", "--config", config)
        self.assertEqual(result.returncode, 0, result.stderr)
        domains = self.readback(out)
        self.assertEqual([d["disks"] for d in domains],
                         ["-", "-", "xvda:51712:rw:1:ram:4M,xvdb:51728:ro:0:ram:8M",
                          "xvdb:51728:rw:0:ram:1M,xvdc1:51745:ro:1:ram:2M"])

        quoted = os.path.join(self.dir, "quoted.cpio")
        result = run("create", quoted, ARGS.guest, "--name", "store", ARGS.guest, "--name", "app",
                     "--disk", 'vdev=xvda,backend=store,target=say"hi"')
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.readback(quoted)[1]["disks"], 'xvda:51712:rw:0:say"hi"')

        out = os.path.join(self.dir, "refused.cpio")
        self.refused(run("create", out, ARGS.guest, "--name", "store", ARGS.guest, "--name", "app",
                         "--disk", "ram:1M,,xvda,backend=nobody"), "app", "backend= names no other domain")
        self.refused(run("create", out, ARGS.guest, "--name", "store", ARGS.guest, "--name", "app",
                         "--disk", "ram:1M,,xvda"), ARGS.guest, "disk refused: no backend=")
        self.refused(run("create", out, ARGS.guest, "--name", "app", "--disk", "vdev=xvda,backend=app,target=t"),
                     "app", "backend= names no other domain")
        usage = run("create", out, ARGS.guest, "--disk", "ram:1M,,hda")
        self.assertEqual(usage.returncode, 2)
        self.assertIn("--disk 'ram:1M,,hda': vdev must be xvd", usage.stderr)
        bad = self.file("bad-disk.cfg", b'name = "x"\nkernel = "k"\ndisk = [ "ram:1M,qcow2,xvda" ]\n')
        self.refused(run("create", out, "--config", bad), bad + ":3", "disk refused: format must be raw")
        self.assertFalse(os.path.exists(out))

    def test_a_bzimage_is_stored_as_its_elf(self):
        guest = read_bytes(ARGS.guest)
        wrapped = self.file("hello.bzImage", bzimage(compressed(guest, "zstd")))
        out = os.path.join(self.dir, "bundle.cpio")
        result = run("create", out, wrapped, "--ramdisk", wrapped, ARGS.guest, "--name", "plain")
        self.assertEqual(result.returncode, 0, result.stderr)
        archive = read_bytes(out)
        domains = self.readback(out)
        self.assertEqual([d["name"] for d in domains], ["hello", "plain"])
        self.assertEqual(domains[0]["kernel"].partition("@")[0], "images/hello.bzImage")
        self.assertEqual(self.file_at(archive, domains[0]["kernel"]), guest)
        self.assertEqual(self.file_at(archive, domains[1]["kernel"]), guest)
        # A ramdisk is stored as it is, even when the same file is a kernel too.
        self.assertEqual(domains[0]["ramdisk"].partition("@")[0], "images/1-hello.bzImage")
        self.assertEqual(self.file_at(archive, domains[0]["ramdisk"]), read_bytes(wrapped))

        truncated = self.file("cut.bzImage", bzimage(compressed(guest, "xz")[:200]))
        out = os.path.join(self.dir, "refused.cpio")
        self.refused(run("create", out, ARGS.guest, truncated), truncated, "xz payload is truncated")
        self.assertFalse(os.path.exists(out))

    def test_nothing_is_written_when_a_domain_is_refused(self):
        out = os.path.join(self.dir, "bundle.cpio")
        plain = self.file("plain.elf", elf_without_notes())
        self.refused(run("create", out, ARGS.guest, plain), plain, "no Xen ELF notes")
        self.refused(run("create", out, ARGS.guest, "--mem", 2), ARGS.guest, "cannot be built with 2 MiB")
        self.refused(run("create", out, ARGS.guest, ARGS.guest), ARGS.guest, "both named 'hello'")
        self.refused(run("create", out, ARGS.guest, "--name", "two words"), ARGS.guest, "name must be")
        self.refused(run("create", out, ARGS.guest, "--vcpus", 33), ARGS.guest, "out of range")
        self.refused(run("create", out, ARGS.guest, "--cmdline", "bell\x01"), ARGS.guest, "control character")
        bad = self.file("bad.cfg", b'name = "x"\nkernel = "k"\nextra = "quiet"\n')
        self.refused(run("create", out, "--config", bad), bad + ":3", "unknown key")
        incomplete = self.file("incomplete.cfg", b'name = "x"\n')
        self.refused(run("create", out, "--config", incomplete), incomplete, "no `kernel`")
        nokernel = self.file("nokernel.cfg", b'name = "x"\nkernel = "absent.elf"\n')
        absent = os.path.join(self.dir, "absent.elf")
        self.refused(run("create", out, "--config", nokernel), absent, "cannot read")
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out + ".tmp"))


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--readback", required=True)
    parser.add_argument("--guest", required=True)
    parser.add_argument("--named-guest", required=True, help="a guest image with PVK_GUEST_NOTES(\"tinyos\", \"0.1\")")
    parser.add_argument("--hypervisor", required=True)
    parser.add_argument("-v", action="store_true")
    ARGS = parser.parse_args()
    unittest.main(argv=[sys.argv[0]] + (["-v"] if ARGS.v else []))


if __name__ == "__main__":
    main()
