"""Clock steps: the wall clock jumping against the boot clock, forward or backward.

A step is seen as a change of ``CLOCK_REALTIME - CLOCK_BOOTTIME`` between two looks, a second
apart (``firmware.clock.watch``). The boot clock never jumps and keeps counting through a
suspend, so only a setting of the wall clock moves the difference; a time service slewing
moves it by at most 500 ppm (0.5 ms a second), far under ``STEP_THRESHOLD_S``. Why not a
timerfd with ``TFD_TIMER_CANCEL_ON_SET``: it says *that* the clock was set, not by how much
(which the log and the journal must say), and Python has ``os.timerfd_create`` only from
3.13; a look a second is two clock reads (docs/time.md).

``StepDetector`` is pure: offsets in, steps out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# ntpd steps beyond 128 ms, timesyncd beyond 400 ms, chrony as configured (makestep 1 s is
# usual); under this a change is slewing or reading noise
STEP_THRESHOLD_S = 0.1
MAX_READ_SPREAD_S = 0.005  # a look interrupted for longer is taken again
READ_TRIES = 3


@dataclass(frozen=True, slots=True)
class Step:
    """The wall clock moved by ``size_s`` (positive: forward) against the boot clock."""

    size_s: float

    @property
    def direction(self) -> str:
        return "forward" if self.size_s > 0 else "backward"


class StepDetector:
    def __init__(self, threshold_s: float = STEP_THRESHOLD_S) -> None:
        self._threshold_s = threshold_s
        self._offset_s: float | None = None

    def observe(self, offset_s: float) -> Step | None:
        """The step since the last offset seen, if it is one; every offset becomes the new
        reference, so slewing never adds up to a step."""
        before, self._offset_s = self._offset_s, offset_s
        if before is None:
            return None
        moved = offset_s - before
        return Step(moved) if abs(moved) >= self._threshold_s else None


def wall_minus_boot_s(
    wall: Callable[[], float] = time.time,
    boot: Callable[[], float] = lambda: time.clock_gettime(time.CLOCK_BOOTTIME),
) -> float:
    """The wall clock's lead over the boot clock, read between two boot-clock reads so that
    a thread switch in the middle cannot pass for a step."""
    offset = 0.0
    for _ in range(READ_TRIES):
        first = boot()
        now = wall()
        last = boot()
        offset = now - (first + last) / 2
        if last - first <= MAX_READ_SPREAD_S:
            break
    return offset
