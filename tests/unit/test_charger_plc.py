"""The charger with PLC configured: the duty convention while SLAC runs, leaving it on a
match or a give-up, the fallbacks, and the E/F wake-up the SLAC service asks for."""

from __future__ import annotations

import pytest

from firmware.charger.controller import (
    DUTY_UPDATE_MIN_NS,
    FIVE_PCT_PERMILLE,
    Charger,
    ChargerSettings,
    PlcPolicy,
    SlacPhase,
)
from firmware.pilot.duty import current_to_duty_permille
from firmware.pilot.levels import PilotState as P
from firmware.plc.config import PlcDuty, PlcFallback
from hal import PilotDrive

MS = 1_000_000
SETTLE_MS = 20
NOMINAL = current_to_duty_permille(32.0)
WAKE_NS = 4000 * MS


def make(duty: PlcDuty, fallback: PlcFallback = PlcFallback.BASIC_CHARGING) -> Charger:
    settings = ChargerSettings(32.0, False, 0, SETTLE_MS * MS, plc=PlcPolicy(duty, fallback))
    return Charger(settings, now_ns=0)


def notes(c: Charger) -> list[str]:
    return [n.event for n in c.drain_notes()]


def test_nominal_convention_offers_the_ampacity_and_basic_charges_while_slac_runs() -> None:
    c = make(PlcDuty.NOMINAL)
    out = c.on_pilot(P.B, 10 * MS)
    assert out.pilot.drive is PilotDrive.PWM and out.pilot.duty_permille == NOMINAL
    c.on_pilot(P.C, 20 * MS)
    c.poll((10 + SETTLE_MS) * MS)
    assert c.slac is SlacPhase.WAITING and c.state_id == "charging"


def test_nominal_with_no_charging_fallback_waits_for_the_match_to_close() -> None:
    c = make(PlcDuty.NOMINAL, PlcFallback.NO_CHARGING)
    c.on_pilot(P.B, 10 * MS)
    c.on_pilot(P.C, 20 * MS)
    c.poll(100 * MS)
    assert c.state_id == "connected" and not c.outputs.main_closed
    c.on_slac_matched(200 * MS)
    assert c.state_id == "charging" and c.outputs.main_closed


def test_five_percent_until_matched_then_the_nominal_duty_at_once() -> None:
    c = make(PlcDuty.FIVE_PCT)
    out = c.on_pilot(P.B, 10 * MS)
    assert out.pilot.drive is PilotDrive.PWM and out.pilot.duty_permille == FIVE_PCT_PERMILLE
    c.on_pilot(P.C, 20 * MS)
    c.poll(500 * MS)
    assert c.state_id == "connected", "5 % offers no ampacity: never close on it"
    out = c.on_slac_matched(600 * MS)  # well inside the 5 s duty-update limit: not held back
    assert out.pilot.duty_permille == NOMINAL
    assert "plc.matched" in notes(c)
    assert not c.outputs.main_closed, "the new duty must settle before a closing"
    c.poll((600 + SETTLE_MS) * MS)
    assert c.state_id == "charging"


@pytest.mark.parametrize(
    ("fallback", "offers", "closes"),
    [(PlcFallback.BASIC_CHARGING, True, True), (PlcFallback.NO_CHARGING, False, False)],
)
def test_give_up_applies_the_fallback_and_notes_it(
    fallback: PlcFallback, offers: bool, closes: bool
) -> None:
    c = make(PlcDuty.FIVE_PCT, fallback)
    c.on_pilot(P.B, 10 * MS)
    notes(c)
    out = c.on_slac_gave_up("no SLAC_PARM.REQ", 1000 * MS)
    fallback_notes = [n for n in c.drain_notes() if n.event == "plc.fallback"]
    assert fallback_notes and dict(fallback_notes[0].fields)["mode"] == fallback.value
    assert out.pilot.pwm_running is offers
    if offers:
        assert out.pilot.duty_permille == NOMINAL
    else:
        assert out.pilot.drive is PilotDrive.STEADY_POSITIVE
    c.on_pilot(P.C, 1100 * MS)
    c.poll((1100 + SETTLE_MS) * MS)
    assert c.outputs.main_closed is closes


def test_a_late_give_up_does_not_undo_a_match() -> None:
    c = make(PlcDuty.NOMINAL, PlcFallback.NO_CHARGING)
    c.on_pilot(P.B, 10 * MS)
    c.on_slac_matched(100 * MS)
    c.on_slac_gave_up("link lost, no new match", 50_000 * MS)
    assert c.slac is SlacPhase.MATCHED and c.outputs.pilot.duty_permille == NOMINAL


def test_unplug_returns_to_the_slac_convention_for_the_next_vehicle() -> None:
    c = make(PlcDuty.FIVE_PCT)
    c.on_pilot(P.B, 10 * MS)
    c.on_slac_matched(100 * MS)
    c.on_pilot(P.A, 200 * MS)
    assert c.slac is SlacPhase.WAITING and not c.vehicle_present
    out = c.on_pilot(P.B, 300 * MS)
    assert out.pilot.duty_permille == FIVE_PCT_PERMILLE


def test_wakeup_drives_f_for_its_duration_then_restarts_the_pwm() -> None:
    c = make(PlcDuty.FIVE_PCT)
    c.on_pilot(P.B, 10 * MS)
    out = c.on_slac_wakeup(WAKE_NS, 1000 * MS)
    assert out.pilot.drive is PilotDrive.STEADY_NEGATIVE and not out.main_closed
    assert "plc.wakeup" in notes(c)
    # our own F, confirmed by the sampler, is not a pilot fault and not an unplug
    c.on_pilot(P.F, 1010 * MS, own_drive=True)
    assert not c.faults and c.vehicle_present and c.state_id == "connected"
    assert c.next_deadline_ns() == 1000 * MS + WAKE_NS
    c.poll(1000 * MS + WAKE_NS - 1)
    assert c.outputs.pilot.drive is PilotDrive.STEADY_NEGATIVE
    out = c.poll(1000 * MS + WAKE_NS)
    assert out.pilot.drive is PilotDrive.PWM and out.pilot.duty_permille == FIVE_PCT_PERMILLE
    assert "plc.wakeup_done" in notes(c)


def test_a_vehicle_that_requests_charge_right_after_the_wakeup_is_seen() -> None:
    c = make(PlcDuty.NOMINAL)
    c.on_pilot(P.B, 10 * MS)
    c.on_slac_wakeup(WAKE_NS, 1000 * MS)
    c.on_pilot(P.F, 1010 * MS, own_drive=True)
    c.poll(1000 * MS + WAKE_NS)
    # the first confirmation after our F carries own_drive; C is still the vehicle's word
    c.on_pilot(P.C, 1000 * MS + WAKE_NS + 10 * MS, own_drive=True)
    assert c.requests_c()
    c.poll(1000 * MS + WAKE_NS + 10 * MS + SETTLE_MS * MS)
    assert c.state_id == "charging"


def test_d_right_after_our_own_drive_still_latches_the_ventilation_fault() -> None:
    c = make(PlcDuty.NOMINAL)
    c.on_pilot(P.B, 10 * MS)
    c.on_slac_wakeup(WAKE_NS, 1000 * MS)
    c.on_pilot(P.F, 1010 * MS, own_drive=True)
    c.poll(1000 * MS + WAKE_NS)
    c.on_pilot(P.D, 1000 * MS + WAKE_NS + 10 * MS, own_drive=True)
    assert c.faults and c.state_id in ("fault", "fault_latched")


def test_no_wakeup_while_charging_or_in_a_fault() -> None:
    c = make(PlcDuty.NOMINAL)
    c.on_pilot(P.B, 10 * MS)
    c.on_pilot(P.C, 20 * MS)
    c.poll((10 + SETTLE_MS) * MS)
    out = c.on_slac_wakeup(WAKE_NS, 100 * MS)
    assert out.main_closed and out.pilot.drive is PilotDrive.PWM
    assert "plc.wakeup_skipped" in notes(c)
    c.on_pilot(P.E, 200 * MS)
    c.on_slac_wakeup(WAKE_NS, 210 * MS)
    assert "plc.wakeup_skipped" in notes(c)


def test_a_fault_during_the_wakeup_ends_it() -> None:
    c = make(PlcDuty.NOMINAL)
    c.on_pilot(P.B, 10 * MS)
    c.on_slac_wakeup(WAKE_NS, 1000 * MS)
    c.on_pilot(P.DIODE_FAULT, 1100 * MS)
    assert not c.waking and c.state_id == "fault"


def test_without_plc_the_slac_reports_change_nothing() -> None:
    c = Charger(ChargerSettings(32.0, False, 0, SETTLE_MS * MS), now_ns=0)
    c.on_pilot(P.B, 10 * MS)
    before = c.outputs
    c.on_slac_matched(100 * MS)
    c.on_slac_gave_up("x", 200 * MS)
    assert c.outputs == before and c.slac is SlacPhase.WAITING


def test_duty_changes_other_than_the_convention_stay_rate_limited() -> None:
    c = make(PlcDuty.NOMINAL)
    c.on_pilot(P.B, 10 * MS)
    c.on_slac_matched(100 * MS)
    c.set_current_limit(16.0, 200 * MS)
    assert c.outputs.pilot.duty_permille == NOMINAL
    c.poll(10 * MS + DUTY_UPDATE_MIN_NS)
    assert c.outputs.pilot.duty_permille == current_to_duty_permille(16.0)
