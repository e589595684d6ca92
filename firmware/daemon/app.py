"""The composition root and supervisor of the gatekeeper process: reads the config, starts
the safety process, wires the protocol parts.

Start-up: start the safety process (it opens the board in its safe state, self-tests the RCD,
runs the boot weld check and arms its interlock), then run the charger on the event loop and
start the services. The relays and the pilot are only ever driven over there: this process
sends wishes (``firmware.safety.link``) and hears what was granted. Shutdown (a signal or a
crash) asks the safety process for its safe state before anything else; if this process dies
instead, the safety process opens everything on its own. Only this module catches broadly: it
logs, forces safe outputs, exits non-zero.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from firmware import firmware_version
from firmware.approvals.approval_list import rfc3339
from firmware.charger.controller import Charger, ChargerSettings, Note, PlcPolicy
from firmware.charger.faults import FaultKind
from firmware.charger.outputs import Outputs
from firmware.daemon.communication import Services
from firmware.daemon.config import Config
from firmware.daemon.control_socket import ControlServer, LimitRefused
from firmware.daemon.sdnotify import HealthWatchdog, Notifier
from firmware.errors import ConfigError
from firmware.j3072.gate import Gate
from firmware.journal.recorder import Recorder
from firmware.logs import kv, log_event
from firmware.pilot.confirm import PilotChange
from firmware.pilot.duty import MIN_CURRENT_A
from firmware.plc.slac import GaveUp, Matched, PilotWakeUp
from firmware.plc.stack import LinkChange, PlcEvent
from firmware.safety import channel as ch
from firmware.safety.interlock import DEADMAN_LAPSED
from firmware.safety.link import (
    SafetyEvent,
    SafetyHandle,
    SafetyLink,
    SafetyLost,
    SafetyProcessError,
    spawn_process,
)
from firmware.safety.settings import SafetySettings
from firmware.sep2.store import PevEvent
from hal import HalError, Relay

logger = logging.getLogger(__name__)

# A thread must get the GIL back quickly even while the loop parses a large XML body;
# CPython's default hand-over interval (5 ms) is a twentieth of the heartbeat's allowance.
GIL_SWITCH_INTERVAL_S = 0.0005
GATEKEEPER_NICE = -10  # the unit sets the same with Nice=; here for runs outside systemd
MAX_LOOP_WAIT_S = 0.25
STATS_EVERY_NS = 60_000_000_000

METER_PERIOD_S = 0.1  # the J3072 meter checks while main is closed (the safety sends 10/s)
DISCHARGE_RETRY_S = 0.02  # while the gate waits for main's contacts to confirm closed
POWER_STATES = ("charging", "ventilating")

LIMIT_APPLY_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class LimitRequest:
    """The operator's charging-current limit, applied on the loop's turn like any input."""

    amps: float
    applied: asyncio.Future[None]


LoopEvent = SafetyEvent | PlcEvent | PevEvent | LimitRequest


def _claim_the_cpu() -> None:
    """Ahead of other work on the board (the heartbeat must leave every 20 ms), and the GIL
    handed to the heartbeat thread quickly; where refused, said once."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, GATEKEEPER_NICE)
    except OSError as err:
        log_event(logger, "gatekeeper.priority_refused", logging.WARNING,
                  nice=GATEKEEPER_NICE, reason=err.strerror)  # fmt: skip


def safety_settings(config: Config) -> SafetySettings:
    """What the safety process needs of the config (it reads no config file itself)."""
    return SafetySettings(
        board=config.board,
        ventilation=config.charger.ventilation,
        sample_rate_hz=config.charger.sample_rate_hz,
        proximity=config.charger.proximity,
        state_dir=config.paths.state_dir,
        log_level=config.log.level,
    )


class Gatekeeper:
    def __init__(
        self,
        config: Config,
        clock: Callable[[], int] = time.monotonic_ns,
        launcher: Callable[[socket.socket], SafetyHandle] = spawn_process,
    ) -> None:
        self.config = config
        self._clock = clock
        self.safety = SafetyLink(safety_settings(config), self._post, launcher, clock)
        self.charger: Charger | None = None
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[LoopEvent | None] | None = None
        self.services = Services(config, self._post_plc)
        self.gate: Gate | None = None
        self.recorder = Recorder(None)  # the journal, once the state directory exists
        self._stopping = False
        self._applied = Outputs(self.safety.pilot_output, main_closed=False)
        self._main_request: int | None = None  # the closing of main awaiting its answer
        self._discharge_request: int | None = None
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
        except SafetyProcessError as err:
            log_event(logger, "gatekeeper.safety_lost", logging.CRITICAL, reason=str(err))
            return 1
        except Exception as err:  # the supervisor: anything unexpected ends in the safe state
            logger.exception("%s", kv("gatekeeper.crash", [("error", repr(err))]))
            return 1
        finally:
            await self._shutdown()

    def request_stop(self) -> None:
        """Thread-safe: ask the loop to stop (signal handlers and tests call this)."""
        self._stopping = True
        if self._loop is not None and self._queue is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    # --- start-up -----------------------------------------------------------------------

    async def _start(self) -> None:
        config = self.config
        _claim_the_cpu()
        config.paths.state_dir.mkdir(parents=True, exist_ok=True)
        self.recorder = Recorder.open(config.paths.state_dir)
        ready = await self._start_safety()
        ventilation = config.charger.ventilation and ready.supports_ventilation
        max_current_a = min(config.charger.max_current_a, ready.max_current_a)
        log_event(
            logger,
            "board.opened",
            backend=config.board.backend,
            max_current_a=max_current_a,
            ventilation=ventilation,
        )
        self._start_charger(max_current_a, ventilation, ready.permanent)
        await self.services.start(self.safety.mirror)
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

    async def _start_safety(self) -> ch.Ready:
        """The safety process: board opened in its safe state, RCD self-tested, the boot weld
        check run and the interlock armed before it answers. A board it cannot open is the
        CLI's one-line error, as before the split."""
        try:
            return await self.safety.start()
        except SafetyProcessError as err:
            text = str(err)
            if "board: " in text:
                raise HalError(text.split("board: ", 1)[1]) from None
            raise

    def _start_charger(
        self, max_current_a: float, ventilation: bool, permanent: FaultKind | None
    ) -> None:
        interval_ns = self.config.contactor.min_close_interval_ms * 1_000_000
        # the interlock wants two samples under PWM before a closing: give it three, plus margin
        period_ns = 1_000_000_000 // self.config.charger.sample_rate_hz
        settle_ns = 3 * period_ns + 5_000_000
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
            self._apply(self.charger.on_permanent_fault(permanent, self._clock()))
        self._apply(self.charger.outputs)
        self._log_notes()

    def _start_watchdog(self) -> None:
        """WATCHDOG=1 while the safety process's sampler ticks and the loop turns."""
        mirror = self.safety.mirror
        watchdog = HealthWatchdog(
            self.notifier, lambda: mirror.status.t_ns if mirror.status else 0, self._clock
        )
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

    # --- the loop -----------------------------------------------------------------------

    def _post(self, event: SafetyEvent) -> None:
        """Called on the loop by the safety link's reader."""
        if self._queue is not None:
            self._queue.put_nowait(event)

    async def _step(self) -> None:
        assert self._queue is not None and self.charger is not None
        wait_s = MAX_LOOP_WAIT_S
        gate_deadline = self.gate.next_deadline_ns() if self.gate is not None else None
        for deadline in (self.charger.next_deadline_ns(), gate_deadline):
            if deadline is not None:
                wait_s = min(wait_s, max(0.0, (deadline - self._clock()) / 1e9))
        if self._discharge_wanted() and not self._discharge_closed:
            wait_s = min(wait_s, DISCHARGE_RETRY_S)
        if self.safety.closed(Relay.MAIN):
            wait_s = min(wait_s, METER_PERIOD_S)  # power may flow: watch the meter closely
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout=wait_s)
        except TimeoutError:
            event = None
        now = self._clock()
        outputs = self._dispatch(event, now) if event is not None else self.charger.poll(now)
        self._apply(outputs)
        self._log_notes()
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
            return self._on_limit(event, now)
        if isinstance(event, PilotChange):
            fields = [("from", event.previous.value), ("to", event.current.value)]
            logger.info("%s", kv("pilot.changed", fields + [("own_drive", True)] * event.own_drive))
            outputs = charger.on_pilot(event.current, now, event.own_drive)
            if self.gate is not None:  # the only place the charger's vehicle_present changes
                self.gate.plugged(charger.vehicle_present)
                self.gate.on_pilot(event.current)
            return outputs
        if isinstance(event, ch.RcdChange):
            log_event(logger, "rcd.changed", state=event.state.value)
            return charger.on_rcd(event.state, now)
        if isinstance(event, ch.ProximityChange):
            reading = event.reading
            log_event(
                logger,
                "proximity.changed",
                state=reading.state.value,
                cable_a=reading.cable_a if reading.cable_a is not None else "none",
            )
            return charger.on_proximity(reading, now)
        if isinstance(event, ch.RelayResult):
            return self._on_relay_result(event, now)
        if isinstance(event, ch.PermanentFault):
            level = logging.WARNING if event.recorded else logging.CRITICAL
            log_event(logger, "fault.record_written", level, kind=event.kind.value,
                      recorded=event.recorded)  # fmt: skip
            return charger.poll(now)
        if isinstance(event, SafetyLost):
            raise SafetyProcessError(event.reason)
        return self._on_trip(event, now)

    def _on_trip(self, event: ch.Trip, now: int) -> Outputs:
        charger = self.charger
        assert charger is not None
        self._main_request = self._discharge_request = None
        self.recorder.relay("main", False, f"interlock: {event.reason}")
        if self._discharge_closed:
            self._discharge_closed = False
            self.recorder.relay("discharge", False, f"interlock: {event.reason}")
        log_event(logger, "interlock.trip", logging.WARNING, reason=event.reason)
        if event.contactor_fault is not None:
            return charger.on_permanent_fault(event.contactor_fault, now)
        if event.reason == DEADMAN_LAPSED and self._applied.main_closed:
            # no pilot or fault event explains it: the charger falls back and retries
            self._applied = Outputs(self._applied.pilot, main_closed=False)
            return charger.on_close_refused(now)
        return charger.poll(now)

    def _on_limit(self, event: LimitRequest, now: int) -> Outputs:
        charger = self.charger
        assert charger is not None
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

    def _on_relay_result(self, result: ch.RelayResult, now: int) -> Outputs:
        """The safety process's answer to a closing: journaled once granted; a refused main
        closing goes back to the charger, a refused discharge closing is retried."""
        charger = self.charger
        assert charger is not None
        if result.relay is Relay.DISCHARGE and result.request == self._discharge_request:
            self._discharge_request = None
            if result.granted:  # if no longer wanted, the gate's turn of this step opens it
                self._discharge_closed = True
                self.recorder.relay("discharge", True, "j3072: authorized")
                log_event(logger, "relay.command", relay="discharge", closed=True)
            return charger.poll(now)
        if result.relay is not Relay.MAIN or result.request != self._main_request:
            return charger.poll(now)  # an opening, or an answer overtaken by a newer wish
        self._main_request = None
        if result.granted:
            self.recorder.relay("main", True, f"charger: {charger.state_id}")
            log_event(logger, "relay.command", relay="main", closed=True)
            return charger.poll(now)
        log_event(logger, "relay.refused", logging.WARNING, relay="main")
        self._applied = Outputs(self._applied.pilot, main_closed=False)
        return charger.on_close_refused(now)

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
        charger, mirror = self.charger, self.safety.mirror
        plc = self.services.plc
        authorization = self.gate.snapshot() if self.gate is not None else {"state": "none"}
        session = None
        if self._plugged_in_at is not None:
            session = {"id": self.recorder.session_id, "plugged_in_at": self._plugged_in_at,
                       **{k: authorization.get(k) for k in ("lfdi", "ism", "vin")}}  # fmt: skip
        faults = sorted(k.value for k in charger.faults) if charger is not None else []
        latched = mirror.status.latched if mirror.status is not None else ()
        return {
            "firmware": firmware_version(),
            "pilot": mirror.pilot.value,
            "charger": charger.state_id if charger is not None else None,
            "relays": {
                relay.value: "closed" if self.safety.closed(relay) else "open" for relay in Relay
            },
            "plc": {
                "link": "off" if plc is None else ("up" if plc.link_up else "down"),
                "ev_mac": self._ev_mac,
            },
            "session": session,
            "authorization": {k: authorization.get(k) for k in ("state", "limit_w", "reasons")},
            "approvals": self._approvals_status(),
            "faults": sorted({*faults, *latched}),
            "current": self._current(),
            "meter_w": self.meter_w,
            "bridge": self.services.link.state(),
            "processes": self._processes(),
        }

    def _processes(self) -> dict[str, Any]:
        """Both processes: the safety process's health as it last reported it."""
        safety, status = self.safety, self.safety.mirror.status
        ready = safety.mirror.ready
        sampler = None
        if status is not None:
            age_ms = max(0, self._clock() - status.t_ns) // 1_000_000
            sampler = {"ticks": status.ticks, "overruns": status.overruns,
                       "max_late_ms": round(status.max_late_ns / 1e6, 3),
                       "last_report_ms_ago": age_ms}  # fmt: skip
        return {
            "gatekeeper": {"pid": os.getpid()},
            "safety": {
                "pid": safety.handle.pid if safety.handle is not None else None,
                "alive": safety.lost is None and ready is not None,
                "realtime": ready.realtime if ready is not None else None,
                "sampler": sampler,
                "lost": safety.lost,
                "max_heartbeat_gap_ms": round(safety.max_heartbeat_gap_ns / 1e6, 3),
            },
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
        gate, charger = self.gate, self.charger
        if gate is None or charger is None:
            return
        gate.poll()
        status = self.safety.mirror.status
        self.meter_w = status.meter_w if status is not None else 0.0
        gate.on_meter(self.meter_w, self.safety.closed(Relay.MAIN))
        reasons = gate.drain_open_main()
        if reasons:
            self.recorder.fault(FaultKind.UNAUTHORIZED_DISCHARGE.value, "; ".join(reasons))
            self._apply(charger.on_unauthorized_discharge(self._clock()))
            self._log_notes()
        self._apply_discharge()
        self._follow_bridge(gate)

    def _follow_bridge(self, gate: Gate) -> None:
        """The site bridge is open exactly while the session is authorized."""
        bound = gate.bound
        if gate.authorized and bound is not None:
            self.services.link.follow(True, bound.lfdi, "")
        else:
            reasons = bound.session.reasons if bound is not None else ("no session",)
            self.services.link.follow(False, "", "; ".join(reasons) or "not authorized")

    def _discharge_wanted(self) -> bool:
        """Authorized, main closed for charging, no fault: the safety process adds the pilot
        (C/D), main's own feedback and its latches at the instant of closing."""
        gate, charger = self.gate, self.charger
        if gate is None or charger is None:
            return False
        return (
            gate.authorized
            and charger.state_id in POWER_STATES
            and not charger.faults
            and self.safety.closed(Relay.MAIN)
        )

    def _apply_discharge(self) -> None:
        safety = self.safety
        actual = safety.closed(Relay.DISCHARGE)
        if self._discharge_closed and not actual:  # the interlock opened it with main
            self._discharge_closed = False
            self.recorder.relay("discharge", False, "opened with main")
            log_event(logger, "relay.opened_with_main", relay="discharge")
        wanted = self._discharge_wanted()
        if wanted == actual:
            return
        if not wanted:
            safety.wish(Relay.DISCHARGE, False)
            self._discharge_closed = False
            self._discharge_request = None
            reason = "j3072: " + ("revoked" if self.gate and not self.gate.authorized else "main")
            self.recorder.relay("discharge", False, reason)
            log_event(logger, "relay.command", relay="discharge", closed=False)
            return
        if self._discharge_request is None:  # one closing in flight at a time
            self._discharge_request = safety.wish(Relay.DISCHARGE, True)

    def _apply(self, outputs: Outputs) -> None:
        """Send the outputs as wishes: relays first when opening, pilot first when closing
        (the interlock only closes onto a running PWM). A closing is answered later."""
        charger = self.charger
        assert charger is not None
        safety = self.safety
        before = self._applied
        if not outputs.main_closed and before.main_closed:
            safety.wish(Relay.MAIN, False)
            self._main_request = self._discharge_request = None
            self.recorder.relay("main", False, f"charger: {charger.state_id}")
            log_event(logger, "relay.command", relay="main", closed=False)
        if outputs.pilot != before.pilot:
            safety.set_pilot(outputs.pilot)
            log_event(
                logger,
                "pilot.output",
                drive=outputs.pilot.drive.value,
                duty_pct=outputs.pilot.duty_pct,
            )
        self._applied = outputs
        if outputs.main_closed and not before.main_closed:
            self._main_request = safety.wish(Relay.MAIN, True)

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
        status = self.safety.mirror.status
        if status is not None:
            log_event(
                logger,
                "sampler.stats",
                ticks=status.ticks,
                overruns=status.overruns,
                max_late_ms=round(status.max_late_ns / 1e6, 3),
            )

    # --- shutdown -----------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """The safe state first (the safety process opens both relays, confirms them open and
        drives the pilot to +12 V), then the rest, each step in its own try."""
        steps: list[tuple[str, Callable[[], object]]] = [
            ("relays", self._stop_safety),
            ("notify", self.notifier.stopping),
            ("stats", self.log_stats),
            ("watchdog", self._cancel_watchdog),
            ("services", self.services.close),
            ("control", self._stop_control),
            ("services", self.services.stop),
            ("journal", self.recorder.close),
        ]
        for name, step in steps:
            try:
                result: Any = step()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as err:
                log_event(logger, "gatekeeper.shutdown_step_failed", logging.ERROR,
                          step=name, error=repr(err))  # fmt: skip
        log_event(logger, "gatekeeper.stopped")

    async def _stop_safety(self) -> None:
        safe = await self.safety.stop()
        if safe is not None:
            log_event(logger, "gatekeeper.safe_state", main=safe.main.value,
                      discharge=safe.discharge.value)  # fmt: skip
        else:
            log_event(logger, "gatekeeper.safe_state_unconfirmed", logging.WARNING,
                      reason=self.safety.lost or "no answer")  # fmt: skip

    def _cancel_watchdog(self) -> None:
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()

    async def _stop_control(self) -> None:
        if self.control is not None:
            await self.control.stop()
