"""The sampler: a fixed-rate thread on absolute monotonic deadlines.

Each tick reads the pilot, toggles the dead-man, confirms the pilot state and runs the
interlock, then posts only *changes* to the event loop. A sample that disagrees with the
confirmed state is re-read one PWM period later instead of a whole sampling period later,
so detection stays within a few ms while one-sample glitches are still rejected.
Overruns (a tick starting more than one period late) are counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from firmware.pilot.confirm import PilotChange, PilotConfirmer
from firmware.pilot.levels import shows_short_to_pe
from firmware.pilot.proximity import (
    ProximityConfirmer,
    ProximityMode,
    ProximityReading,
    read_proximity,
)
from firmware.safety.interlock import Interlock, Trip
from hal import Board, PilotDrive, RcdState

CONFIRM_DELAY_NS = 1_100_000  # one 1 kHz PWM period (980 Hz worst case) plus margin


def _explained_by_own_drive(drive: PilotDrive, high_mv: int) -> bool:
    """True when our own -12 V or 0 V drive explains the reading, so it says nothing about
    the vehicle. 0 V under our -12 V is not ours: the pilot is shorted to PE."""
    if drive is PilotDrive.ZERO:
        return True
    return drive is PilotDrive.STEADY_NEGATIVE and not shows_short_to_pe(high_mv)


@dataclass(frozen=True, slots=True)
class RcdChange:
    state: RcdState
    t_ns: int


@dataclass(frozen=True, slots=True)
class ProximityChange:
    reading: ProximityReading
    t_ns: int


@dataclass(frozen=True, slots=True)
class SamplerFailed:
    """The sampler thread hit an unexpected error; it opened the relays and stopped."""

    error: str


SamplerEvent = PilotChange | RcdChange | ProximityChange | Trip | SamplerFailed


@dataclass(slots=True)
class SamplerStats:
    ticks: int = 0
    overruns: int = 0
    max_late_ns: int = 0
    last_tick_ns: int = 0


class Sampler:
    def __init__(
        self,
        board: Board,
        interlock: Interlock,
        rate_hz: int,
        post: Callable[[SamplerEvent], None],
        clock: Callable[[], int] = time.monotonic_ns,
        proximity: ProximityMode = ProximityMode.NONE,
        between_ticks: Callable[[int], None] | None = None,
    ) -> None:
        self._board = board
        self._pp_mode = proximity
        self._pp = ProximityConfirmer(read_proximity(proximity, None))
        self._interlock = interlock
        self.period_ns = 1_000_000_000 // rate_hz
        self._post = post
        self._clock = clock
        self._confirmer = PilotConfirmer()
        self._rcd = RcdState.CLEAR
        self.stats = SamplerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._between_ticks = between_ticks  # the safety process's channel, on this thread
        # half the hardware's timeout: a gap that long may already have dropped the supply
        self._deadman_guard_ns = int(board.capabilities.deadman_timeout_ms * 1e6) // 2
        self._kicked_at: int | None = None

    def tick(self, now_ns: int) -> bool:
        """One sample. Returns True when a candidate state wants its confirming re-read."""
        board = self._board
        sample = board.read_pilot()
        lapse = self._kick_deadman(board)
        drive = self._interlock.pilot_output  # what the pilot was driven with for this sample
        own = _explained_by_own_drive(drive.drive, sample.high_mv)
        change = self._confirmer.feed(
            sample.high_mv, sample.low_mv, sample.t_ns, drive.pwm_running, own
        )
        rcd = board.read_rcd()
        pp_change = None
        if self._pp_mode is not ProximityMode.NONE:
            pp_change = self._pp.feed(read_proximity(self._pp_mode, board.read_proximity_ohm()))
        trip = self._interlock.evaluate(
            now_ns,
            self._confirmer.confirmed,
            rcd,
            change,
            pwm_running=drive.pwm_running,
            settled=not self._confirmer.confirming,
            proximity=self._pp.confirmed.state,
        )
        # the relays are already open when anything below is posted
        if lapse is not None:
            self._post(lapse)
        if change is not None:
            self._post(change)
        if rcd is not self._rcd:
            self._rcd = rcd
            self._post(RcdChange(rcd, now_ns))
        if pp_change is not None:
            self._post(ProximityChange(pp_change, now_ns))
        if trip is not None:
            self._post(trip)
        self.stats.ticks += 1
        self.stats.last_tick_ns = now_ns
        return self._confirmer.confirming

    def _kick_deadman(self, board: Board) -> Trip | None:
        """Toggle the dead-man; if the last toggle was too long ago (a stalled process, a
        hung ADC read), open the relays first so the restored supply closes nothing."""
        kick_at = self._clock()
        lapse = None
        if self._kicked_at is not None and kick_at - self._kicked_at > self._deadman_guard_ns:
            lapse = self._interlock.deadman_lapsed(kick_at)
        board.kick_deadman()
        self._kicked_at = kick_at
        return lapse

    def start(self) -> None:
        """Run on a thread of its own (``run`` runs on the caller's)."""
        self._thread = threading.Thread(target=self.run, name="pilot-sampler", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Safe from any thread, and from ``between_ticks``: the loop ends after this tick."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def run(self) -> None:
        """Tick until stopped; an unexpected error opens the relays and is posted."""
        try:
            self._loop_on_deadlines()
        except Exception as err:  # never die silently: relays open, the supervisor hears
            try:
                self._interlock.open_all(self._clock())
            finally:
                self._post(SamplerFailed(repr(err)))

    def _loop_on_deadlines(self) -> None:
        clock = self._clock
        grid = clock()
        confirm_at: int | None = None
        while not self._stop.is_set():
            wake = grid if confirm_at is None else min(grid, confirm_at)
            delay = wake - clock()
            if delay > 0:
                time.sleep(delay / 1e9)
            now = clock()
            if self._between_ticks is not None:
                self._between_ticks(now)
                if self._stop.is_set():
                    break
            late = now - wake
            self.stats.max_late_ns = max(self.stats.max_late_ns, late)
            if late > self.period_ns:
                self.stats.overruns += 1
            confirm_at = now + CONFIRM_DELAY_NS if self.tick(now) else None
            if now >= grid:
                grid += self.period_ns
                if grid <= now:  # missed whole periods: re-anchor instead of bursting
                    grid = now + self.period_ns
