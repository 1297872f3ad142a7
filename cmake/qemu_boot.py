#!/usr/bin/env python3
"""Boot a pvkit image under QEMU (TCG), stream its serial console, and report how it ended.

    qemu_boot.py IMAGE [--append CMDLINE] [--initrd FILE] [--timeout S]  run: exit with the image's status
    qemu_boot.py IMAGE --expect REGEX [--expect REGEX ...] --status N    check (boot tests)
    ... --type REGEX TEXT                     type TEXT on the console once REGEX is seen
    ... --guest-time BEGIN END                the guest's time (END's group "ns") against the host's

The image ends a run by writing its status v to the isa-debug-exit port; QEMU then exits with
(v << 1) | 1, which this script turns back into v. In check mode every --expect must match a whole
console line, in the order given, and the status must be N; otherwise it says what went wrong and
exits 1. Each --type waits, in order, until its REGEX matches console output (a prompt need not
end its line) after the previous typing, then types its TEXT ("\r" for Enter: a serial terminal
sends carriage returns). In run mode the console input is this script's own. --guest-time
timestamps console lines as they arrive: the nanoseconds the guest reports in the line matching
END (its named group "ns") must be within 10% of the host's monotonic time from the line matching
BEGIN to that line.
"""

import argparse
import os
import re
import selectors
import shutil
import subprocess
import sys
import time

MACHINE = ["-accel", "tcg", "-cpu", "max"]
DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]


def qemu_command(qemu, image, memory="128M", append="", initrd="", machine="microvm"):
    """The QEMU command line that boots image (tests/bench/boot_time.py uses it too)."""
    command = [qemu, "-M", machine, *MACHINE, "-m", memory, "-nodefaults", "-display", "none", "-no-reboot",
               "-serial", "stdio", *DEBUG_EXIT, "-kernel", image]
    if append:
        command += ["-append", append]
    if initrd:
        command += ["-initrd", initrd]
    return command


def run(command, timeout, echo, typing=None, interactive=False):
    """Run QEMU; return (console lines, QEMU's exit status or None on time-out, seconds taken,
    the monotonic time each complete line arrived).

    typing: (regex, text) pairs typed in order, each once its regex matches the output that came
    after the previous one. interactive: QEMU reads this script's standard input instead."""
    typing = list(typing or [])
    started = time.monotonic()
    arrivals = []  # when each console line was complete
    stdin = None if interactive else subprocess.PIPE if typing else subprocess.DEVNULL
    process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    typed_up_to = 0
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    output = bytearray()
    deadline = started + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            # SIGTERM first: QEMU then restores a terminal it had put in raw mode.
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            return _lines(output), None, time.monotonic() - started, arrivals
        if not selector.select(timeout=min(remaining, 0.5)):
            continue
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            break
        output += chunk
        arrivals += [time.monotonic()] * chunk.count(b"\n")
        if echo:
            sys.stdout.write(chunk.decode("utf-8", "replace").replace("\r\n", "\n"))
            sys.stdout.flush()
        while typing:
            match = re.search(typing[0][0], output[typed_up_to:].decode("utf-8", "replace"))
            if match is None:
                break
            typed_up_to = len(output)
            process.stdin.write(typing.pop(0)[1].encode())
            process.stdin.flush()
    status = process.wait()
    return _lines(output), status, time.monotonic() - started, arrivals


def _lines(output):
    return output.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")


def image_status(qemu_status):
    """The status the image wrote to isa-debug-exit, or None if QEMU ended some other way."""
    return qemu_status >> 1 if qemu_status is not None and qemu_status & 1 else None


def describe_end(qemu_status, timeout):
    if qemu_status is None:
        return f"timed out after {timeout:g} s"
    if image_status(qemu_status) is not None:
        return f"exited with status {image_status(qemu_status)}"
    return (f"QEMU exited with {qemu_status} without the image writing isa-debug-exit "
            "(a triple fault or reset ends QEMU this way under -no-reboot)")


def check(lines, expectations):
    """The first expectation that no line matches in order, or None when all match."""
    position = 0
    for pattern in expectations:
        regex = re.compile(pattern)
        while position < len(lines) and not regex.fullmatch(lines[position]):
            position += 1
        if position == len(lines):
            return pattern
        position += 1
    return None


def compare_guest_time(lines, arrivals, begin, end):
    """A problem with the guest's time between the lines matching begin and end, or None."""
    begin_at = next((i for i, line in enumerate(lines) if re.fullmatch(begin, line)), None)
    end_at = next((i for i, line in enumerate(lines) if i > (begin_at or 0) and re.fullmatch(end, line)), None)
    if begin_at is None or end_at is None or end_at >= len(arrivals):
        return f"no lines matched /{begin}/ and then /{end}/ to time"
    guest_s = int(re.fullmatch(end, lines[end_at]).group("ns")) / 1e9
    host_s = arrivals[end_at] - arrivals[begin_at]
    print(f"--- guest time {guest_s:.3f} s, host time {host_s:.3f} s")
    if abs(guest_s - host_s) > 0.1 * host_s:
        return f"the guest counted {guest_s:.3f} s where the host counted {host_s:.3f} s (more than 10% apart)"
    return None


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("--append", default="", help="the image's command line")
    parser.add_argument("--initrd", default="", help="a module for the image (the hypervisor's guest kernel)")
    parser.add_argument("--memory", default="128M", help="guest RAM, as QEMU's -m")
    parser.add_argument("--machine", default="microvm", help="QEMU's -M, e.g. microvm,rtc=off")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before the run is stopped")
    parser.add_argument("--expect", action="append", default=[], metavar="REGEX",
                        help="a console line that must appear (in order with the others)")
    parser.add_argument("--status", type=int, help="the status the image must end with")
    parser.add_argument("--guest-time", nargs=2, metavar=("BEGIN", "END"),
                        help="hold the ns the END line reports against the host's time since BEGIN")
    parser.add_argument("--type", nargs=2, action="append", default=[], metavar=("REGEX", "TEXT"),
                        help="type TEXT on the console once REGEX is seen (in order with the others)")
    options = parser.parse_args(argv)

    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        print("qemu_boot: qemu-system-x86_64 not found (Debian package qemu-system-x86)", file=sys.stderr)
        return 2
    if not os.path.isfile(options.image):
        print(f"qemu_boot: no image at {options.image}", file=sys.stderr)
        return 2
    checking = bool(options.expect) or options.status is not None
    command = qemu_command(qemu, options.image, options.memory, options.append, options.initrd, options.machine)
    if checking:
        print("$ " + " ".join(command))
    typing = [(regex, text.replace("\\r", "\r").replace("\\n", "\n")) for regex, text in options.type]
    lines, qemu_status, seconds, arrivals = run(command, options.timeout, echo=True, typing=typing,
                                                interactive=not checking and not typing)
    ending = describe_end(qemu_status, options.timeout)
    if not checking:
        status = image_status(qemu_status)
        if status is None:
            print(f"qemu_boot: {ending}", file=sys.stderr)
            return 1
        return status
    print(f"--- {ending} after {seconds:.2f} s")
    problems = []
    missing = check(lines, options.expect)
    if missing is not None:
        problems.append(f"no console line matched /{missing}/ (after the lines matched before it)")
    if options.guest_time:
        mismatch = compare_guest_time(lines, arrivals, *options.guest_time)
        if mismatch is not None:
            problems.append(mismatch)
    if options.status is not None and image_status(qemu_status) != options.status:
        problems.append(f"expected status {options.status}, but {ending}")
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
