"""The gatekeeper's event loop once every part is running: each event goes to its handler,
the charger's outputs go to the safety process as wishes, the J3072 gate's word goes to the
charger, and ``status`` assembles what each part reports of itself.

Built by the supervisor (``firmware.daemon.app``) from parts that arrive complete; it starts
and stops nothing. The discharge path is wanted in one place only, the charger's outputs
(the gate's authorization is one of its inputs), and one path, ``_apply``, sends both relays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from firmware import firmware_version
from firmware.charger.controller import Charger, ChargerNote, NoteEvent
from firmware.charger.faults import FaultKind
from firmware.charger.outputs import Outputs
from firmware.clock.watch import ClockWatch
from firmware.config.reader import SectionReader
from firmware.daemon.communication import Communication
from firmware.daemon.control_socket import RequestRefused
from firmware.j3072.gate import METER_BLIND, Gate
from firmware.journal.recorder import Recorder
from firmware.logs import kv, log_event
from firmware.meter.report import meter_status
from firmware.ocpp.upstream import StationView
from firmware.pilot.confirm import PilotChange
from firmware.pilot.duty import MIN_CURRENT_A
from firmware.plc.slac import GaveUp, Matched, PilotWakeUp
from firmware.plc.stack import LinkChange, PlcEvent
from firmware.safety import channel as ch
from firmware.safety.interlock import DEADMAN_LAPSED
from firmware.safety.link import SafetyEvent, SafetyLink, SafetyLost, SafetyProcessError
from firmware.sep2.functions import describe, read_function
from firmware.sep2.site import SET_BY_CONFIG, SET_BY_SOCKET
from firmware.sep2.store import PEV_EVENTS, PevEvent
from hal import MeterReading, Relay
from hal.meter import Meter
from hal.meter.board import BoardMeter, Report

if TYPE_CHECKING:
    from firmware.ocpp.service import OcppService as Upstream

logger = logging.getLogger(__name__)

MAX_LOOP_WAIT_S = 0.25
STATS_EVERY_NS = 60_000_000_000
METER_PERIOD_S = 0.1  # the J3072 meter checks while main is closed (the meter polls at 10 Hz)
METER_FRESH_NS = 500_000_000  # an untrusted meter's reading this recent is still acted on
DISCHARGE_RETRY_S = 0.02  # while the discharge path waits for main's contacts to confirm
LIMIT_APPLY_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class LimitRequest:
    """The operator's charging-current limit, applied on the loop's turn like any input."""

    amps: float
    applied: asyncio.Future[None]


@dataclass(slots=True)
class CurrentLimits:
    """The charging current each party asked for; the lower one is offered (docs/ocpp.md
    "Dispatch": a CSMS may lower the site owner's limit, never raise it)."""

    owner_a: float | None = None  # ``evse-gatekeeper limit`` (None: the circuit rating)
    csms_a: float | None = None  # a CSMS's charging profile (None: none in force)

    def offered_a(self, rating_a: float) -> float:
        return min(a for a in (self.owner_a, self.csms_a, rating_a) if a is not None)

    def set_by(self) -> str:
        owner, csms = self.owner_a, self.csms_a
        if csms is not None and (owner is None or csms < owner):
            return "csms"
        return SET_BY_SOCKET if owner is not None else SET_BY_CONFIG


LoopEvent = SafetyEvent | PlcEvent | PevEvent | LimitRequest
Handler = Callable[[Any, int], Outputs]


class Running:
    def __init__(
        self,
        charger: Charger,
        gate: Gate,
        safety: SafetyLink,
        communication: Communication,
        recorder: Recorder,
        queue: asyncio.Queue[LoopEvent | None],
        clock: Callable[[], int] = time.monotonic_ns,
        clock_watch: ClockWatch | None = None,
        meter: Meter | None = None,
    ) -> None:
        """``meter``: the EVSE's meter (default: the board's own, as the safety process
        reports it)."""
        self.charger, self.gate, self.safety = charger, gate, safety
        self.clock_watch = clock_watch
        self.meter = meter or BoardMeter(board_report(safety), has_meter=True)
        self.communication, self.recorder = communication, recorder
        self._queue, self._clock = queue, clock
        self._applied = Outputs(safety.pilot_output, main_closed=False)  # what was sent
        self._main_request: int | None = None  # the closing of main awaiting its answer
        self._discharge_request: int | None = None
        self._stats_at = 0
        self._ev_mac: str | None = None
        self._plugged_in_at: str | None = None
        self.upstream: Upstream | None = None  # the OCPP station, when [ocpp] has a url
        self.limits = CurrentLimits()  # who asked for which charging current
        self._handlers: dict[type, Handler] = {
            Matched: self._on_matched,
            GaveUp: lambda e, now: charger.on_slac_gave_up(e.reason, now),
            PilotWakeUp: lambda e, now: charger.on_slac_wakeup(e.duration_ns, now),
            LinkChange: self._on_link,
            **dict.fromkeys(PEV_EVENTS, self._on_pev),
            LimitRequest: self._on_limit,
            PilotChange: self._on_pilot,
            ch.RcdChange: self._on_rcd,
            ch.ProximityChange: self._on_proximity,
            ch.RelayResult: self._on_relay_result,
            ch.FaultRecorded: self._on_recorded,
            ch.Trip: self._on_trip,
            SafetyLost: self._on_safety_lost,
        }
        self._apply(charger.outputs)  # e.g. F at once for an inoperative EVSE

    # --- the loop -----------------------------------------------------------------------

    async def step(self) -> None:
        """Wait for one event (or the next deadline), handle it, apply what follows."""
        charger = self.charger
        wait_s = MAX_LOOP_WAIT_S
        for deadline in (charger.next_deadline_ns(), self.gate.next_deadline_ns()):
            if deadline is not None:
                wait_s = min(wait_s, max(0.0, (deadline - self._clock()) / 1e9))
        if self._applied.discharge_closed and not self.safety.closed(Relay.DISCHARGE):
            wait_s = min(wait_s, DISCHARGE_RETRY_S)
        if self.safety.closed(Relay.MAIN):
            wait_s = min(wait_s, METER_PERIOD_S)  # power may flow: watch the meter closely
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout=wait_s)
        except TimeoutError:
            event = None
        now = self._clock()
        if event is None:
            self._apply(self.charger.poll(now))
        else:
            self._apply(self._handlers[type(event)](event, now))
        self._follow_plug()
        self._run_gate(now)
        if self.upstream is not None:
            self.upstream.observe(self._station_view())
        if now - self._stats_at >= STATS_EVERY_NS:
            self._stats_at = now
            self.log_stats()

    def _follow_plug(self) -> None:
        present = self.charger.vehicle_present
        self.gate.plugged(present)  # also at start: a violation held from before clears at A
        self.communication.follow_plug(present)
        self.recorder.plugged(present)
        if present and self._plugged_in_at is None:
            self._plugged_in_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        elif not present:
            self._plugged_in_at = self._ev_mac = None

    def _run_gate(self, now: int) -> None:
        """The J3072 gate's periodic part (deadlines, the approval list, the meter); its word
        goes to the charger, whose outputs say whether the discharge path is wanted."""
        gate, charger = self.gate, self.charger
        gate.poll()
        main_closed = self.safety.closed(Relay.MAIN)
        meter = self.meter
        meter.watch_closely(main_closed or charger.vehicle_present)
        health, reading = meter.health(now), meter.latest()
        gate.on_meter_health(None if health.healthy else health.reason, main_closed)
        # an untrusted meter's fresh plausible reading still counts against the vehicle:
        # untrusted readings never make the EVSE more permissive (docs/meter.md)
        fresh = reading is not None and now - reading.t_ns <= METER_FRESH_NS
        if reading is not None and (health.healthy or fresh):
            gate.on_meter(reading.power_w, main_closed)
        reasons = gate.drain_open_main()
        if reasons:
            blind = all(reason.startswith(METER_BLIND) for reason in reasons)
            kind = FaultKind.METER_UNTRUSTED if blind else FaultKind.UNAUTHORIZED_DISCHARGE
            self.recorder.fault(kind.value, "; ".join(reasons))
            self._apply(charger.on_unauthorized_discharge(now, kind))
        self._apply(charger.set_discharge_authorized(gate.authorized, now))
        self._follow_bridge()

    def _station_view(self) -> StationView:
        charger, bound, sep2 = self.charger, self.gate.bound, self.communication.sep2
        present = charger.vehicle_present
        connector = "Faulted" if charger.faults else ("Occupied" if present else "Available")
        record = sep2.store.get(bound.lfdi) if sep2 is not None and bound is not None else None
        reading = self.meter.latest()  # the gate's meter: what the CSMS is told is measured
        power, imported, exported = (
            (0.0, None, None) if reading is None  # no energy is sent until there is one
            else (reading.power_w, reading.import_wh, reading.export_wh)
        )  # fmt: skip
        return StationView(present, self.recorder.session_id, connector,
                           self.safety.closed(Relay.MAIN), power, record, imported,
                           exported)  # fmt: skip

    def _follow_bridge(self) -> None:
        """The site bridge is open exactly while the session is authorized."""
        gate, link = self.gate, self.communication.link
        bound = gate.bound
        if gate.authorized and bound is not None:
            link.follow(True, bound.lfdi, "")
        else:
            reasons = bound.session.reasons if bound is not None else ("no session",)
            link.follow(False, "", "; ".join(reasons) or "not authorized")

    # --- handlers: each returns the charger's outputs after the event ---------------------

    def _on_matched(self, event: Matched, now: int) -> Outputs:
        self._ev_mac = event.ev_mac.hex(":")
        self.recorder.ev_mac(self._ev_mac)
        self.gate.slac_matched(self._ev_mac)
        return self.charger.on_slac_matched(now)

    def _on_link(self, event: LinkChange, now: int) -> Outputs:
        self.gate.on_link(event.up)
        return self.charger.poll(now)

    def _on_pev(self, event: PevEvent, now: int) -> Outputs:
        self.gate.on_pev(event)
        return self.charger.poll(now)

    def _on_pilot(self, event: PilotChange, now: int) -> Outputs:
        fields = [("from", event.previous.value), ("to", event.current.value)]
        logger.info("%s", kv("pilot.changed", fields + [("own_drive", True)] * event.own_drive))
        outputs = self.charger.on_pilot(event.current, now, event.own_drive)
        # the only place the charger's vehicle_present changes
        self.gate.plugged(self.charger.vehicle_present)
        self.gate.on_pilot(event.current)
        return outputs

    def _on_rcd(self, event: ch.RcdChange, now: int) -> Outputs:
        log_event(logger, "rcd.changed", state=event.state.value)
        return self.charger.on_rcd(event.state, now)

    def _on_proximity(self, event: ch.ProximityChange, now: int) -> Outputs:
        reading = event.reading
        cable = reading.cable_a if reading.cable_a is not None else "none"
        log_event(logger, "proximity.changed", state=reading.state.value, cable_a=cable)
        return self.charger.on_proximity(reading, now)

    def _on_limit(self, event: LimitRequest, now: int) -> Outputs:
        charger = self.charger
        previous = charger.current_limit_a
        outputs = charger.set_current_limit(event.amps, now)
        log_event(logger, "charger.limit_set", limit_a=f"{event.amps:g}",
                  previous_a=f"{previous:g}", rating_a=f"{charger.rating_a:g}")  # fmt: skip
        if not event.applied.done():
            event.applied.set_result(None)
        return outputs

    def _on_recorded(self, event: ch.FaultRecorded, now: int) -> Outputs:
        level = logging.WARNING if event.recorded else logging.CRITICAL
        log_event(logger, "fault.record_written", level, kind=event.kind.value,
                  recorded=event.recorded)  # fmt: skip
        return self.charger.poll(now)

    def _on_safety_lost(self, event: SafetyLost, now: int) -> Outputs:
        raise SafetyProcessError(event.reason)

    def _on_trip(self, event: ch.Trip, now: int) -> Outputs:
        charger = self.charger
        self._main_request = self._discharge_request = None
        self.recorder.relay("main", False, f"interlock: {event.reason}")
        if self.recorder.journaled_closed("discharge"):
            self.recorder.relay("discharge", False, f"interlock: {event.reason}")
        log_event(logger, "interlock.trip", logging.WARNING, reason=event.reason)
        if event.contactor_fault is not None:
            return charger.on_permanent_fault(event.contactor_fault, now)
        if event.reason == DEADMAN_LAPSED and self._applied.main_closed:
            # no pilot or fault event explains it: the charger falls back and retries
            self._applied = Outputs(self._applied.pilot, main_closed=False)
            return charger.on_close_refused(now)
        return charger.poll(now)

    def _on_relay_result(self, result: ch.RelayResult, now: int) -> Outputs:
        """The safety process's answer to a closing: journaled once granted; a refused main
        closing goes back to the charger, a refused discharge closing is retried."""
        charger = self.charger
        if result.relay is Relay.DISCHARGE and result.request == self._discharge_request:
            self._discharge_request = None
            if result.granted:
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

    # --- outputs -> wishes -------------------------------------------------------------------

    def _apply(self, outputs: Outputs) -> None:
        """Both relays and the pilot as wishes: relays first when opening, pilot first when
        closing (the interlock only closes onto a running PWM); closings are answered later."""
        safety, charger, before = self.safety, self.charger, self._applied
        if not outputs.discharge_closed and safety.closed(Relay.DISCHARGE):
            safety.wish(Relay.DISCHARGE, False)
            self._discharge_request = None
            cause = "j3072: revoked" if not self.gate.authorized else "main"
            self.recorder.relay("discharge", False, cause)
            log_event(logger, "relay.command", relay="discharge", closed=False)
        if not outputs.main_closed and before.main_closed:
            safety.wish(Relay.MAIN, False)
            self._main_request = self._discharge_request = None
            self.recorder.relay("main", False, f"charger: {charger.state_id}")
            log_event(logger, "relay.command", relay="main", closed=False)
        if outputs.pilot != before.pilot:
            safety.set_pilot(outputs.pilot)
            log_event(logger, "pilot.output", drive=outputs.pilot.drive.value,
                      duty_pct=outputs.pilot.duty_pct)  # fmt: skip
        self._applied = outputs
        if outputs.main_closed and not before.main_closed:
            self._main_request = safety.wish(Relay.MAIN, True)
        wants_discharge = outputs.discharge_closed and safety.closed(Relay.MAIN)
        idle = self._discharge_request is None  # one closing in flight at a time
        if wants_discharge and idle and not safety.closed(Relay.DISCHARGE):
            self._discharge_request = safety.wish(Relay.DISCHARGE, True)
        self._log_notes()

    def _log_notes(self) -> None:
        for note in self.charger.drain_notes():
            if note.event is NoteEvent.FAULT_LATCHED:
                fields = dict(note.fields)
                self.recorder.fault(str(fields["kind"]), f"clears_on={fields['clears_on']}")
            _log_note(note)

    # --- the operator ------------------------------------------------------------------------

    async def set_limit(self, amps: float | None) -> dict[str, Any]:
        """``evse-gatekeeper limit``: lower (or restore) the current the PWM offers. Only
        0 (pause) or 6 A up to the circuit rating; the rating itself is config, not this.
        A CSMS's lower limit stays in force beside it (the lower of the two is offered)."""
        self.limits.owner_a = self._checked_limit(amps)
        return await self._offer_limit()

    async def set_csms_limit(self, amps: float | None) -> dict[str, Any]:
        """A CSMS's charging limit (None: withdrawn): it can lower the site owner's limit,
        never raise it (docs/ocpp.md "Dispatch")."""
        self.limits.csms_a = self._checked_limit(amps)
        return await self._offer_limit()

    def _checked_limit(self, amps: float | None) -> float | None:
        rating = self.charger.rating_a
        if amps is None:
            return None
        if amps > rating:
            raise RequestRefused(
                f"{amps:g} A is above the circuit rating {rating:g} A ([charger] max_current_a)"
            )
        if amps != 0 and amps < MIN_CURRENT_A:
            raise RequestRefused(
                f"{amps:g} A cannot be offered: 0 pauses charging, else "
                f"{MIN_CURRENT_A:g}..{rating:g} A"
            )
        return float(amps)

    async def _offer_limit(self) -> dict[str, Any]:
        amps = self.limits.offered_a(self.charger.rating_a)
        applied = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(LimitRequest(float(amps), applied))
        try:
            await asyncio.wait_for(applied, LIMIT_APPLY_TIMEOUT_S)
        except TimeoutError:
            raise RequestRefused("the charger did not take it in time") from None
        current: dict[str, Any] = self.charger.status()["current"]
        return current

    def set_function(self, table: dict[str, Any]) -> dict[str, Any]:
        """``evse-gatekeeper control``: put one IEEE 1547 function in effect now, read and
        checked as ``[[site.functions]]`` is; every running session gets a superseding
        DERControl, and the gate holds the vehicle to it once it is due."""
        from firmware.sep2.service import FunctionRefused  # loaded with the server anyway

        sep2 = self.communication.sep2
        if sep2 is None:
            raise RequestRefused("no 2030.5 server runs ([sep2] enabled = false)")
        problems: list[str] = []
        function = read_function(SectionReader("control", table, problems))
        if problems or function is None:
            raise RequestRefused(problems[0] if problems else "no function given")
        try:
            old = sep2.change_function(function)
        except FunctionRefused as err:
            raise RequestRefused(str(err)) from None
        self.recorder.control(describe(function), SET_BY_SOCKET)
        if self.upstream is not None:
            self.upstream.owner_changed()
        sessions = [r.lfdi for r in sep2.store.records() if r.program is not None]
        return {"mode": function.mode.value, "replaced": old.mode.value if old else None,
                "sessions": len(sessions)}  # fmt: skip

    def status(self) -> dict[str, Any]:
        """What ``evse-gatekeeper status`` shows: each part's own report, assembled."""
        charger, safety = self.charger.status(), self.safety.status()
        latched = safety.pop("latched")
        authorization = self.gate.snapshot()
        session = None
        if self._plugged_in_at is not None:
            session = {"id": self.recorder.session_id, "plugged_in_at": self._plugged_in_at,
                       **{k: authorization.get(k) for k in ("lfdi", "ism", "vin")}}  # fmt: skip
        communication = self.communication.status()
        communication["plc"]["ev_mac"] = self._ev_mac
        sep2 = self.communication.sep2
        functions = [describe(f) for f in sep2.site.functions] if sep2 is not None else None
        charger["current"]["set_by"] = self.limits.set_by()
        return {
            "firmware": firmware_version(),
            **safety,
            **charger,
            "faults": sorted({*charger["faults"], *latched}),
            "session": session,
            "authorization": {
                k: authorization.get(k) for k in ("state", "limit_w", "reasons", "basis")
            },
            "functions": functions,  # the IEEE 1547 functions in effect, as now published
            "clock": self.clock_watch.status() if self.clock_watch is not None else None,
            "set_by": self._set_by(),
            "ocpp": self.upstream.status() if self.upstream is not None else None,
            **communication,
            **_meter_fields(self.meter, self._clock()),
        }

    def _set_by(self) -> dict[str, str] | None:
        """Who put each control in effect: the session's vehicle's own program (a CSMS may
        have dispatched it), else the site's."""
        sep2, bound = self.communication.sep2, self.gate.bound
        if sep2 is None:
            return None
        record = sep2.store.get(bound.lfdi) if bound is not None else None
        if record is not None and record.program is not None:
            return {describe(c.function): c.set_by for c in record.program.current()}
        site = sep2.site
        return {describe(f): site.set_by.get(f.mode, SET_BY_CONFIG) for f in site.functions}

    def log_stats(self) -> None:
        self.communication.log_stats()
        self.safety.log_stats()


def board_report(safety: SafetyLink) -> Callable[[], Report | None]:
    """The board's meter as the safety process last reported it."""

    def report() -> Report | None:
        status = safety.mirror.status
        if status is None:
            return None
        return MeterReading(status.meter_w, status.voltage_v, status.frequency_hz), status.t_ns

    return report


def _meter_fields(meter: Meter, now: int) -> dict[str, Any]:
    """``meter`` in full, and ``meter_w`` (the power the gate checks) as before."""
    shown = meter_status(meter, now)
    return {"meter_w": shown["power_w"], "meter": shown}


def _log_note(note: ChargerNote) -> None:
    level = logging.WARNING if note.event.warns else logging.INFO
    logger.log(level, "%s", kv(note.event, note.fields))
