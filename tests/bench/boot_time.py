#!/usr/bin/env python3
"""Wall time of `./pvkit run hello` against a bare-metal hello kernel, in the same run.

    boot_time.py [--build DIR] [--runs N] [--mem MIB] [--timeout S]

Boots, in turn, N times each (after one untimed round):
  hv+hello   the hypervisor with the hello guest's boot bundle as its initrd, as ./pvkit run hello
  hv alone   the hypervisor with no initrd (it stops after taking over memory)
  bare       tests/bench/baremetal_hello, entered the same way (PVH note) by the same QEMU
with cmake/qemu_boot.py's command line (same machine, firmware and memory). Only the QEMU process
is timed. Every boot's console lines and exit status are checked: a failed boot stops the
benchmark, it is never a sample. Prints each series' median and minimum and the ratios to the
bare kernel's median (issue 5's target for hv+hello: at most 1.2).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "cmake"))
import qemu_boot  # noqa: E402  (the one definition of the QEMU command line)


class Series:
    def __init__(self, name, command, expect):
        self.name, self.command, self.expect = name, command, expect
        self.seconds = []


def boot_once(series, timeout):
    """Seconds the QEMU process took; raises RuntimeError if the boot did not end as expected."""
    started = time.perf_counter()
    try:
        result = subprocess.run(series.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{series.name}: timed out after {timeout:g} s") from None
    seconds = time.perf_counter() - started
    lines = result.stdout.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    missing = qemu_boot.check(lines, series.expect)
    status = qemu_boot.image_status(result.returncode)
    if missing is not None or status != 0:
        why = (f"no console line matched /{missing}/" if missing is not None
               else qemu_boot.describe_end(result.returncode, timeout))
        raise RuntimeError(f"{series.name}: {why}\n$ {' '.join(series.command)}\n" + "\n".join(lines))
    return seconds


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "default"),
                        help="the build tree whose images and pvkit-bundle are used (default: build/default)")
    parser.add_argument("--runs", type=int, default=15, help="timed boots of each series (default 15)")
    parser.add_argument("--mem", help="the hello domain's memory in MiB (default: pvkit-bundle's)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a boot counts as hung")
    options = parser.parse_args(argv)

    qemu = shutil.which("qemu-system-x86_64")
    hypervisor = os.path.join(options.build, "images/examples/hypervisor/pvkit-hv.elf")
    hello = os.path.join(options.build, "images/examples/guests/hello/hello.elf")
    bare = os.path.join(options.build, "images/tests/bench/baremetal_hello/baremetal_hello.elf")
    bundle_tool = os.path.join(options.build, "tools/pvkit-bundle")
    missing = [path for path in (hypervisor, hello, bare, bundle_tool) if not os.path.isfile(path)]
    if qemu is None or missing:
        print(f"boot_time: missing {'qemu-system-x86_64' if qemu is None else ', '.join(missing)}"
              " (build the default preset first)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as scratch:
        bundle = os.path.join(scratch, "hello.cpio")
        create = [bundle_tool, "create", bundle, hello] + (["--mem", options.mem] if options.mem else [])
        subprocess.run(create, check=True, stdout=subprocess.DEVNULL)
        name = "hello"
        series = [
            Series("hv+hello", qemu_boot.qemu_command(qemu, hypervisor, initrd=bundle),
                   [rf"\({name}\) hello from a pvkit guest", f"all domains have stopped: {name} powered off"]),
            Series("hv alone", qemu_boot.qemu_command(qemu, hypervisor),
                   ["no domain: .*", "exiting with status 0"]),
            Series("bare", qemu_boot.qemu_command(qemu, bare),
                   ["hello from a bare-metal kernel", "tsc: [0-9]+"]),
        ]
        try:
            for one in series:  # untimed: page cache, QEMU's first start
                boot_once(one, options.timeout)
            for _ in range(options.runs):
                for one in series:
                    one.seconds.append(boot_once(one, options.timeout))
        except RuntimeError as error:
            print(f"boot_time: FAIL {error}", file=sys.stderr)
            return 1

    bare_median = statistics.median(series[-1].seconds)
    print(f"boot time, QEMU wall time over {options.runs} alternating boots each "
          f"(-M microvm {' '.join(qemu_boot.MACHINE)} -m 128M)")
    print(f"{'series':10} {'median ms':>10} {'min ms':>8} {'/ bare':>7}")
    for one in series:
        median = statistics.median(one.seconds)
        print(f"{one.name:10} {median * 1e3:10.1f} {min(one.seconds) * 1e3:8.1f} {median / bare_median:7.2f}")
    ratio = statistics.median(series[0].seconds) / bare_median
    print(f"hv+hello / bare = {ratio:.2f} (target: at most 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
