"""What the machine itself allows: an independent real-time process that only sleeps and wakes.

A latency target on a real-time process can only be met where the platform lets a
``SCHED_FIFO`` thread run when it asks to. On a virtual machine whose virtual CPUs share the
host's, or under a kernel without full preemption, a thread at the highest priority can still
wait tens of milliseconds. This probe measures that floor while a benchmark runs, so a bench can
tell a delay of the firmware's own from one no software on this machine could have avoided.

``python -m bench.platform_probe --out FILE --priority P`` runs one thread at ``SCHED_FIFO`` P
(above the safety process's), memory locked, waking every millisecond on an absolute deadline.
Each wake-up later than ``--threshold-ms`` is appended to FILE as one line
``<CLOCK_MONOTONIC ns at wake-up> <lateness ns>``; the clock is the system's, so the bench can
place each stall against its own events. It runs until SIGTERM and then writes one last line,
``done <wake-ups> <worst lateness ns>``. Where real-time priority is refused it says so and
exits 2: a probe at normal priority would measure the scheduler's fairness, not the platform.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PERIOD_NS = 1_000_000
MCL_CURRENT, MCL_FUTURE = 1, 2


@dataclass(frozen=True)
class Stall:
    """A wake-up the platform delayed: ``[start_ns, end_ns]`` on CLOCK_MONOTONIC."""

    end_ns: int
    lateness_ns: int

    @property
    def start_ns(self) -> int:
        return self.end_ns - self.lateness_ns

    def overlaps(self, start_ns: int, end_ns: int) -> bool:
        return self.start_ns < end_ns and self.end_ns > start_ns


@dataclass(frozen=True)
class ProbeResult:
    stalls: list[Stall]
    wakeups: int
    worst_ns: int


def read_probe(path: Path) -> ProbeResult:
    """The probe's file: its stalls and its closing line (``wakeups`` 0 when it never ended)."""
    stalls: list[Stall] = []
    wakeups = worst = 0
    for line in path.read_text(encoding="ascii").splitlines():
        words = line.split()
        if words[:1] == ["done"] and len(words) == 3:
            wakeups, worst = int(words[1]), int(words[2])
        elif len(words) == 2:
            stalls.append(Stall(int(words[0]), int(words[1])))
    return ProbeResult(stalls, wakeups, max(worst, *(s.lateness_ns for s in stalls), 0))


def _realtime(priority: int) -> str | None:
    """None when SCHED_FIFO and locked memory were both granted, else the kernel's reason."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as err:
        return f"SCHED_FIFO {priority}: {err.strerror}"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        return f"mlockall: {os.strerror(ctypes.get_errno())}"
    return None


def run(out: Path, priority: int, threshold_ns: int) -> int:
    refused = _realtime(priority)
    if refused is not None:
        print(f"platform_probe: real-time refused ({refused})", file=sys.stderr)
        return 2
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    wakeups = worst = 0
    with out.open("a", encoding="ascii", buffering=1) as sink:
        print("PROBE READY", flush=True)
        deadline = time.monotonic_ns() + PERIOD_NS
        while not stopping:
            delay = deadline - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            now = time.monotonic_ns()
            late = now - deadline
            wakeups += 1
            if late > worst:
                worst = late
            if late > threshold_ns:
                sink.write(f"{now} {late}\n")
                deadline = now  # one stall is one line, not one per missed period
            deadline += PERIOD_NS
        sink.write(f"done {wakeups} {worst}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.platform_probe", description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--priority", type=int, default=60)
    parser.add_argument("--threshold-ms", type=float, default=2.0)
    args = parser.parse_args(argv)
    return run(args.out, args.priority, int(args.threshold_ms * 1e6))


if __name__ == "__main__":
    sys.exit(main())
