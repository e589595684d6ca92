"""The safety process: the board, the sampler and the interlock, alone at real-time priority.

It owns the pilot and relay outputs, the dead-man toggle, RCD and contactor supervision, the
boot weld check and the inoperative record. The gatekeeper process sends wishes (pilot output,
close or open a relay) and a heartbeat; this process grants each wish only if the interlock
permits it at that instant, and reports what the board did and saw. Between two ticks, on the
sampler's own thread, it drains the channel without blocking: nothing the other side does can
hold a tick. It imports no protocol code (docs/design.md, "The safety process").

If the gatekeeper stops (channel closed, no heartbeat for ``HEARTBEAT_TIMEOUT_NS``, or it stops
reading), both relays open and the pilot stops offering power at once; the process keeps the
board in that state for ``HOLD_AFTER_LOSS_NS`` (so a rig can watch) and exits non-zero for
the service manager to restart the pair.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from firmware.charger.faults import FaultKind
from firmware.logs import log_event
from firmware.safety import channel as ch
from firmware.safety.inoperative import FaultStore, FaultStoreError, PermanentFault
from firmware.safety.interlock import Interlock, Trip
from firmware.safety.realtime import collect_between_ticks, enter_realtime, quiet_gc
from firmware.safety.sampler import Sampler, SamplerEvent, SamplerFailed
from firmware.safety.settings import SafetySettings
from hal import SAFE_PILOT, Board, Contacts, RcdState, Relay, open_board

logger = logging.getLogger(__name__)

MS = 1_000_000
HEARTBEAT_TIMEOUT_NS = 100 * MS  # the gatekeeper's heartbeat comes every 10 ms
HOLD_AFTER_LOSS_NS = 1000 * MS
STATUS_EVERY_NS = 25 * MS  # the sampler's health (the service watchdog) and the meter
VEHICLE_EVERY_NS = 20 * MS  # mock board: the simulated vehicle's PLC modem
GC_EVERY_NS = 10_000 * MS
MAX_MESSAGES_PER_TICK = 64
MAX_OUTBOX = 4096  # more unsent messages than this: the gatekeeper is not reading
RCD_SELF_TEST_S = 0.05
SHUTDOWN_CONFIRM_NS = 500 * MS

EXIT_OK, EXIT_FAILED, EXIT_GATEKEEPER_LOST = 0, 1, 3


class SafetyProcess:
    def __init__(
        self,
        settings: SafetySettings,
        link: socket.socket,
        open_board_: Callable[[SafetySettings], Board] = lambda s: open_board(s.board),
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.settings = settings
        self._link = link
        self._open_board = open_board_
        self._clock = clock
        self._outbox: deque[ch.Message] = deque()
        self._records = FaultStore(settings.state_dir)
        self.exit_code = EXIT_OK
        self._lost_at: int | None = None
        self._heard_at = clock()
        self._ready_sent = False
        self._status_at = self._vehicle_at = self._gc_at = 0
        self._vehicle: tuple[bool, bool] | None = None
        self._realtime = False
        self._permanent: FaultKind | None = None
        self._stop_requested = False
        self.sampler: Sampler | None = None

    # --- start and stop ---------------------------------------------------------------------

    def run(self) -> int:
        """Open the board, tick until told to stop or the gatekeeper is lost; the exit code."""
        self._link.setblocking(False)
        board = self._open_board(self.settings)
        try:
            self._permanent = self._recorded_fault()
            if not self._rcd_self_test(board):
                self._permanent = self._permanent or FaultKind.RCD_SELF_TEST
                self._record(FaultKind.RCD_SELF_TEST)
            if self.settings.realtime_priority > 0:
                self._realtime = enter_realtime(self.settings.realtime_priority)
            self._tick_until_stopped(board)
        finally:
            self._safe_state(board)
        return self.exit_code

    def _tick_until_stopped(self, board: Board) -> None:
        settings = self.settings
        ventilation = settings.ventilation and board.capabilities.supports_ventilation
        sabotaged = settings.board.backend == "mock" and settings.board.mock.sabotage != "none"
        if sabotaged:
            log_event(logger, "interlock.SABOTAGED", logging.CRITICAL,
                      reason="[hal.mock] sabotage = interlock-off: TEST ONLY")  # fmt: skip
        self.interlock = Interlock(board, ventilation, self._clock(), sabotaged=sabotaged)
        if self._permanent is not None:
            self.interlock.latch_permanent(self._permanent, self._clock())
        self.sampler = Sampler(board, self.interlock, settings.sample_rate_hz, self._post,
                               self._clock, settings.proximity, self._between_ticks)  # fmt: skip
        self.board = board
        if self._stop_requested:
            return
        if settings.realtime_priority > 0:
            quiet_gc()
        self.sampler.run()

    def request_stop(self) -> None:
        """Signal handlers: relays open, then exit 0 (also before the first tick)."""
        self._stop_requested = True
        if self.sampler is not None:
            self.sampler.request_stop()

    def _safe_state(self, board: Board) -> None:
        """Relays open first, the pilot to its safe level, the feedback confirmed and reported;
        each step on its own so that one failure skips none of the others."""
        steps: list[Callable[[], object]] = [
            lambda: self.interlock.open_all(self._clock()) if hasattr(self, "interlock") else None,
            lambda: board.set_pilot(SAFE_PILOT),
            lambda: self._report_safe_state(board),
            self._flush,
            board.close,
        ]
        for step in steps:
            try:
                step()
            except Exception as err:  # the relays must open whatever else fails
                log_event(logger, "safety.shutdown_step_failed", logging.ERROR, error=repr(err))

    def _report_safe_state(self, board: Board) -> None:
        deadline = self._clock() + SHUTDOWN_CONFIRM_NS
        while True:
            seen = {relay: board.read_feedback(relay) for relay in Relay}
            if all(c is not Contacts.CLOSED for c in seen.values()) or self._clock() > deadline:
                break
            time.sleep(0.005)
        log_event(logger, "safety.safe_state", main=seen[Relay.MAIN].value,
                  discharge=seen[Relay.DISCHARGE].value)  # fmt: skip
        self._outbox.append(ch.SafeState(seen[Relay.MAIN], seen[Relay.DISCHARGE]))

    # --- between ticks: the channel ----------------------------------------------------------

    @property
    def _sampler(self) -> Sampler:
        assert self.sampler is not None, "called from the sampler's own ticks"
        return self.sampler

    def _between_ticks(self, now: int) -> None:
        if self._lost_at is not None:
            if now - self._lost_at >= HOLD_AFTER_LOSS_NS:
                self._sampler.request_stop()
            return
        self._receive(now)
        if self._lost_at is None and now - self._heard_at > HEARTBEAT_TIMEOUT_NS:
            self._lose(now, f"no heartbeat for {(now - self._heard_at) // MS} ms")
        self._periodic(now)
        self._flush()

    def _receive(self, now: int) -> None:
        for _ in range(MAX_MESSAGES_PER_TICK):
            try:
                data = self._link.recv(ch.MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError as err:
                self._lose(now, f"channel: {err.strerror}")
                return
            if not data:
                self._lose(now, "channel closed")
                return
            try:
                message = ch.decode(data)
            except ch.ChannelError as err:
                self._lose(now, f"bad message: {err}")
                return
            self._apply(message, now)

    def _apply(self, message: ch.Message, now: int) -> None:
        interlock = self.interlock
        match message:
            case ch.Heartbeat():
                self._heard_at = now
            case ch.SetPilot(output):
                interlock.set_pilot(output)
            case ch.RelayWish(request, relay, closed):
                granted = interlock.command(relay, closed, self._clock())
                self._outbox.append(ch.RelayResult(request, relay, closed, granted))
            case ch.Shutdown():
                self._sampler.request_stop()
            case _:
                log_event(logger, "safety.unexpected_message", logging.WARNING,
                          type=type(message).__name__)  # fmt: skip

    def _lose(self, now: int, reason: str) -> None:
        """The gatekeeper is gone or silent: nothing it wished holds any more."""
        self.interlock.open_all(now)
        self.interlock.set_pilot(SAFE_PILOT)
        self._lost_at = now
        self.exit_code = EXIT_GATEKEEPER_LOST
        retire_rig = getattr(self.board, "retire_rig", None)  # the mock board's virtual rig
        if retire_rig is not None:
            retire_rig()
        log_event(logger, "safety.gatekeeper_lost", logging.ERROR, reason=reason,
                  relays="open", pilot="x1")  # fmt: skip

    def _periodic(self, now: int) -> None:
        interlock = self.interlock
        if not self._ready_sent and interlock.armed(now):
            self._ready_sent = True
            caps = self.board.capabilities
            self._outbox.append(ch.Ready(caps.max_current_a, caps.supports_state_e,
                                         caps.supports_ventilation, interlock.permanent,
                                         self._realtime))  # fmt: skip
        if now - self._status_at >= STATUS_EVERY_NS:
            self._status_at = now
            self._outbox.append(self._status(now))
        if now - self._vehicle_at >= VEHICLE_EVERY_NS:
            self._vehicle_at = now
            self._follow_simulated_vehicle()
        if now - self._gc_at >= GC_EVERY_NS and self.settings.realtime_priority > 0:
            self._gc_at = now
            collect_between_ticks()

    def _status(self, now: int) -> ch.Status:
        stats, meter, interlock = self._sampler.stats, self.board.read_meter(), self.interlock
        return ch.Status(now, stats.ticks, stats.overruns, stats.max_late_ns,
                         interlock.closed(Relay.MAIN), interlock.closed(Relay.DISCHARGE),
                         meter.power_w, meter.voltage_v, meter.frequency_hz,
                         tuple(sorted(interlock.latched)))  # fmt: skip

    def _follow_simulated_vehicle(self) -> None:
        watch = getattr(self.board, "simulated_vehicle", None)  # the mock board only
        if watch is None:
            return
        seen: tuple[bool, bool] = watch()
        if seen != self._vehicle:
            self._vehicle = seen
            self._outbox.append(ch.SimulatedVehicle(*seen))

    def _flush(self) -> None:
        outbox = self._outbox
        while outbox:
            try:
                self._link.send(ch.encode(outbox[0]))
            except BlockingIOError:
                break
            except OSError:
                outbox.clear()  # the other side is gone: _receive says so next tick
                return
            outbox.popleft()
        if len(outbox) > MAX_OUTBOX and self._lost_at is None:
            outbox.clear()
            self._lose(self._clock(), "the gatekeeper stopped reading")

    # --- what the sampler reports -----------------------------------------------------------

    def _post(self, event: SamplerEvent) -> None:
        """On the sampler's thread; the relays are already open when a trip is posted."""
        if isinstance(event, SamplerFailed):
            self.exit_code = EXIT_FAILED
            log_event(logger, "safety.sampler_failed", logging.CRITICAL, error=event.error)
            self._outbox.append(ch.Failed(event.error))
            return
        self._outbox.append(event)  # pilot, RCD and PP changes and trips travel as they are
        if isinstance(event, Trip) and event.contactor_fault is not None:
            self._record_in_background(event.contactor_fault)

    def _record_in_background(self, kind: FaultKind) -> None:
        """The record's fsync must not hold the tick: the latch already holds in memory, and
        the fault is reported once the record is on disk (or could not be written)."""

        def write() -> None:
            recorded = self._record(kind)
            self._outbox.append(ch.FaultRecorded(kind, recorded))

        threading.Thread(target=write, name="fault-record", daemon=True).start()

    # --- the inoperative record and the RCD self-test ----------------------------------------

    def _recorded_fault(self) -> FaultKind | None:
        """A permanent fault recorded before this start; an unusable record counts as one."""
        try:
            self._records.prepare()
            recorded = self._records.load()
        except FaultStoreError as err:
            log_event(logger, "fault.record_unreadable", logging.ERROR, error=str(err))
            return FaultKind.RECORD_UNREADABLE
        if recorded is None:
            return None
        log_event(logger, "fault.recorded", logging.WARNING, kind=recorded.kind.value,
                  at=recorded.at, clear_with="evse-gatekeeper faults clear")  # fmt: skip
        return recorded.kind

    def _record(self, kind: FaultKind) -> bool:
        try:
            if self._records.load() is None:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
                self._records.save(PermanentFault(kind, stamp))
        except FaultStoreError as err:
            # the latch holds in memory until a restart, which finds no readable record
            # only if nothing was written: see docs/design.md "The inoperative record"
            log_event(logger, "fault.record_failed", logging.ERROR, kind=kind.value,
                      error=str(err))  # fmt: skip
            return False
        return True

    def _rcd_self_test(self, board: Board) -> bool:
        """Inject a test current where the board can: the module must trip."""
        if not board.capabilities.supports_rcd_self_test:
            return True
        board.set_rcd_test(True)
        time.sleep(RCD_SELF_TEST_S)
        tripped = board.read_rcd() is not RcdState.CLEAR
        board.set_rcd_test(False)
        time.sleep(RCD_SELF_TEST_S)
        log_event(logger, "rcd.self_test", passed=tripped)
        return tripped
