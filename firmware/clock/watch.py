"""The clock watch on the event loop: a look a second at the kernel's synchronization state
and at the wall clock against the boot clock.

It keeps whether the clock is synchronized now (the 2030.5 Time resource's quality follows
it), whether it has been since boot (latched for the boot, across a restart: ``BootLatch``;
the J3072 gate asks ``problem`` before a new authorization), and the steps it saw, each
logged (``clock.step``) and handed to ``on_step`` (the journal). It decides nothing itself
and drives nothing: a lost synchronization later in the boot changes the quality served,
not the latch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from firmware.clock.kernel import SyncReading
from firmware.clock.latch import BootLatch
from firmware.clock.steps import Step, StepDetector, wall_minus_boot_s
from firmware.logs import log_event
from firmware.sep2.clock import QUALITY_NTP, QUALITY_UNCOORDINATED

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
NEVER_SYNCHRONIZED = (
    "the clock has not been synchronized since boot: approval-list dates cannot be checked"
)


class SyncSource(Protocol):
    def read(self) -> SyncReading: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class ClockWatch:
    def __init__(
        self,
        source: SyncSource,
        latch: BootLatch | None = None,
        on_step: Callable[[Step], None] = lambda step: None,
        offset_s: Callable[[], float] = wall_minus_boot_s,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self._source, self._latch, self._on_step = source, latch, on_step
        self._offset_s, self._wall = offset_s, wall
        self._detector = StepDetector()
        self.reading: SyncReading | None = None  # None until the first look
        self.since_boot = False
        self.steps = 0
        self.last_step: dict[str, Any] | None = None

    def start(self) -> None:
        """The latch from an earlier run in this boot, then the first look."""
        self.since_boot = self._latch is not None and self._latch.load()
        self.check()
        reading = self.reading
        assert reading is not None
        log_event(logger, "clock.state", logging.INFO if self.since_boot else logging.WARNING,
                  synchronized=reading.synchronized, since_boot=self.since_boot,
                  source=reading.source)  # fmt: skip

    def check(self) -> Step | None:
        """One look: the synchronization state (changes logged) and a step, if any."""
        reading, before = self._source.read(), self.reading
        self.reading = reading
        if before is not None and reading.synchronized != before.synchronized:
            event = "clock.synchronized" if reading.synchronized else "clock.unsynchronized"
            log_event(logger, event, logging.INFO if reading.synchronized else logging.WARNING,
                      source=reading.source, maxerror_us=reading.maxerror_us)  # fmt: skip
        if (reading.synchronized or reading.service_synchronized) and not self.since_boot:
            self.since_boot = True
            if self._latch is not None:
                self._latch.save()
            log_event(logger, "clock.synchronized_since_boot", source=reading.source)
        step = self._detector.observe(self._offset_s())
        if step is not None:
            self._stepped(step)
        return step

    def _stepped(self, step: Step) -> None:
        self.steps += 1
        at = self._wall().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.last_step = {"at": at, "size_s": round(step.size_s, 3),
                          "direction": step.direction}  # fmt: skip
        log_event(logger, "clock.step", logging.WARNING, direction=step.direction,
                  size_s=f"{abs(step.size_s):.3f}", at=at, count=self.steps)  # fmt: skip
        self._on_step(step)

    @property
    def synchronized(self) -> bool:
        return self.reading is not None and self.reading.synchronized

    def quality(self) -> int:
        """The 2030.5 Time resource's quality: NTP while synchronized now."""
        return QUALITY_NTP if self.synchronized else QUALITY_UNCOORDINATED

    def problem(self) -> str | None:
        """Why no V2G authorization may start now (never synchronized since boot), or None."""
        return None if self.since_boot else NEVER_SYNCHRONIZED

    def status(self) -> dict[str, Any]:
        reading = self.reading
        return {
            "synchronized": self.synchronized,
            "synchronized_since_boot": self.since_boot,
            "source": reading.source if reading is not None else None,
            "maxerror_us": reading.maxerror_us if reading is not None else None,
            "esterror_us": reading.esterror_us if reading is not None else None,
            "steps": self.steps,
            "last_step": self.last_step,
            "time_quality": self.quality(),
        }

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            self.check()  # two clock reads, a syscall and a stat: on the loop
