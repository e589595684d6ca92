"""Whether the system clock is synchronized, as the kernel's time service state says.

The board has no real-time clock: its time comes from NTP (systemd-timesyncd, chrony) once the
site network is up. The kernel knows whether a time service has disciplined the clock lately:
``adjtimex`` returns ``TIME_ERROR`` while the clock is unsynchronized (``STA_UNSYNC``), which is
also what ``timedatectl`` shows as "System clock synchronized: no".

2030.5 Time.quality (IEEE 2030.5 Time object): 3 = from an external authoritative source such
as NTP; 7 = intentionally uncoordinated. We serve 3 while the kernel says synchronized and 7
otherwise: a clock nobody disciplines is coordinated with nothing, and a vehicle should not
take it for the grid's time.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronized
QUALITY_NTP = 3
QUALITY_UNCOORDINATED = 7
TIMEX_BYTES = 256  # sizeof(struct timex) is 208 on 64-bit Linux: room to spare
RECHECK_S = 10.0


def kernel_says_synchronized() -> bool:
    """adjtimex with no modes set only reads; any failure counts as unsynchronized."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        state = libc.adjtimex(ctypes.create_string_buffer(TIMEX_BYTES))
    except (OSError, AttributeError):
        return False
    return bool(0 <= state < TIME_ERROR)


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
