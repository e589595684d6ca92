"""The charger controller: J1772 sequences, timers and latches, with an injected clock."""

from __future__ import annotations

import pytest

from firmware.charger.controller import (
    CLOSE_RETRY_NS,
    DUTY_UPDATE_MIN_NS,
    FAULT_F_HOLD_NS,
    PWM_WITHDRAWN_OPEN_NS,
    WELD_RECHECK_NS,
    Charger,
    ChargerSettings,
)
from firmware.charger.faults import FaultKind
from firmware.pilot.duty import current_to_duty_permille
from firmware.pilot.levels import PilotState as P
from hal import PilotDrive, RcdState

MS = 1_000_000


SETTLE_MS = 20  # the PWM runs this long before a closing (the diode is checked under it)


def make(max_a: float = 32.0, ventilation: bool = False, interval_ms: int = 10_000) -> Charger:
    settings = ChargerSettings(max_a, ventilation, interval_ms * MS, SETTLE_MS * MS)
    return Charger(settings, now_ns=0)


def charging(c: Charger, at_ms: int = 10) -> None:
    """Plug in at ``at_ms``, request charge 10 ms later; closed once the PWM has settled."""
    c.on_pilot(P.B, at_ms * MS)
    c.on_pilot(P.C, (at_ms + 10) * MS)
    assert not c.outputs.main_closed
    assert c.next_deadline_ns() == (at_ms + SETTLE_MS) * MS
    c.poll((at_ms + SETTLE_MS) * MS)
    assert c.state_id == "charging" and c.outputs.main_closed


def test_idle_drives_steady_plus_12_and_keeps_main_open() -> None:
    c = make()
    assert c.state_id == "idle"
    assert c.outputs.pilot.drive is PilotDrive.STEADY_POSITIVE
    assert not c.outputs.main_closed and not c.outputs.discharge_closed


@pytest.mark.parametrize("max_a", [6.0, 16.0, 32.0, 48.0, 80.0])
def test_b_offers_the_configured_current_as_pwm(max_a: float) -> None:
    c = make(max_a=max_a)
    out = c.on_pilot(P.B, 5 * MS)
    assert c.state_id == "connected"
    assert out.pilot.drive is PilotDrive.PWM
    assert out.pilot.duty_permille == current_to_duty_permille(max_a)
    assert not out.main_closed


def test_c_closes_main_once_the_pwm_has_settled() -> None:
    c = make()
    charging(c)
    assert c.outputs.pilot.pwm_running


def test_a_vehicle_already_in_c_gets_pwm_before_the_contactor_closes() -> None:
    c = make()
    out = c.on_pilot(P.C, 10 * MS)  # plugged in straight into C
    assert c.state_id == "connected" and out.pilot.pwm_running and not out.main_closed
    c.poll((10 + SETTLE_MS - 1) * MS)
    assert not c.outputs.main_closed
    c.poll((10 + SETTLE_MS) * MS)
    assert c.outputs.main_closed


def test_c_to_b_opens_main_then_waits_for_the_weld_recheck() -> None:
    c = make(interval_ms=0)
    charging(c)
    out = c.on_pilot(P.B, 100 * MS)
    assert c.state_id == "finishing" and not out.main_closed
    assert out.pilot.pwm_running  # the offer stays while the vehicle is plugged in
    assert c.next_deadline_ns() == 100 * MS + WELD_RECHECK_NS
    c.on_pilot(P.C, 500 * MS)  # asks again before the re-check: must not reclose
    assert not c.outputs.main_closed
    c.poll(100 * MS + WELD_RECHECK_NS)
    assert c.state_id == "charging" and c.outputs.main_closed


def test_min_close_interval_defers_the_next_closing() -> None:
    c = make(interval_ms=10_000)
    charging(c, at_ms=-10)  # closed at 10 ms
    c.on_pilot(P.B, 2000 * MS)
    c.poll(3100 * MS)  # weld re-check done -> connected
    assert c.state_id == "connected"
    c.on_pilot(P.C, 3200 * MS)
    assert not c.outputs.main_closed
    assert c.next_deadline_ns() == 10_010 * MS
    notes = [n.event for n in c.drain_notes()]
    assert "charger.close_deferred" in notes
    c.poll(10_009 * MS)
    assert not c.outputs.main_closed
    c.poll(10_010 * MS)
    assert c.outputs.main_closed


def test_unplug_while_charging_opens_main_and_stops_pwm() -> None:
    c = make()
    charging(c)
    out = c.on_pilot(P.A, 50 * MS)
    assert c.state_id == "idle" and not out.main_closed
    assert out.pilot.drive is PilotDrive.STEADY_POSITIVE


@pytest.mark.parametrize(
    ("pilot", "kind"),
    [
        (P.E, FaultKind.PILOT_E),
        (P.F, FaultKind.PILOT_F),
        (P.PILOT_FAULT, FaultKind.PILOT_OUT_OF_BAND),
        (P.DIODE_FAULT, FaultKind.DIODE),
    ],
)
def test_pilot_faults_signal_f_for_300_ms_then_latch_until_a(pilot: P, kind: FaultKind) -> None:
    c = make(interval_ms=0)
    charging(c)
    out = c.on_pilot(pilot, 100 * MS)
    assert c.state_id == "fault" and kind in c.faults
    assert out.pilot.drive is PilotDrive.STEADY_NEGATIVE and not out.main_closed
    c.poll(100 * MS + FAULT_F_HOLD_NS - 1)
    assert c.outputs.pilot.drive is PilotDrive.STEADY_NEGATIVE  # F holds >= 300 ms
    c.poll(100 * MS + FAULT_F_HOLD_NS)
    assert c.state_id == "fault_latched"
    assert c.outputs.pilot.drive is PilotDrive.STEADY_POSITIVE
    for still_plugged in (P.B, P.C, P.D):
        c.on_pilot(still_plugged, 600 * MS)
        assert c.state_id == "fault_latched" and not c.outputs.main_closed
    c.on_pilot(P.A, 700 * MS)
    assert c.state_id == "idle" and not c.faults


def test_readings_while_we_drive_f_latch_nothing_new() -> None:
    c = make()
    charging(c)
    c.on_pilot(P.DIODE_FAULT, 100 * MS)
    c.on_pilot(P.PILOT_FAULT, 110 * MS, own_drive=True)  # a shorted diode mirrors our -12 V
    c.on_pilot(P.F, 120 * MS, own_drive=True)
    c.poll(500 * MS)
    c.on_pilot(P.F, 510 * MS, own_drive=True)  # confirmed just before we left F: stale
    assert set(c.faults) == {FaultKind.DIODE}
    assert c.state_id == "fault_latched"


def test_rcd_trip_latches_until_cleared_and_unplugged() -> None:
    c = make()
    charging(c)
    out = c.on_rcd(RcdState.DC, 100 * MS)
    assert c.state_id == "fault" and not out.main_closed
    assert FaultKind.RCD_DC in c.faults
    c.poll(500 * MS)
    c.on_pilot(P.A, 600 * MS)
    assert c.state_id == "fault_latched"  # the module still reports residual current
    c.on_rcd(RcdState.CLEAR, 700 * MS)
    assert c.state_id == "idle" and not c.faults


def test_d_without_ventilation_gives_no_power_and_clears_on_b() -> None:
    c = make(ventilation=False)
    c.on_pilot(P.B, 10 * MS)
    out = c.on_pilot(P.D, 20 * MS)
    assert c.state_id == "fault" and not out.main_closed
    assert FaultKind.VENTILATION in c.faults
    c.poll(400 * MS)
    c.on_pilot(P.D, 450 * MS)
    assert not c.outputs.main_closed
    c.on_pilot(P.B, 500 * MS)
    assert c.state_id == "connected" and not c.faults


def test_d_with_ventilation_charges() -> None:
    c = make(ventilation=True)
    c.on_pilot(P.B, 10 * MS)
    c.on_pilot(P.D, 20 * MS)
    out = c.poll(30 * MS)
    assert c.state_id == "ventilating" and out.main_closed


def test_contactor_fault_is_permanent() -> None:
    c = make(interval_ms=0)
    charging(c)
    out = c.on_permanent_fault(FaultKind.MAIN_WELDED, 100 * MS)
    assert c.state_id == "inoperative"
    assert out.pilot.drive is PilotDrive.STEADY_NEGATIVE and not out.main_closed
    t = 200
    for pilot in (P.A, P.B, P.C, P.A, P.B, P.C):
        t += 2000
        c.on_pilot(pilot, t * MS)
        c.poll((t + 1000) * MS)
        assert c.state_id == "inoperative" and not c.outputs.main_closed
        assert not c.outputs.pilot.pwm_running


def test_withdrawn_pwm_forces_main_open_after_6_s() -> None:
    c = make()
    charging(c)
    out = c.set_current_limit(0.0, 1000 * MS)  # the site can no longer offer current
    assert out.pilot.drive is PilotDrive.STEADY_POSITIVE
    assert out.main_closed  # the vehicle gets time to stop drawing current first
    assert c.next_deadline_ns() == 1000 * MS + PWM_WITHDRAWN_OPEN_NS
    c.poll(1000 * MS + PWM_WITHDRAWN_OPEN_NS - 1)
    assert c.outputs.main_closed
    c.poll(1000 * MS + PWM_WITHDRAWN_OPEN_NS)
    assert c.state_id == "finishing" and not c.outputs.main_closed


def test_duty_changes_at_most_every_5_s() -> None:
    c = make(max_a=32.0)
    c.on_pilot(P.B, 0)
    c.set_current_limit(16.0, 1000 * MS)
    assert c.outputs.pilot.duty_permille == current_to_duty_permille(32.0)
    assert c.next_deadline_ns() == DUTY_UPDATE_MIN_NS
    c.poll(DUTY_UPDATE_MIN_NS)
    assert c.outputs.pilot.duty_permille == current_to_duty_permille(16.0)


def test_close_refused_by_the_interlock_backs_off_then_retries() -> None:
    c = make(interval_ms=0)
    charging(c)
    out = c.on_close_refused(30 * MS)
    assert c.state_id == "connected" and not out.main_closed
    c.poll(30 * MS + CLOSE_RETRY_NS - 1)
    assert not c.outputs.main_closed
    assert c.next_deadline_ns() == 30 * MS + CLOSE_RETRY_NS
    c.poll(30 * MS + CLOSE_RETRY_NS)
    assert c.outputs.main_closed


def test_state_changes_and_latches_are_noted_for_the_log() -> None:
    c = make()
    charging(c)
    c.on_pilot(P.E, 100 * MS)
    notes = c.drain_notes()
    events = [n.event for n in notes]
    assert events.count("charger.state") == 3
    latched = next(n for n in notes if n.event == "fault.latched")
    assert dict(latched.fields) == {"kind": "pilot_e", "clears_on": "A"}
    assert c.drain_notes() == []


def test_the_discharge_relay_closes_at_most_once_per_its_interval() -> None:
    """Its own contact protection: an authorization that flips cannot cycle it."""
    settings = ChargerSettings(32.0, False, 10_000 * MS, SETTLE_MS * MS,
                               discharge_min_close_interval_ns=10_000 * MS)  # fmt: skip
    c = Charger(settings, 0)
    charging(c)
    assert c.set_discharge_authorized(True, 100 * MS).discharge_closed
    closings, was_closed = 1, True
    for step in range(1, 60):  # the authorization flips every 150 ms for 9 s
        now = 100 * MS + step * 150 * MS
        closed = c.set_discharge_authorized(step % 2 == 0, now).discharge_closed
        closings += closed and not was_closed
        was_closed = closed
    assert closings == 1
    assert not c.set_discharge_authorized(False, 9_900 * MS).discharge_closed
    c.set_discharge_authorized(True, 9_950 * MS)
    assert c.next_deadline_ns() == 10_100 * MS, "the loop wakes when the interval ends"
    assert c.poll(10_100 * MS).discharge_closed
