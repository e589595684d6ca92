"""The 2030.5 Time resource's quality, from whether the system clock is synchronized.

IEEE 2030.5 Time.quality: 3 = from an external authoritative source such as NTP; 7 =
intentionally uncoordinated. We serve 3 while the kernel says synchronized and 7 otherwise: a
clock nobody disciplines is coordinated with nothing, and a vehicle should not take it for
the grid's time. The daemon hands the server its clock watch (``firmware.clock.watch``),
which answers the same question from its look a second; ``ClockQuality`` serves a server
run on its own, asking the kernel (``firmware.clock.kernel``) at most every ``RECHECK_S``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from firmware.clock.kernel import KernelSync

QUALITY_NTP = 3
QUALITY_UNCOORDINATED = 7
RECHECK_S = 10.0


class TimeQuality(Protocol):
    def quality(self) -> int: ...


def kernel_says_synchronized() -> bool:
    """adjtimex with no modes set only reads; any failure counts as unsynchronized."""
    return KernelSync().read().synchronized


class ClockQuality:
    """Time.quality for the Time resource, asked of the kernel at most every ``RECHECK_S``."""

    def __init__(self, synchronized: Callable[[], bool] = kernel_says_synchronized,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._synchronized = synchronized
        self._clock = clock
        self._checked_at: float | None = None
        self._quality = QUALITY_UNCOORDINATED

    def quality(self) -> int:
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= RECHECK_S:
            self._checked_at = now
            self._quality = QUALITY_NTP if self._synchronized() else QUALITY_UNCOORDINATED
        return self._quality
