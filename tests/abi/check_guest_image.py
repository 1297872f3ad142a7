#!/usr/bin/env python3
"""Check that a guest image is what a Xen domain builder accepts: an x86-64 ELF executable whose
"Xen" notes (numbers from hypercall-spec) name the guest, the loader and the Xen version, and whose
ENTRY, HYPERCALL_PAGE and VIRT_BASE/PADDR_OFFSET agree with its program headers.

    check_guest_image.py IMAGE [--max-size BYTES]
"""

import argparse
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hypercall-spec"))
from specgen.loader import load  # noqa: E402

PT_LOAD, PT_NOTE, PF_X = 1, 4, 1
PAGE = 4096


def program_headers(image):
    if image[:4] != b"\x7fELF" or image[4] != 2 or image[5] != 1:
        raise ValueError("not a little-endian ELF64 file")
    e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIQQ", image, 16)
    if e_type != 2 or e_machine != 62:
        raise ValueError(f"not an x86-64 executable (type {e_type}, machine {e_machine})")
    e_phentsize, e_phnum = struct.unpack_from("<HH", image, 54)
    headers = [struct.unpack_from("<IIQQQQQQ", image, e_phoff + i * e_phentsize) for i in range(e_phnum)]
    return e_entry, headers


def xen_notes(image, headers):
    notes = {}
    for p_type, _, p_offset, _, _, p_filesz, _, _ in headers:
        if p_type != PT_NOTE:
            continue
        position, end = p_offset, p_offset + p_filesz
        while position + 12 <= end:
            namesz, descsz, kind = struct.unpack_from("<III", image, position)
            name_start = position + 12
            desc_start = name_start + (namesz + 3) // 4 * 4
            if image[name_start:name_start + namesz] == b"Xen\0":
                notes[kind] = image[desc_start:desc_start + descsz]
            position = desc_start + (descsz + 3) // 4 * 4
    return notes


def check(path, max_size):
    spec = load(Path(__file__).resolve().parents[2] / "hypercall-spec" / "spec")
    note = {name: spec.constants[f"XEN_ELFNOTE_{name}"].value
            for name in ("GUEST_OS", "XEN_VERSION", "LOADER", "ENTRY", "HYPERCALL_PAGE", "VIRT_BASE",
                         "PADDR_OFFSET")}
    image = Path(path).read_bytes()
    entry, headers = program_headers(image)
    notes = xen_notes(image, headers)
    problems = []

    def string(name):
        return notes.get(note[name], b"").rstrip(b"\0").decode("ascii", "replace")

    def number(name):
        value = notes.get(note[name])
        return struct.unpack("<Q", value)[0] if value is not None and len(value) == 8 else None

    if not string("GUEST_OS"):
        problems.append("no GUEST_OS note")
    if string("XEN_VERSION") != "xen-3.0":
        problems.append(f"XEN_VERSION is '{string('XEN_VERSION')}', not 'xen-3.0'")
    if string("LOADER") != "generic":
        problems.append(f"LOADER is '{string('LOADER')}', not 'generic'")
    if number("ENTRY") != entry:
        problems.append(f"ENTRY note {number('ENTRY')} differs from e_entry {entry:#x}")
    virt_base, paddr_offset = number("VIRT_BASE") or 0, number("PADDR_OFFSET") or 0
    loads = [h for h in headers if h[0] == PT_LOAD]
    for _, flags, _, vaddr, paddr, _, _, _ in loads:
        if vaddr - paddr != virt_base - paddr_offset:
            problems.append(f"segment at {vaddr:#x} is loaded at {paddr:#x}, against VIRT_BASE {virt_base:#x} "
                            f"and PADDR_OFFSET {paddr_offset:#x}")
    page = number("HYPERCALL_PAGE")
    executable = [h for h in loads if h[1] & PF_X]
    if page is None or page % PAGE or not any(h[3] <= page and page + PAGE <= h[3] + h[5] for h in executable):
        problems.append(f"HYPERCALL_PAGE {page} is not a whole page inside an executable segment")
    if max_size and len(image) > max_size:
        problems.append(f"image is {len(image)} bytes, over the {max_size} allowed")
    for problem in problems:
        print(f"FAIL {path}: {problem}")
    if not problems:
        print(f"{path}: {len(notes)} Xen notes, entry {entry:#x}, hypercall page {page:#x}, "
              f"VIRT_BASE {virt_base:#x}, {len(image)} bytes")
    return 1 if problems else 0


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("--max-size", type=int, default=0)
    options = parser.parse_args(argv)
    try:
        return check(options.image, options.max_size)
    except (OSError, ValueError, struct.error) as error:
        print(f"FAIL {options.image}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
