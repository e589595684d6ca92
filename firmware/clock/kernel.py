"""What the kernel says of the system clock: ``adjtimex(2)`` read without changing anything.

Both time services a board runs (systemd-timesyncd, chronyd) discipline the clock through
``adjtimex`` and clear ``STA_UNSYNC`` while they do; the kernel sets it again on its own once
its maximum error passes 16 s (about 9 hours without an update at 500 ppm), and then
``adjtimex`` returns ``TIME_ERROR``. That is also what ``timedatectl`` shows as "System
clock synchronized" (docs/time.md). Which service is at work is told by the files it keeps
under /run, for ``status`` only: the decision is the kernel's.

A test-only source (``SyncFile``) reads the state from a file instead; the config accepts it
only with the mock board (``firmware.clock.config``).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronized
STA_UNSYNC = 0x0040  # adjtimex(2) status: the clock is not synchronized
# systemd-timesyncd creates this (on tmpfs, so once per boot) at its first synchronization
TIMESYNCD_MARKER = Path("/run/systemd/timesync/synchronized")
CHRONYD_PIDS = (Path("/run/chrony/chronyd.pid"), Path("/var/run/chrony/chronyd.pid"))


class _Timex(ctypes.Structure):
    """The head of ``struct timex`` (up to ``status``: longs and ints, so ctypes lays it out
    as the C compiler does on 32- and 64-bit boards); the tail is room for the rest."""

    _fields_ = [
        ("modes", ctypes.c_uint),  # 0: only read
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),  # us
        ("esterror", ctypes.c_long),  # us
        ("status", ctypes.c_int),
        ("rest", ctypes.c_byte * 256),
    ]


@dataclass(frozen=True, slots=True)
class SyncReading:
    """One look at the clock's synchronization: ``synchronized`` now, the kernel's error
    bounds (None when not from the kernel), and where it came from."""

    synchronized: bool
    source: str
    maxerror_us: int | None = None
    esterror_us: int | None = None
    service_synchronized: bool = False  # timesyncd's marker: synchronized once this boot


def read_adjtimex() -> tuple[int, _Timex] | None:
    """adjtimex with no modes set; None when the call is unavailable."""
    timex = _Timex()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        state = int(libc.adjtimex(ctypes.byref(timex)))
    except (OSError, AttributeError):
        return None
    return (state, timex) if state >= 0 else None


def service_name() -> str:
    """The time service whose traces are under /run, else plain ``kernel``."""
    if TIMESYNCD_MARKER.parent.is_dir():
        return "systemd-timesyncd"
    if any(path.exists() for path in CHRONYD_PIDS):
        return "chronyd"
    return "kernel"


class KernelSync:
    """The board's source: the kernel's state, named after the service that feeds it."""

    def read(self) -> SyncReading:
        answer = read_adjtimex()
        service = service_name()
        marker = service == "systemd-timesyncd" and TIMESYNCD_MARKER.exists()
        if answer is None:  # any failure counts as unsynchronized (default deny)
            return SyncReading(False, f"{service} (adjtimex unavailable)", None, None, marker)
        state, timex = answer
        synchronized = state != TIME_ERROR and not timex.status & STA_UNSYNC
        return SyncReading(synchronized, service, timex.maxerror, timex.esterror, marker)


class SyncFile:
    """Test only (the mock board): the state is the word in a file, ``synchronized`` or
    ``unsynchronized``; anything else, or no file, is unsynchronized."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> SyncReading:
        try:
            word = self.path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            word = ""
        return SyncReading(word == "synchronized", f"mock file {self.path}")
