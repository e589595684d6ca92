"""What the CSMS is told, derived from what the daemon already knows: the loop hands a
``StationView`` after each turn, the journal hands each J3072 decision, the dispatch path each
control put in effect; this turns changes into OCPP events in the outbox.

It never waits and never talks to the network: it appends to the outbox (the journal) and
wakes the sender (``firmware.ocpp.station``). docs/ocpp.md lists what is sent when.

Power and the energy registers are the EVSE's meter's (``hal.meter``: a Modbus meter's own
totals, or the board's meter integrated from its power), as the J3072 gate reads them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from firmware.journal.outbox import Outbox
from firmware.logs import log_event
from firmware.ocpp import messages as m
from firmware.ocpp.config import OcppConfig
from firmware.sep2.response import STATUS_COMPLETED, STATUS_RECEIVED, STATUS_STARTED

if TYPE_CHECKING:
    from firmware.j3072.decision import Decision
    from firmware.sep2.store import PevRecord

logger = logging.getLogger(__name__)
FLOWING_W = 50  # below this the meter shows nothing flowing (the gate's noise floor)
RESPONSE_NAMES = {STATUS_RECEIVED: "received", STATUS_STARTED: "started",
                  STATUS_COMPLETED: "completed"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class StationView:
    """The daemon after one turn of its loop, as far as the CSMS is concerned."""

    plugged: bool
    session_id: int | None  # the journal's session: the transaction's id
    connector: str  # ConnectorStatusEnumType: Available, Occupied, Faulted
    main_closed: bool
    power_w: float  # the EVSE's meter: + discharge (export), - charge (import)
    record: PevRecord | None  # the bound vehicle's 2030.5 data
    import_wh: float | None = None  # the meter's registers: energy into the vehicle
    export_wh: float | None = None  # and out of it (None: the meter has no reading yet)


class Upstream:
    def __init__(self, config: OcppConfig, outbox: Outbox, v_ref_v: int,
                 wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.config, self.outbox, self._v_ref_v = config, outbox, v_ref_v
        self._wall, self._mono = wall, mono
        self.wake = asyncio.Event()  # set whenever something is queued
        self.online = False  # the sender says so
        self.heartbeat_s = float(config.heartbeat_s)  # the interval in effect (the CSMS's)
        self.transaction_id: str | None = None
        self.tx_started_s: float | None = None  # monotonic: a Relative profile starts here
        self._connector: str | None = None
        self._tx_seq = 0
        self._charging_state: str | None = None
        self._next_sample_s = 0.0
        self._power_w = 0.0
        self._import_wh: float | None = None  # the last the meter read: a register never
        self._export_wh: float | None = None  # goes back to 0 while the meter is silent
        self._soc_pct: float | None = None
        self._needs: m.ChargingNeeds | None = None
        self._event_id = int(wall()) % 1_000_000 * 1000  # unique across restarts, mostly
        self._notify_seq = 0
        self._tracked: dict[str, str] = {}  # mRID -> who set it, its Responses reported
        self._reported: set[tuple[str, int]] = set()

    # --- what the daemon hands in -------------------------------------------------------

    def observe(self, view: StationView) -> None:
        self._power_w = view.power_w
        if view.import_wh is not None:
            self._import_wh = view.import_wh
        if view.export_wh is not None:
            self._export_wh = view.export_wh
        if view.connector != self._connector:
            self._connector = view.connector
            self._put("StatusNotification", m.status_notification(self._wall(), view.connector))
        if view.plugged and self.transaction_id is None:
            self._start(view)
        elif not view.plugged and self.transaction_id is not None:
            self._end()
        if self.transaction_id is None:
            return
        self._vehicle(view.record)
        state = _charging_state(view)
        if state != self._charging_state:
            self._charging_state = state
            self._tx("Updated", "ChargingStateChanged", "Trigger", essential=False)
        elif self._mono() >= self._next_sample_s:
            self._tx("Updated", "MeterValuePeriodic", "Sample.Periodic", essential=False)

    def decision(self, decision: Decision) -> None:
        """A J3072 decision, revocation or re-authorization as the journal recorded it."""
        revoked = bool(decision.reasons) and decision.reasons[0].startswith("revoked: ")
        word = "granted" if decision.granted else ("revoked" if revoked else "denied")
        limit = f"limit_w={decision.limit_w}" if decision.limit_w is not None else None
        reasons = "; ".join(decision.reasons) or f"ism {decision.ism}"
        self._notify(m.GATE_COMPONENT, "DischargeAuthorization", word, limit, reasons,
                     essential=True)  # fmt: skip

    def control(self, mrid: str, function: str, set_by: str) -> None:
        """A control put in effect for the session's vehicle: its Responses are tracked."""
        self._tracked[mrid.upper()] = set_by
        self._notify(m.DER_COMPONENT, "ControlInEffect", function, None,
                     f"set by {set_by}; mRID {mrid}")  # fmt: skip

    def refused(self, what: str, why: str) -> None:
        self._notify(m.DER_COMPONENT, "DispatchRefused", what, None, why)

    def limited(self, what: str, why: str) -> None:
        """A CSMS's value put in effect lower than it asked (held to a lower limit)."""
        self._notify(m.DER_COMPONENT, "DispatchLimited", what, None, why)

    def status(self) -> dict[str, Any]:
        return {"online": self.online, "station_id": self.config.station_id,
                "version": self.config.version, "transaction_id": self.transaction_id,
                "queued": self.outbox.unsent(), "dropped": self.outbox.dropped,
                "failed": self.outbox.failed}  # fmt: skip

    def end_left_open(self) -> None:
        """At start: each transaction the last run left open (the vehicle was plugged in when
        it stopped; the journal ended its session "by restart") is ended, queued before
        anything of this run. stoppedReason Reboot: the station restarted (the journal cannot
        tell a power loss from a service restart); no meter value (the meter's then is not
        known)."""
        for tx, last_seq in sorted(self.outbox.open_transactions().items()):
            event = m.TxEvent("Ended", "AbnormalCondition", last_seq + 1, tx,
                              stopped_reason="Reboot", offline=True)  # fmt: skip
            reading = m.Reading(self._wall(), None, None, None)
            self._put("TransactionEvent", m.transaction_event(event, reading, "Transaction.End"))
            log_event(logger, "ocpp.transaction_ended", transaction_id=tx, reason="Reboot")

    # --- internals ----------------------------------------------------------------------

    def _put(self, message: str, payload: dict[str, Any], essential: bool = True) -> None:
        self.outbox.put(message, payload, essential)
        self.wake.set()

    def _reading(self) -> m.Reading:
        return m.Reading(self._wall(), self._import_wh, self._export_wh, self._power_w,
                         self._soc_pct)  # fmt: skip

    def _start(self, view: StationView) -> None:
        tx = f"S{view.session_id}" if view.session_id is not None else f"T{int(self._wall())}"
        self.transaction_id, self._tx_seq, self._charging_state = tx, 0, "EVConnected"
        self.tx_started_s = self._mono()  # a step of the wall clock cannot move it
        self._tracked.clear()
        self._reported.clear()
        self._needs = self._soc_pct = None
        self._tx("Started", "CablePluggedIn", "Transaction.Begin", essential=True)
        log_event(logger, "ocpp.transaction_started", transaction_id=tx)

    def _end(self) -> None:
        self._charging_state = None
        self._tx("Ended", "EVDeparted", "Transaction.End", essential=True,
                 stopped_reason="EVDisconnected")  # fmt: skip
        log_event(logger, "ocpp.transaction_ended", transaction_id=self.transaction_id)
        self.transaction_id = None

    def _tx(self, event_type: str, trigger: str, context: str, essential: bool,
            stopped_reason: str | None = None) -> None:  # fmt: skip
        assert self.transaction_id is not None
        event = m.TxEvent(event_type, trigger, self._tx_seq, self.transaction_id,
                          self._charging_state, stopped_reason,
                          offline=not self.online)  # fmt: skip
        self._tx_seq += 1
        self._next_sample_s = self._mono() + self.config.meter_interval_s
        self._put("TransactionEvent", m.transaction_event(event, self._reading(), context),
                  essential)  # fmt: skip

    def _notify(self, component: str, variable: str, value: str, code: str | None,
                info: str | None, essential: bool = False) -> None:  # fmt: skip
        """One NotifyEvent: essential only for the J3072 gate's decisions; what a CSMS's
        request provoked (an acknowledgement, a refusal, the vehicle's Responses) is not, so
        a CSMS that floods us and never answers cannot grow the queue past its bound."""
        self._event_id += 1
        event = m.Event(self._event_id, component, variable, value, code, info,
                        self.transaction_id)  # fmt: skip
        self._put("NotifyEvent", m.notify_event(self._wall(), self._notify_seq, event), essential)

    def _vehicle(self, record: PevRecord | None) -> None:
        """The vehicle's state of charge, charging needs and the Responses to dispatches."""
        if record is None:
            return
        status = record.der_status
        soc = status.state_of_charge_status if status is not None else None
        self._soc_pct = soc.value / 100 if soc is not None else self._soc_pct
        needs = _needs(record)
        if needs is not None and needs != self._needs:
            self._needs = needs
            payload = m.ev_charging_needs(needs, self.config.version, self._v_ref_v)
            self._put("NotifyEVChargingNeeds", payload, essential=False)
        for response in record.responses.values():
            subject, code = response.subject.upper(), response.status
            set_by = self._tracked.get(subject)
            if set_by is None or code is None or (subject, code) in self._reported:
                continue
            self._reported.add((subject, code))
            name = RESPONSE_NAMES.get(code, f"status {code}")
            self._notify(m.DER_COMPONENT, "Response", name, None,
                         f"mRID {subject}; set by {set_by}")  # fmt: skip


def _charging_state(view: StationView) -> str:
    if not view.main_closed:
        return "EVConnected"
    return "Charging" if abs(view.power_w) > FLOWING_W else "SuspendedEV"


def _scaled(quantity: Any) -> float:
    return float(quantity.value * 10**quantity.multiplier)


def _needs(record: PevRecord) -> m.ChargingNeeds | None:
    power = record.power_status
    info = power.pev_info if power is not None else None
    if info is None:
        return None
    availability = record.der_availability
    stat_w = availability.stat_w_avail if availability is not None else None
    return m.ChargingNeeds(
        energy_request_wh=_scaled(info.energy_request_now),
        departure_s=info.time_charge_is_needed,
        max_charge_w=_scaled(info.max_forward_power),
        target_soc_pct=info.target_state_of_charge / 100,
        max_discharge_w=_scaled(stat_w) if stat_w is not None else None,
    )
