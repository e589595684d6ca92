"""Proximity (PP) classification against docs/j1772.md "Proximity", and its effect on
the charger controller and the interlock."""

from __future__ import annotations

import pytest

from firmware.charger.controller import Charger, ChargerSettings
from firmware.pilot.duty import current_to_duty_permille
from firmware.pilot.levels import PilotState as P
from firmware.pilot.proximity import (
    Proximity,
    ProximityConfirmer,
    ProximityMode,
    ProximityReading,
    read_proximity,
)
from firmware.safety.interlock import Interlock
from hal import PilotDrive, PilotOutput, RcdState, Relay
from hal.mock.board import MockBoard
from hal.settings import BoardSettings, MockSettings
from tests.fakes import MS, FakeClock

T1, T2 = ProximityMode.TYPE1, ProximityMode.TYPE2
LATCHED = ProximityReading(Proximity.LATCHED)
PRESSED = ProximityReading(Proximity.RELEASE_PRESSED)


@pytest.mark.parametrize(
    ("ohm", "state"),
    [
        (150, Proximity.LATCHED),  # nominal, latch closed
        (480, Proximity.RELEASE_PRESSED),  # nominal, S3 open: 150 + 330
        (90, Proximity.LATCHED),
        (89.9, Proximity.OUT_OF_RANGE),
        (250, Proximity.LATCHED),
        (275, Proximity.OUT_OF_RANGE),  # between the two: neither
        (300, Proximity.RELEASE_PRESSED),
        (800, Proximity.RELEASE_PRESSED),
        (800.1, Proximity.OUT_OF_RANGE),
        (0, Proximity.OUT_OF_RANGE),
        (None, Proximity.OPEN),
    ],
)
def test_type1_latch_and_release(ohm: float | None, state: Proximity) -> None:
    assert read_proximity(T1, ohm).state is state


@pytest.mark.parametrize(
    ("ohm", "cable_a"),
    [
        (1500, 13.0),  # the reference's coding resistors at their nominal values
        (680, 20.0),
        (220, 32.0),
        (100, 63.0),
        (1100, 13.0),  # range edges
        (2460, 13.0),
        (400, 20.0),
        (936, 20.0),
        (164, 32.0),
        (308, 32.0),
        (80, 63.0),
        (140, 63.0),
        (1000, 13.0),  # between 20 A and 13 A: the lower current
        (350, 20.0),  # between 32 A and 20 A
        (150, 32.0),  # between 63 A and 32 A
        (3000, 13.0),  # above the 13 A range, below the fault limit
        (60, 63.0),  # the lowest valid reading
        (4500, 13.0),  # the highest valid reading
    ],
)
def test_type2_coding_resistor_gives_the_cable_ampacity(ohm: float, cable_a: float) -> None:
    reading = read_proximity(T2, ohm)
    assert reading == ProximityReading(Proximity.CABLE, cable_a)


@pytest.mark.parametrize("ohm", [0, 59.9, 4500.1, 1e6])
def test_type2_out_of_range_is_a_fault_reading(ohm: float) -> None:
    assert read_proximity(T2, ohm).state is Proximity.OUT_OF_RANGE
    assert not read_proximity(T2, ohm).state.allows_power


def test_unmonitored_ignores_the_input() -> None:
    for ohm in (None, 0, 150, 480, 1e6):
        assert read_proximity(ProximityMode.NONE, ohm).state is Proximity.UNMONITORED


def test_a_one_sample_glitch_is_not_confirmed() -> None:
    confirmer = ProximityConfirmer(LATCHED)
    assert confirmer.feed(PRESSED) is None
    assert confirmer.feed(LATCHED) is None
    assert confirmer.feed(PRESSED) is None
    assert confirmer.feed(PRESSED) == PRESSED
    assert confirmer.confirmed == PRESSED


def charger(proximity: ProximityMode, max_a: float = 32.0) -> Charger:
    return Charger(ChargerSettings(max_a, False, 0, 20 * MS, proximity), now_ns=0)


def test_type1_release_pressed_while_charging_stops_and_holds_off() -> None:
    c = charger(T1)
    c.on_proximity(LATCHED, 1 * MS)
    c.on_pilot(P.B, 5 * MS)
    c.on_pilot(P.C, 10 * MS)
    c.poll(30 * MS)
    assert c.state_id == "charging" and c.outputs.main_closed
    out = c.on_proximity(PRESSED, 2000 * MS)
    assert c.state_id == "finishing" and not out.main_closed
    assert not out.pilot.pwm_running  # the offer is withdrawn while the release is pressed
    c.poll(4000 * MS)
    assert not c.outputs.main_closed, "no closing while the release is pressed"
    c.on_proximity(LATCHED, 5000 * MS)
    c.poll(5000 * MS + 20 * MS)
    assert c.state_id == "charging" and c.outputs.main_closed


def test_type1_no_power_before_the_handle_is_seen() -> None:
    c = charger(T1)
    c.on_pilot(P.B, 5 * MS)
    c.on_pilot(P.C, 10 * MS)
    c.poll(100 * MS)
    assert not c.outputs.main_closed and not c.outputs.pilot.pwm_running


@pytest.mark.parametrize(("cable_a", "site_a", "offered_a"), [(20, 32, 20), (63, 32, 32)])
def test_type2_cable_caps_the_offered_current(
    cable_a: float, site_a: float, offered_a: float
) -> None:
    c = charger(T2, max_a=site_a)
    c.on_proximity(ProximityReading(Proximity.CABLE, cable_a), 1 * MS)
    out = c.on_pilot(P.B, 5 * MS)
    assert out.pilot.duty_permille == current_to_duty_permille(offered_a)


def test_interlock_opens_and_refuses_on_the_release_button() -> None:
    clock = FakeClock()
    board = MockBoard(BoardSettings(mock=MockSettings(noise_mv=0)), clock=clock)
    interlock = Interlock(board, False, clock())
    pwm = PilotOutput(PilotDrive.PWM, 533)
    interlock.set_pilot(pwm)
    while not interlock.armed(clock()):
        clock.advance_ms(5)
        interlock.evaluate(
            clock(), P.C, RcdState.CLEAR, pwm_running=True, proximity=Proximity.LATCHED
        )
    assert interlock.command(Relay.MAIN, True, clock())
    trip = interlock.evaluate(
        clock.advance_ms(5),
        P.C,
        RcdState.CLEAR,
        pwm_running=True,
        proximity=Proximity.RELEASE_PRESSED,
    )
    assert trip is not None and trip.reason == "pp_release_pressed"
    assert not interlock.command(Relay.MAIN, True, clock())
