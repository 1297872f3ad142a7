#!/usr/bin/env python3
"""Generate pvkit's ABI headers, dispatcher, ABI check and reference from hypercall-spec/spec.

    generate.py --out DIR           write every output under DIR (unchanged files are not touched)
    generate.py --lint              check the spec only
    generate.py --check-docs FILE   fail unless FILE equals the generated reference
    generate.py --write-docs FILE   write the reference to FILE (docs/hypercalls.md)
Problems in the spec are reported as `file:line: message`, with exit status 1.
"""

import argparse
import difflib
import sys
from pathlib import Path

from specgen.checks import emit_abi_check
from specgen.dispatch import emit_dispatch
from specgen.docs import emit_docs
from specgen.headers import emit_c_header, emit_cxx_abi, emit_cxx_hypercalls
from specgen.loader import load
from specgen.model import SpecError

HERE = Path(__file__).resolve().parent


def outputs(spec):
    return {
        "include/pvkit/xen-abi.h": emit_c_header(spec),
        "include/pvkit/abi.hpp": emit_cxx_abi(spec),
        "include/pvkit/hypercalls.hpp": emit_cxx_hypercalls(spec),
        "include/hv/hypercall_dispatch.hpp": emit_dispatch(spec),
        "abi_check.c": emit_abi_check(spec),
        "hypercalls.md": emit_docs(spec),
    }


def write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec-dir", default=HERE / "spec", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--lint", action="store_true")
    parser.add_argument("--check-docs", type=Path)
    parser.add_argument("--write-docs", type=Path)
    options = parser.parse_args(argv)
    if not (options.out or options.lint or options.check_docs or options.write_docs):
        parser.error("say --out DIR, --lint, --check-docs FILE or --write-docs FILE")
    try:
        spec = load(options.spec_dir)
    except SpecError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    if options.lint:
        print(f"spec: {len(spec.hypercalls)} hypercalls, {len(spec.subop_groups())} sub-op groups, "
              f"{len(spec.aggregates)} structures, {len(spec.constants)} constants: no problems")
    if options.out:
        for relative, text in outputs(spec).items():
            write_if_changed(options.out / relative, text)
    if options.write_docs:
        write_if_changed(options.write_docs, emit_docs(spec))
    if options.check_docs:
        fresh = emit_docs(spec).splitlines(keepends=True)
        committed = options.check_docs.read_text(encoding="utf-8").splitlines(keepends=True) \
            if options.check_docs.exists() else []
        if fresh != committed:
            sys.stderr.writelines(difflib.unified_diff(committed, fresh, str(options.check_docs), "generated"))
            print(f"{options.check_docs} is stale; refresh it with: python3 hypercall-spec/generate.py "
                  f"--write-docs {options.check_docs}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
