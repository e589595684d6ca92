"""The charger controller: pilot events and ``now`` in, outputs out. Pure: no I/O, no clock.

It owns what the state machine should not: the latched faults and their clear conditions,
the timers (as deadlines), the advertised duty with its update rate limit, and the contact
protection gates. The caller applies ``outputs`` to the board through the interlock and
logs the ``notes`` it drains.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from firmware.charger.faults import PILOT_FAULTS, FaultKind
from firmware.charger.machine import ChargerMachine
from firmware.charger.outputs import STATE_OUTPUTS, ChargerState, Outputs, outputs_for
from firmware.pilot.duty import current_to_duty_permille
from firmware.pilot.levels import PilotState
from firmware.pilot.proximity import ProximityMode, ProximityReading, read_proximity
from firmware.plc.config import PlcDuty, PlcFallback
from hal import PilotDrive, PilotOutput, RcdState

MS = 1_000_000
FAULT_F_HOLD_NS = 300 * MS  # IEC 61851-1 Table A.5: drive F >= 300 ms after a fault
PWM_WITHDRAWN_OPEN_NS = 6000 * MS  # Table A.6 seq 10.2: force open 6 s after PWM withdrawn
DUTY_UPDATE_MIN_NS = 5000 * MS  # IEC 61851-1: duty changes at most every 5 s
WELD_RECHECK_NS = 1000 * MS  # re-check the contacts >= 1 s after each opening before reclosing
CLOSE_REQUIRED_NS = 3000 * MS  # Table A.6 seq 4: close within 3 s of C2 (logged if deferred)
CLOSE_RETRY_NS = 50 * MS  # back-off after the interlock refused a closing
FIVE_PCT_PERMILLE = 50  # IEC 61851-1 Table A.7: 5 % = digital communication required
FAULT_STATES = ("fault", "fault_latched")
RCD_FAULTS = {RcdState.DC: FaultKind.RCD_DC, RcdState.AC: FaultKind.RCD_AC}


class SlacPhase(enum.Enum):
    """Where SLAC stands for the vehicle plugged in now (docs/homeplug-slac.md)."""

    WAITING = "waiting"  # no match yet (or no vehicle)
    MATCHED = "matched"
    GAVE_UP = "gave_up"  # no match within the init timeout: the configured fallback applies


@dataclass(frozen=True, slots=True)
class PlcPolicy:
    duty: PlcDuty = PlcDuty.NOMINAL
    fallback: PlcFallback = PlcFallback.BASIC_CHARGING


@dataclass(frozen=True, slots=True)
class ChargerSettings:
    max_current_a: float
    ventilation: bool  # the site has ventilation and the board can signal it
    min_close_interval_ns: int
    # how long the PWM must have run before a closing, so that the interlock has checked the
    # vehicle's diode under PWM: a few sampling periods (the app derives it from the rate)
    pwm_settle_ns: int = 20 * MS
    proximity: ProximityMode = ProximityMode.NONE
    plc: PlcPolicy | None = None  # None: no PLC, plain J1772
    discharge_min_close_interval_ns: int = 0  # the discharge relay's contact protection


class NoteEvent(enum.StrEnum):
    """The stable names of what the controller reports (the log's event names)."""

    STATE = "charger.state"
    CLOSE_DEFERRED = "charger.close_deferred"
    FAULT_LATCHED = "fault.latched"
    FAULT_CLEARED = "fault.cleared"
    PLC_MATCHED = "plc.matched"
    PLC_FALLBACK = "plc.fallback"
    PLC_WAKEUP = "plc.wakeup"
    PLC_WAKEUP_SKIPPED = "plc.wakeup_skipped"
    PLC_WAKEUP_DONE = "plc.wakeup_done"

    @property
    def warns(self) -> bool:
        return self in (NoteEvent.FAULT_LATCHED, NoteEvent.PLC_FALLBACK)


@dataclass(frozen=True, slots=True)
class ChargerNote:
    """Something worth a log line: a stable event name and its fields."""

    event: NoteEvent
    fields: tuple[tuple[str, object], ...] = ()


class Charger:
    def __init__(self, settings: ChargerSettings, now_ns: int) -> None:
        self._settings = settings
        self._now = now_ns
        self.pilot = PilotState.A
        self.rcd = RcdState.CLEAR
        self.faults: dict[FaultKind, int] = {}
        self._limit_a = settings.max_current_a
        self.proximity = read_proximity(settings.proximity, None)  # until the sampler says
        self._advertised: int | None = None
        self._advertised_at = now_ns
        self._pwm_started_at = now_ns
        self._refused_at: int | None = None
        self._main_closed_at: int | None = None
        self._closed_before: int | None = None  # restored when a closing is refused
        self._main_opened_at: int | None = None
        self._fault_at = now_ns
        self._pwm_withdrawn_at: int | None = None
        self._deferral_noted = False
        self.vehicle_present = False  # B, C or D seen since the last A
        self.slac = SlacPhase.WAITING
        self._wakeup_until: int | None = None
        self._notes: list[ChargerNote] = []
        self._discharge_authorized = False
        self._discharge_closed_at: int | None = None  # its last closing (contact protection)
        self.machine = ChargerMachine(self, self._changed)
        self.outputs = outputs_for("idle", None)  # nothing closed, before the first computation
        self.outputs = self._compute_outputs()

    # --- inputs -------------------------------------------------------------------------

    @property
    def state_id(self) -> ChargerState:
        return ChargerState(self.machine.current_state_value)

    def set_discharge_authorized(self, authorized: bool, now_ns: int) -> Outputs:
        """The J3072 gate's word: the discharge path is wanted only while it authorizes and
        main is closed for charging with no fault (``outputs.discharge_closed``)."""
        self._now = now_ns
        if authorized == self._discharge_authorized:
            return self.outputs
        self._discharge_authorized = authorized
        return self._step("tick")

    def on_pilot(self, state: PilotState, now_ns: int, own_drive: bool = False) -> Outputs:
        """A newly confirmed pilot state. ``own_drive``: confirmed while we drove F (or E)
        ourselves; it shows our own voltage, says nothing about the vehicle, latches nothing."""
        self._now = now_ns
        self.pilot = state
        kind = PILOT_FAULTS.get(state)
        if own_drive and kind is not None:
            return self._step("tick")
        if state is PilotState.A:
            self.vehicle_present, self.slac, self._wakeup_until = False, SlacPhase.WAITING, None
        elif state.requests_power or state is PilotState.B:
            self.vehicle_present = True
        if kind is not None:
            self._latch(kind)
            return self._step("pilot_error")
        if state is PilotState.D and not self.ventilation_allowed():
            self._latch(FaultKind.VENTILATION)
        return self._step(f"pilot_{state.value.lower()}")

    def on_rcd(self, state: RcdState, now_ns: int) -> Outputs:
        self._now = now_ns
        self.rcd = state
        kind = RCD_FAULTS.get(state)
        if kind is None:
            return self._step("tick")
        self._latch(kind)
        return self._step("rcd_trip")

    def on_unauthorized_discharge(
        self, now_ns: int, kind: FaultKind = FaultKind.UNAUTHORIZED_DISCHARGE
    ) -> Outputs:
        """The J3072 gate saw the vehicle discharge without permission (or, ``kind``
        METER_UNTRUSTED, cannot see that it stopped): open main and hold the fault until it
        unplugs."""
        self._now = now_ns
        self._latch(kind)
        return self._step("discharge_fault")

    def on_permanent_fault(self, kind: FaultKind, now_ns: int) -> Outputs:
        self._now = now_ns
        self._latch(kind)
        return self._step("contactor_fault")

    def on_proximity(self, reading: ProximityReading, now_ns: int) -> Outputs:
        """A newly confirmed PP reading: the latch release or a missing cable stops power
        (the interlock has already opened the contactor); a type 2 cable limits the current."""
        self._now = now_ns
        self.proximity = reading
        return self._step("tick" if reading.state.allows_power else "proximity_lost")

    def on_close_refused(self, now_ns: int) -> Outputs:
        """The interlock said no: fall back to connected and retry after a back-off."""
        self._now = now_ns
        self._refused_at = now_ns
        return self._step("close_refused")

    # --- SLAC (the PLC service reports; the pilot is ours to drive) -------------------------

    def on_slac_matched(self, now_ns: int) -> Outputs:
        """A vehicle matched: with the 5 % convention the nominal duty now takes over."""
        self._now = now_ns
        if self._settings.plc is not None and self.slac is SlacPhase.WAITING:
            self.slac = SlacPhase.MATCHED
            self._notes.append(ChargerNote(NoteEvent.PLC_MATCHED))
        return self._step("tick")

    def on_slac_gave_up(self, reason: str, now_ns: int) -> Outputs:
        """No match within the init timeout and its wake-ups: apply the configured fallback.
        A session that once matched keeps its power (a lost link is not an unplug)."""
        self._now = now_ns
        policy = self._settings.plc
        if policy is not None and self.slac is SlacPhase.WAITING:
            self.slac = SlacPhase.GAVE_UP
            fields = (("mode", policy.fallback.value), ("reason", reason))
            self._notes.append(ChargerNote(NoteEvent.PLC_FALLBACK, fields))
        return self._step("tick")

    def on_slac_wakeup(self, duration_ns: int, now_ns: int) -> Outputs:
        """ISO 15118-3 wake-up: state F for ``duration_ns``, then the PWM again. Only in B
        with the contactor open (it would cut a basic charge otherwise)."""
        self._now = now_ns
        idle_in_b = self.state_id == "connected" and self.pilot is PilotState.B
        if idle_in_b and not self.faults and self._wakeup_until is None:
            self._wakeup_until = now_ns + duration_ns
            self._notes.append(
                ChargerNote(NoteEvent.PLC_WAKEUP, (("duration_ms", duration_ns // MS),))
            )
        else:
            fields = (("state", self.state_id), ("pilot", self.pilot.value))
            self._notes.append(ChargerNote(NoteEvent.PLC_WAKEUP_SKIPPED, fields))
        return self._step("tick")

    @property
    def waking(self) -> bool:
        return self._wakeup_until is not None

    @property
    def current_limit_a(self) -> float:
        return self._limit_a

    @property
    def rating_a(self) -> float:
        """The circuit rating: the most a limit may be (config and board, at start)."""
        return self._settings.max_current_a

    def set_current_limit(self, current_a: float, now_ns: int) -> Outputs:
        """The most the PWM offers from now (under 6 A: no offer, the PWM is withdrawn and
        a vehicle still drawing gets 6 s); a changed nominal duty waits for the 5 s rule."""
        self._now = now_ns
        self._limit_a = current_a
        return self._step("tick")

    def poll(self, now_ns: int) -> Outputs:
        self._now = now_ns
        return self._step("tick")

    def status(self) -> dict[str, Any]:
        """For ``evse-gatekeeper status``: the state, the latched faults, the offer."""
        limit = self._limit_a
        return {
            "charger": self.state_id.value,
            "faults": sorted(kind.value for kind in self.faults),
            "current": {"limit_a": limit, "rating_a": self.rating_a, "paused": limit == 0},
        }

    def drain_notes(self) -> list[ChargerNote]:
        notes, self._notes = self._notes, []
        return notes

    def next_deadline_ns(self) -> int | None:
        """The next instant at which ``poll`` may change something."""
        state = self.state_id
        candidates: list[int] = []
        if state == "fault":
            candidates.append(self._fault_at + FAULT_F_HOLD_NS)
        if self._wakeup_until is not None:
            candidates.append(self._wakeup_until)
        if self._pwm_withdrawn_at is not None:
            candidates.append(self._pwm_withdrawn_at + PWM_WITHDRAWN_OPEN_NS)
        if state == "finishing" and self._main_opened_at is not None:
            candidates.append(self._main_opened_at + WELD_RECHECK_NS)
        if state == "connected" and self.pilot.requests_power and self._advertised is not None:
            candidates.append(self._close_gate_ns())
        if self._discharge_authorized and not self.outputs.discharge_closed:
            candidates.append(self._discharge_gate_ns())
        target = self._target_duty()
        if self._advertised is not None and target not in (None, self._advertised):
            candidates.append(self._advertised_at + DUTY_UPDATE_MIN_NS)
        future = [t for t in candidates if t > self._now]
        return min(future) if future else None

    # --- guards (read by the machine; no side effects) -------------------------------------

    def may_close(self) -> bool:
        if self.faults or not self.pilot.requests_power or self._wakeup_until is not None:
            return False
        if not self._plc_allows_power():
            return False
        if self.pilot is PilotState.D and not self.ventilation_allowed():
            return False
        if self._target_duty() is None or self._advertised in (None, FIVE_PCT_PERMILLE):
            return False  # never close without an ampacity offered (the diode is checked under it)
        return self._now >= self._close_gate_ns()

    def ventilation_allowed(self) -> bool:
        return self._settings.ventilation

    def fault_hold_elapsed(self) -> bool:
        return self._now >= self._fault_at + FAULT_F_HOLD_NS

    def fault_clear_to_idle(self) -> bool:
        return self.pilot is PilotState.A and self._faults_clear_in(PilotState.A)

    def fault_clear_to_connected(self) -> bool:
        return self.pilot is PilotState.B and self._faults_clear_in(PilotState.B)

    def pwm_withdrawn_too_long(self) -> bool:
        since = self._pwm_withdrawn_at
        return since is not None and self._now >= since + PWM_WITHDRAWN_OPEN_NS

    def weld_recheck_done(self) -> bool:
        opened = self._main_opened_at
        return opened is None or self._now >= opened + WELD_RECHECK_NS

    def requests_c(self) -> bool:
        return self.pilot is PilotState.C

    def requests_d(self) -> bool:
        return self.pilot is PilotState.D

    # --- internals ----------------------------------------------------------------------

    def _plc_allows_power(self) -> bool:
        """With PLC: after a match; after giving up only with the basic-charging fallback;
        while waiting only on a nominal duty with that fallback (5 % offers no ampacity)."""
        policy = self._settings.plc
        if policy is None or self.slac is SlacPhase.MATCHED:
            return True
        basic = policy.fallback is PlcFallback.BASIC_CHARGING
        if self.slac is SlacPhase.GAVE_UP:
            return basic
        return basic and policy.duty is PlcDuty.NOMINAL

    def _end_wakeup(self) -> None:
        """The wake-up ends at its deadline, or at once when the state leaves connected."""
        until = self._wakeup_until
        if until is not None and (self._now >= until or self.state_id != "connected"):
            self._wakeup_until = None
            self._notes.append(ChargerNote(NoteEvent.PLC_WAKEUP_DONE))

    def _faults_clear_in(self, pilot: PilotState) -> bool:
        return self.rcd is RcdState.CLEAR and all(pilot in kind.clears_on for kind in self.faults)

    def _close_gate_ns(self) -> int:
        """The earliest instant a closing may happen: PWM settled, back-off, protection."""
        gates = [self._pwm_started_at + self._settings.pwm_settle_ns, self._protection_gate_ns()]
        if self._refused_at is not None:
            gates.append(self._refused_at + CLOSE_RETRY_NS)
        return max(gates)

    def _protection_gate_ns(self) -> int:
        """Contact protection: the weld re-check after an opening, the minimum interval."""
        gates = [0]
        if self._main_opened_at is not None:
            gates.append(self._main_opened_at + WELD_RECHECK_NS)
        if self._main_closed_at is not None:
            gates.append(self._main_closed_at + self._settings.min_close_interval_ns)
        return max(gates)

    def _discharge_gate_ns(self) -> int:
        """The discharge relay's contact protection: at most one closing per interval."""
        if self._discharge_closed_at is None:
            return 0
        return self._discharge_closed_at + self._settings.discharge_min_close_interval_ns

    def _latch(self, kind: FaultKind) -> None:
        if kind not in self.faults:
            self.faults[kind] = self._now
            clears = "/".join(sorted(s.value for s in kind.clears_on)) or "never"
            self._notes.append(
                ChargerNote(NoteEvent.FAULT_LATCHED, (("kind", kind.value), ("clears_on", clears)))
            )

    def _step(self, event: str) -> Outputs:
        before = self.state_id
        self.machine.send(event)  # and the eventless moves it enables: see ``_changed``
        if before in FAULT_STATES and self.state_id in ("idle", "connected") and self.faults:
            kinds = ",".join(sorted(k.value for k in self.faults))
            self._notes.append(ChargerNote(NoteEvent.FAULT_CLEARED, (("kinds", kinds),)))
            self.faults.clear()
        self._end_wakeup()
        self._note_deferral()
        self.outputs = self._compute_outputs()
        return self.outputs

    def _changed(self, before: str, after: str, event: str) -> None:
        """Each change of state, from the machine's transition hook: the contact times and
        the log line."""
        if after == "fault":
            self._fault_at = self._now
        closes_main = STATE_OUTPUTS[after][1]
        if event == "close_refused":
            self._main_closed_at = self._closed_before  # the contacts never moved
        elif closes_main and not STATE_OUTPUTS[before][1]:
            self._closed_before, self._main_closed_at = self._main_closed_at, self._now
        elif STATE_OUTPUTS[before][1] and not closes_main:
            self._main_opened_at = self._now
        self._notes.append(
            ChargerNote(NoteEvent.STATE, (("from", before), ("to", after), ("on", event)))
        )

    def _note_deferral(self) -> None:
        waiting = self.state_id == "connected" and self.pilot.requests_power and not self.faults
        wait_ns = self._protection_gate_ns() - self._now
        if waiting and wait_ns > 0 and not self._deferral_noted:
            self._deferral_noted = True
            fields: tuple[tuple[str, object], ...] = (("wait_ms", wait_ns // MS),)
            if wait_ns > CLOSE_REQUIRED_NS:
                fields += (("exceeds_ms", CLOSE_REQUIRED_NS // MS),)
            self._notes.append(ChargerNote(NoteEvent.CLOSE_DEFERRED, fields))
        elif not waiting:
            self._deferral_noted = False

    def _target_duty(self) -> int | None:
        """The duty to advertise: the site limit, capped by a type 2 cable; none when PP
        forbids power."""
        if not self.proximity.state.allows_power:
            return None
        cable_a = self.proximity.cable_a
        limit_a = self._limit_a if cable_a is None else min(self._limit_a, cable_a)
        nominal = current_to_duty_permille(limit_a)
        policy = self._settings.plc
        if policy is None or self.slac is SlacPhase.MATCHED:
            return nominal
        if self.slac is SlacPhase.GAVE_UP:
            return nominal if policy.fallback is PlcFallback.BASIC_CHARGING else None
        return FIVE_PCT_PERMILLE if policy.duty is PlcDuty.FIVE_PCT else nominal

    def _compute_outputs(self) -> Outputs:
        state = self.state_id
        target = self._target_duty()
        offering = state in ("connected", "charging", "ventilating", "finishing")
        # entering or leaving 5 % changes the convention, not the current: not rate-limited
        convention = FIVE_PCT_PERMILLE in (target, self._advertised)
        due = convention or self._now >= self._advertised_at + DUTY_UPDATE_MIN_NS
        if not offering or target is None or self._wakeup_until is not None:
            self._advertised = None
        elif self._advertised is None:
            self._advertised = target
            self._advertised_at = self._pwm_started_at = self._now
        elif target != self._advertised and due:
            self._advertised = target
            self._advertised_at = self._now
            if convention:  # the vehicle sees its first ampacity: let it settle as at plug-in
                self._pwm_started_at = self._now
        if self._wakeup_until is not None:  # the wake-up: F, then the PWM starts afresh
            return Outputs(PilotOutput(PilotDrive.STEADY_NEGATIVE, 0), main_closed=False)
        discharge = self._discharge_authorized and state.powered and not self.faults
        if discharge and not self.outputs.discharge_closed:  # a new closing
            discharge = self._now >= self._discharge_gate_ns()
        outputs = outputs_for(state, self._advertised, discharge)
        if outputs.discharge_closed and not self.outputs.discharge_closed:
            self._discharge_closed_at = self._now
        withdrawn = outputs.main_closed and not outputs.pilot.pwm_running
        if not withdrawn:
            self._pwm_withdrawn_at = None
        elif self._pwm_withdrawn_at is None:
            self._pwm_withdrawn_at = self._now
        return outputs
