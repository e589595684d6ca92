"""The composition root and supervisor: reads the config, opens the board, wires the parts.

Start-up: open the board (safe state), self-test the RCD where the board can, start the
sampler and let the interlock watch the relay feedback for its boot weld-check window, then
run the charger on the event loop. Shutdown (a signal or a crash) opens both relays before
anything else. Only this module catches broadly: it logs, forces safe outputs, exits non-zero.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from firmware import __version__
from firmware.approvals.approval_list import rfc3339
from firmware.charger.controller import Charger, ChargerSettings, Note, PlcPolicy
from firmware.charger.faults import FaultKind
from firmware.charger.outputs import Outputs
from firmware.config import Config
from firmware.control import ControlServer, LimitRefused
from firmware.errors import ConfigError, SamplerError
from firmware.fault_store import FaultStore, FaultStoreError, PermanentFault
from firmware.interlock import Interlock
from firmware.j3072.gate import Gate
from firmware.logs import kv, log_event
from firmware.pilot.confirm import PilotChange
from firmware.pilot.duty import MIN_CURRENT_A
from firmware.plc.slac import GaveUp, Matched, PilotWakeUp
from firmware.plc.stack import LinkChange, PlcEvent
from firmware.recorder import Recorder
from firmware.sampler import (
    ProximityChange,
    RcdChange,
    Sampler,
    SamplerEvent,
    SamplerFailed,
)
from firmware.sdnotify import HealthWatchdog, Notifier
from firmware.sep2.store import PevEvent
from firmware.services import Services
from hal import (
    SAFE_PILOT,
    Board,
    Contacts,
    FeedbackKind,
    HalError,
    RcdState,
    Relay,
    open_board,
)

logger = logging.getLogger(__name__)

# The sampler thread must get the GIL back quickly even while the loop parses a large XML
# body; CPython's default hand-over interval (5 ms) alone would eat the interlock budget.
GIL_SWITCH_INTERVAL_S = 0.0005
RCD_SELF_TEST_S = 0.05
MAX_LOOP_WAIT_S = 0.25
STATS_EVERY_NS = 60_000_000_000
SHUTDOWN_CONFIRM_S = 0.5

METER_PERIOD_S = 0.1  # the J3072 meter checks while main is closed (the issue allows 1 s)
DISCHARGE_RETRY_S = 0.02  # while the gate waits for main's contacts to confirm closed
POWER_STATES = ("charging", "ventilating")

LIMIT_APPLY_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class LimitRequest:
    """The operator's charging-current limit, applied on the loop's turn like any input."""

    amps: float
    applied: asyncio.Future[None]


LoopEvent = SamplerEvent | PlcEvent | PevEvent | LimitRequest


class Gatekeeper:
    def __init__(self, config: Config, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.config = config
        self._clock = clock
        self.board: Board | None = None
        self.interlock: Interlock | None = None
        self.sampler: Sampler | None = None
        self.charger: Charger | None = None
        self.ready = threading.Event()
        self._fault_store = FaultStore(config.paths.state_dir)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[LoopEvent | None] | None = None
        self.services = Services(config, self._post_plc)
        self.gate: Gate | None = None
        self.recorder = Recorder(None)  # the journal, once the state directory exists
        self._stopping = False
        self._applied = Outputs(SAFE_PILOT, main_closed=False)
        self._stats_at = 0
        self._discharge_closed = False
        self.meter_w = 0.0
        self.control: ControlServer | None = None
        self._ev_mac: str | None = None
        self._plugged_in_at: str | None = None
        self.notifier = Notifier()
        self._watchdog_task: asyncio.Task[None] | None = None

    async def run(self) -> int:
        """Run until ``request_stop``; 0 on a clean stop, 1 after a crash."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        try:
            await self._start()
            while not self._stopping:
                await self._step()
            return 0
        except (HalError, ConfigError):
            raise  # the board or the credentials are unusable: the CLI says why in one line
        except Exception as err:  # the supervisor: anything unexpected ends in the safe state
            logger.exception("%s", kv("gatekeeper.crash", [("error", repr(err))]))
            return 1
        finally:
            self._shutdown()
            await self._stop_services()

    async def _stop_services(self) -> None:
        try:
            if self.control is not None:
                await self.control.stop()
            await self.services.stop()
        except Exception as err:  # the relays are already open; report and go on
            log_event(logger, "gatekeeper.shutdown_step_failed", logging.ERROR,
                      step="services", error=repr(err))  # fmt: skip

    def request_stop(self) -> None:
        """Thread-safe: ask the loop to stop (signal handlers and tests call this)."""
        self._stopping = True
        if self._loop is not None and self._queue is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    # --- start-up -----------------------------------------------------------------------

    async def _start(self) -> None:
        config = self.config
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        config.paths.state_dir.mkdir(parents=True, exist_ok=True)
        self.recorder = Recorder.open(config.paths.state_dir)
        board = self.board = open_board(config.board)
        caps = board.capabilities
        ventilation = config.charger.ventilation and caps.supports_ventilation
        max_current_a = min(config.charger.max_current_a, caps.max_current_a)
        log_event(
            logger,
            "board.opened",
            backend=config.board.backend,
            max_current_a=max_current_a,
            ventilation=ventilation,
        )
        for relay in Relay:
            if caps.feedback(relay) is FeedbackKind.NONE:
                log_event(logger, "contactor.unsupervised", logging.WARNING, relay=relay.value)
        permanent = self._recorded_fault()
        if not await self._rcd_self_test(board):
            permanent = permanent or FaultKind.RCD_SELF_TEST
        await self._start_safety(board, ventilation, permanent)
        self._start_charger(max_current_a, ventilation, permanent)
        await self.services.start(board)
        approvals = self.services.approvals
        self.gate = Gate(
            config.site,
            config.mapping,
            self.services.sep2,
            approvals.store if approvals is not None else None,
            self.recorder,
            self._clock,
        )
        self.control = ControlServer(config.control.socket, self.snapshot, self.set_limit)
        await self.control.start()
        fields = [
            ("sample_rate_hz", config.charger.sample_rate_hz),
            ("rig", config.board.mock.rig_link or "none"),
            *self.services.describe().items(),
        ]
        logger.info("%s", kv("gatekeeper.ready", fields))
        self.ready.set()
        self._start_watchdog()
        self.notifier.ready("ready: relays open, interlock armed, servers listening")

    async def _start_safety(
        self, board: Board, ventilation: bool, permanent: FaultKind | None
    ) -> None:
        """The interlock (told of any permanent fault before its first sample), the sampler,
        and the boot weld check's window."""
        mock = self.config.board.mock
        sabotaged = self.config.board.backend == "mock" and mock.sabotage == "interlock-off"
        if sabotaged:
            why = "[hal.mock] sabotage = interlock-off: TEST ONLY, nothing is safe"
            log_event(logger, "interlock.SABOTAGED", logging.CRITICAL, reason=why)
        interlock = self.interlock = Interlock(board, ventilation, self._clock(),
                                               sabotaged=sabotaged)  # fmt: skip
        if permanent is not None:
            interlock.latch_permanent(permanent, self._clock())
        charger_config = self.config.charger
        self.sampler = Sampler(
            board,
            interlock,
            charger_config.sample_rate_hz,
            self._post,
            proximity=charger_config.proximity,
        )
        self.sampler.start()
        while not interlock.armed(self._clock()):
            await asyncio.sleep(0.01)

    def _start_charger(
        self, max_current_a: float, ventilation: bool, permanent: FaultKind | None
    ) -> None:
        assert self.sampler is not None
        interval_ns = self.config.contactor.min_close_interval_ms * 1_000_000
        # the interlock wants two samples under PWM before a closing: give it three, plus margin
        settle_ns = 3 * self.sampler.period_ns + 5_000_000
        plc = self.config.plc
        policy = PlcPolicy(plc.duty, plc.fallback) if plc.enabled else None
        self.charger = Charger(
            ChargerSettings(
                max_current_a,
                ventilation,
                interval_ns,
                settle_ns,
                self.config.charger.proximity,
                policy,
            ),
            self._clock(),
        )
        if permanent is not None:
            self._apply(self._latch_permanent(permanent))
        self._apply(self.charger.outputs)
        self._log_notes()

    def _start_watchdog(self) -> None:
        """WATCHDOG=1 while the sampler (the interlock's thread) and the loop both turn."""
        sampler = self.sampler
        assert sampler is not None
        watchdog = HealthWatchdog(self.notifier, lambda: sampler.stats.last_tick_ns, self._clock)
        interval = watchdog.interval_s
        if interval is None:
            return

        async def ping() -> None:
            pinging = True
            while True:
                if watchdog.poll() != pinging:
                    pinging = not pinging
                    if pinging:
                        log_event(logger, "watchdog.resumed")
                    else:
                        log_event(logger, "watchdog.withheld", logging.ERROR,
                                  reason="the sampler has not ticked")  # fmt: skip
                await asyncio.sleep(interval)

        self._watchdog_task = asyncio.create_task(ping(), name="watchdog")
        log_event(logger, "watchdog.on", interval_s=round(interval, 3))

    def _post_plc(self, event: PlcEvent | PevEvent) -> None:
        """Called on the loop by the PLC stack and the 2030.5 server: the charger and the
        gate hear it in order with the pilot."""
        if self._queue is not None:
            self._queue.put_nowait(event)

    async def _rcd_self_test(self, board: Board) -> bool:
        """Inject a test current where the board can: the module must trip. (If it then
        stays tripped, the sampler latches an RCD fault like any other trip.)"""
        if not board.capabilities.supports_rcd_self_test:
            return True
        board.set_rcd_test(True)
        await asyncio.sleep(RCD_SELF_TEST_S)
        tripped = board.read_rcd() is not RcdState.CLEAR
        board.set_rcd_test(False)
        await asyncio.sleep(RCD_SELF_TEST_S)
        log_event(logger, "rcd.self_test", passed=tripped)
        return tripped

    # --- the loop -----------------------------------------------------------------------

    def _post(self, event: SamplerEvent) -> None:
        """Called from the sampler thread; never blocks it."""
        loop, queue = self._loop, self._queue
        if loop is not None and queue is not None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

    async def _step(self) -> None:
        assert self._queue is not None and self.charger is not None
        wait_s = MAX_LOOP_WAIT_S
        gate_deadline = self.gate.next_deadline_ns() if self.gate is not None else None
        for deadline in (self.charger.next_deadline_ns(), gate_deadline):
            if deadline is not None:
                wait_s = min(wait_s, max(0.0, (deadline - self._clock()) / 1e9))
        if self._discharge_wanted() and not self._discharge_closed:
            wait_s = min(wait_s, DISCHARGE_RETRY_S)
        if self.interlock is not None and self.interlock.closed(Relay.MAIN):
            wait_s = min(wait_s, METER_PERIOD_S)  # power may flow: watch the meter closely
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout=wait_s)
        except TimeoutError:
            event = None
        now = self._clock()
        outputs = self._dispatch(event, now) if event is not None else self.charger.poll(now)
        self._apply(outputs)
        self._log_notes()
        assert self.charger is not None
        present = self.charger.vehicle_present
        self.services.follow_plug(present)
        self.recorder.plugged(present)
        if present and self._plugged_in_at is None:
            self._plugged_in_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        elif not present:
            self._plugged_in_at = self._ev_mac = None
        self._run_gate()
        if now - self._stats_at >= STATS_EVERY_NS:
            self._stats_at = now
            self.log_stats()

    def _dispatch(self, event: LoopEvent, now: int) -> Outputs:
        charger = self.charger
        assert charger is not None
        if isinstance(event, Matched):
            self._ev_mac = event.ev_mac.hex(":")
            self.recorder.ev_mac(self._ev_mac)
            return charger.on_slac_matched(now)
        if isinstance(event, GaveUp):
            return charger.on_slac_gave_up(event.reason, now)
        if isinstance(event, PilotWakeUp):
            return charger.on_slac_wakeup(event.duration_ns, now)
        if isinstance(event, LinkChange):
            if self.gate is not None:
                self.gate.on_link(event.up)
            return charger.poll(now)
        if isinstance(event, PevEvent):
            if self.gate is not None:
                self.gate.on_pev(event)
            return charger.poll(now)
        if isinstance(event, LimitRequest):
            previous = charger.current_limit_a
            outputs = charger.set_current_limit(event.amps, now)
            log_event(
                logger,
                "charger.limit_set",
                limit_a=f"{event.amps:g}",
                previous_a=f"{previous:g}",
                rating_a=f"{charger.rating_a:g}",
            )
            if not event.applied.done():
                event.applied.set_result(None)
            return outputs
        if isinstance(event, PilotChange):
            fields = [("from", event.previous.value), ("to", event.current.value)]
            logger.info("%s", kv("pilot.changed", fields + [("own_drive", True)] * event.own_drive))
            outputs = charger.on_pilot(event.current, now, event.own_drive)
            if self.gate is not None:  # the only place the charger's vehicle_present changes
                self.gate.plugged(charger.vehicle_present)
                self.gate.on_pilot(event.current)
            return outputs
        if isinstance(event, RcdChange):
            log_event(logger, "rcd.changed", state=event.state.value)
            return charger.on_rcd(event.state, now)
        if isinstance(event, ProximityChange):
            reading = event.reading
            log_event(
                logger,
                "proximity.changed",
                state=reading.state.value,
                cable_a=reading.cable_a if reading.cable_a is not None else "none",
            )
            return charger.on_proximity(reading, now)
        if isinstance(event, SamplerFailed):
            raise SamplerError(f"the sampler thread failed: {event.error}")
        self.recorder.relay("main", False, f"interlock: {event.reason}")
        if self._discharge_closed:
            self._discharge_closed = False
            self.recorder.relay("discharge", False, f"interlock: {event.reason}")
        log_event(logger, "interlock.trip", logging.WARNING, reason=event.reason)
        if event.contactor_fault is not None:
            return self._latch_permanent(event.contactor_fault)
        return charger.poll(now)

    # --- control ------------------------------------------------------------------------

    async def set_limit(self, amps: float | None) -> dict[str, Any]:
        """``evse-gatekeeper limit``: lower (or restore) the current the PWM offers. Only
        0 (pause) or 6 A up to the circuit rating; the rating itself is config, not this."""
        queue, charger = self._queue, self.charger
        if queue is None or charger is None:
            raise LimitRefused("the charger is not running yet")
        rating = charger.rating_a
        if amps is None:
            amps = rating
        elif amps > rating:
            raise LimitRefused(
                f"{amps:g} A is above the circuit rating {rating:g} A ([charger] max_current_a)"
            )
        elif amps != 0 and amps < MIN_CURRENT_A:
            raise LimitRefused(
                f"{amps:g} A cannot be offered: 0 pauses charging, else "
                f"{MIN_CURRENT_A:g}..{rating:g} A"
            )
        applied = asyncio.get_running_loop().create_future()
        queue.put_nowait(LimitRequest(float(amps), applied))
        try:
            await asyncio.wait_for(applied, LIMIT_APPLY_TIMEOUT_S)
        except TimeoutError:
            raise LimitRefused("the charger did not take it in time") from None
        return self._current()

    def _current(self) -> dict[str, Any]:
        charger = self.charger
        if charger is None:
            return {"limit_a": None, "rating_a": None, "paused": False}
        limit = charger.current_limit_a
        return {"limit_a": limit, "rating_a": charger.rating_a, "paused": limit == 0}

    # --- status -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What ``evse-gatekeeper status`` shows (asked on the loop by the control socket)."""
        charger, interlock = self.charger, self.interlock
        plc = self.services.plc
        authorization = self.gate.snapshot() if self.gate is not None else {"state": "none"}
        session = None
        if self._plugged_in_at is not None:
            session = {"id": self.recorder.session_id, "plugged_in_at": self._plugged_in_at,
                       **{k: authorization.get(k) for k in ("lfdi", "ism", "vin")}}  # fmt: skip
        faults = sorted(k.value for k in charger.faults) if charger is not None else []
        if interlock is not None:
            faults = sorted({*faults, *interlock.latched})
        return {
            "firmware": __version__,
            "pilot": interlock.confirmed.value if interlock is not None else None,
            "charger": charger.state_id if charger is not None else None,
            "relays": {
                relay.value: "closed"
                if interlock is not None and interlock.closed(relay)
                else "open"
                for relay in Relay
            },
            "plc": {
                "link": "off" if plc is None else ("up" if plc.link_up else "down"),
                "ev_mac": self._ev_mac,
            },
            "session": session,
            "authorization": {k: authorization.get(k) for k in ("state", "limit_w", "reasons")},
            "approvals": self._approvals_status(),
            "faults": faults,
            "current": self._current(),
            "meter_w": self.meter_w,
            "bridge": self.services.link.state(),
        }

    def _approvals_status(self) -> dict[str, Any] | None:
        watch = self.services.approvals
        if watch is None:
            return None
        store = watch.store
        current = store.current
        if current is None:
            return {
                "version": None,
                "in_force": False,
                "problem": store.problem or "none installed",
            }
        in_force = store.in_force() is not None
        return {
            "version": current.version,
            "issuer": current.issuer,
            "expires_at": rfc3339(current.expires_at),
            "entries": len(current.entries),
            "in_force": in_force,
            "problem": None if in_force else (store.problem or "expired or not yet valid"),
        }

    # --- the discharge path ---------------------------------------------------------------

    def _run_gate(self) -> None:
        """The J3072 gate's periodic part: the session's deadlines, TLS and the approval
        list, the meter; then main opened if the gate says so, and the discharge relay."""
        gate, charger, interlock, board = self.gate, self.charger, self.interlock, self.board
        if gate is None or charger is None or interlock is None or board is None:
            return
        gate.poll()
        self.meter_w = board.read_meter().power_w
        gate.on_meter(self.meter_w, interlock.closed(Relay.MAIN))
        reasons = gate.drain_open_main()
        if reasons:
            self.recorder.fault(FaultKind.UNAUTHORIZED_DISCHARGE.value, "; ".join(reasons))
            self._apply(charger.on_unauthorized_discharge(self._clock()))
            self._log_notes()
        self._apply_discharge()
        self._follow_bridge(gate)

    def _follow_bridge(self, gate: Gate) -> None:
        """The site bridge is open exactly while the session is authorized (issue #6)."""
        bound = gate.bound
        if gate.authorized and bound is not None:
            self.services.link.follow(True, bound.lfdi, "")
        else:
            reasons = bound.session.reasons if bound is not None else ("no session",)
            self.services.link.follow(False, "", "; ".join(reasons) or "not authorized")

    def _discharge_wanted(self) -> bool:
        """Authorized, main closed for charging, no fault: the interlock adds the pilot
        (C/D), main's own feedback and its latches at the instant of closing."""
        gate, charger, interlock = self.gate, self.charger, self.interlock
        if gate is None or charger is None or interlock is None:
            return False
        return (
            gate.authorized
            and charger.state_id in POWER_STATES
            and not charger.faults
            and interlock.closed(Relay.MAIN)
        )

    def _apply_discharge(self) -> None:
        interlock = self.interlock
        assert interlock is not None
        actual = interlock.closed(Relay.DISCHARGE)
        if self._discharge_closed and not actual:  # the interlock opened it with main
            self._discharge_closed = False
            self.recorder.relay("discharge", False, "opened with main")
            log_event(logger, "relay.opened_with_main", relay="discharge")
        wanted = self._discharge_wanted()
        if wanted == actual:
            return
        now = self._clock()
        if not wanted:
            interlock.command(Relay.DISCHARGE, False, now)
            self._discharge_closed = False
            reason = "j3072: " + ("revoked" if self.gate and not self.gate.authorized else "main")
            self.recorder.relay("discharge", False, reason)
            log_event(logger, "relay.command", relay="discharge", closed=False)
            return
        if interlock.command(Relay.DISCHARGE, True, now):
            self._discharge_closed = True
            self.recorder.relay("discharge", True, "j3072: authorized")
            log_event(logger, "relay.command", relay="discharge", closed=True)

    def _recorded_fault(self) -> FaultKind | None:
        """A permanent fault recorded before this start (an unreadable record counts)."""
        try:
            recorded = self._fault_store.load()
        except FaultStoreError as err:
            log_event(logger, "fault.record_unreadable", logging.ERROR, error=str(err))
            return FaultKind.RECORD_UNREADABLE
        if recorded is not None:
            log_event(
                logger,
                "fault.recorded",
                logging.WARNING,
                kind=recorded.kind.value,
                at=recorded.at,
                clear_with="evse-gatekeeper faults clear",
            )
            return recorded.kind
        return None

    def _latch_permanent(self, kind: FaultKind) -> Outputs:
        """Record the fault (before it is reported), then make the EVSE inoperative."""
        assert self.interlock is not None and self.charger is not None
        now = self._clock()
        self.interlock.latch_permanent(kind, now)
        if kind is not FaultKind.RECORD_UNREADABLE:
            try:
                if self._fault_store.load() is None:
                    at = datetime.now(UTC).isoformat(timespec="seconds")
                    self._fault_store.save(PermanentFault(kind, at))
            except FaultStoreError as err:
                log_event(logger, "fault.record_failed", logging.ERROR, error=str(err))
        return self.charger.on_permanent_fault(kind, now)

    def _apply(self, outputs: Outputs) -> None:
        """Drive the outputs through the interlock: relays first when opening, pilot first
        when closing (the interlock only closes onto a running PWM)."""
        interlock, charger = self.interlock, self.charger
        assert interlock is not None and charger is not None
        now = self._clock()
        before = self._applied
        if not outputs.discharge_closed and before.discharge_closed:
            interlock.command(Relay.DISCHARGE, False, now)
        if not outputs.main_closed and before.main_closed:
            interlock.command(Relay.MAIN, False, now)
            self.recorder.relay("main", False, f"charger: {charger.state_id}")
            log_event(logger, "relay.command", relay="main", closed=False)
        if outputs.pilot != before.pilot:
            interlock.set_pilot(outputs.pilot)
            log_event(
                logger,
                "pilot.output",
                drive=outputs.pilot.drive.value,
                duty_pct=outputs.pilot.duty_pct,
            )
        self._applied = outputs
        if outputs.main_closed and not before.main_closed:
            if interlock.command(Relay.MAIN, True, now):
                self.recorder.relay("main", True, f"charger: {charger.state_id}")
                log_event(logger, "relay.command", relay="main", closed=True)
            else:
                log_event(logger, "relay.refused", logging.WARNING, relay="main")
                self._applied = Outputs(outputs.pilot, main_closed=False)
                self._apply(charger.on_close_refused(self._clock()))

    def _log_notes(self) -> None:
        assert self.charger is not None
        for note in self.charger.drain_notes():
            if note.event == "fault.latched":
                fields = dict(note.fields)
                self.recorder.fault(str(fields["kind"]), f"clears_on={fields['clears_on']}")
            self._log_note(note)

    @staticmethod
    def _log_note(note: Note) -> None:
        warn = note.event.startswith(("fault.latched", "plc.fallback"))
        level = logging.WARNING if warn else logging.INFO
        logger.log(level, "%s", kv(note.event, note.fields))

    def log_stats(self) -> None:
        self.services.log_stats()
        if self.sampler is not None:
            stats = self.sampler.stats
            log_event(
                logger,
                "sampler.stats",
                ticks=stats.ticks,
                overruns=stats.overruns,
                max_late_ms=round(stats.max_late_ns / 1e6, 3),
            )

    # --- shutdown -----------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Relays open first, each step in its own try: one failure must not skip the rest."""
        steps: list[tuple[str, Callable[[], object]]] = []
        if self.interlock is not None:
            interlock = self.interlock
            steps.append(("relays", lambda: interlock.open_all(self._clock())))
            steps.append(("pilot", lambda: interlock.set_pilot(SAFE_PILOT)))
            steps.append(("confirm", self._confirm_open))
        steps.append(("notify", self.notifier.stopping))
        if self._watchdog_task is not None:
            steps.append(("watchdog", self._watchdog_task.cancel))
        steps.append(("services", self.services.close))
        steps.append(("journal", self.recorder.close))
        if self.sampler is not None:
            steps.append(("stats", self.log_stats))
            steps.append(("sampler", self.sampler.stop))
        if self.board is not None:
            steps.append(("board", self.board.close))
        for name, step in steps:
            try:
                step()
            except Exception as err:
                log_event(
                    logger,
                    "gatekeeper.shutdown_step_failed",
                    logging.ERROR,
                    step=name,
                    error=repr(err),
                )
        log_event(logger, "gatekeeper.stopped")

    def _confirm_open(self) -> None:
        """Wait (bounded) for the feedback to show both relays open, and say what it shows."""
        board = self.board
        assert board is not None
        deadline = time.monotonic() + SHUTDOWN_CONFIRM_S
        while True:
            seen = {relay: board.read_feedback(relay) for relay in Relay}
            if all(c is not Contacts.CLOSED for c in seen.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        logger.info(
            "%s", kv("gatekeeper.safe_state", [(r.value, c.value) for r, c in seen.items()])
        )
