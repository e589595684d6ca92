"""The mock board (hal/mock/circuit.py, relays.py, board.py) against docs/j1772.md.

Circuit: +/-12 V behind R1 = 1 kOhm; vehicle diode (~0.7 V) then R2 = 2.74 kOhm, S2 adding
1.3 kOhm (C) or 270 Ohm (D). The reference quotes V+ ~ 8.98 V (B), 6.0 V (C), 2.93 V (D); the
diode keeps V- at -12 V; a shorted diode makes V- ~ -V+.

Relays: contacts move ``relay_delay_ms`` after the coil changes; the coil is driven only while
``kick_deadman()`` toggles arrive less than ``deadman_timeout_ms`` apart. Time comes from an
injected fake clock, so every instant is exact and no test sleeps.
"""

from __future__ import annotations

import pytest

from firmware.pilot.levels import PilotState, classify
from hal.contract import (
    SAFE_PILOT,
    Contacts,
    FeedbackKind,
    PilotDrive,
    PilotOutput,
    RcdState,
    Relay,
)
from hal.mock.board import MockBoard
from hal.mock.circuit import VehicleSide, VehicleState, plateaus_v, rig_state_letter
from hal.mock.relays import FeedbackMode, RelayModel
from hal.settings import BoardSettings, MockSettings
from tests.fakes import FakeClock

MS = 1_000_000  # ns
DELAY_MS = 10
DEADMAN_MS = 100
TOLERANCE_V = 0.050

PWM_50 = PilotOutput(PilotDrive.PWM, 500)

# docs/j1772.md "Circuit": the quoted high plateaus
REFERENCE_HIGH_V = {
    VehicleState.A: 12.0,
    VehicleState.B: 8.98,
    VehicleState.C: 6.0,
    VehicleState.D: 2.93,
}


def ohm_law_high_v(load_ohm: float, drop_v: float) -> float:
    """V+ = 12 V minus the drop across R1 = 1 kOhm, computed here from first principles."""
    current = (12.0 - drop_v) / (1000.0 + load_ohm)
    return 12.0 - current * 1000.0


def parallel(a: float, b: float) -> float:
    return 1 / (1 / a + 1 / b)


LOAD_OHM = {
    VehicleState.B: 2740.0,
    VehicleState.C: parallel(2740.0, 1300.0),  # ~882 Ohm
    VehicleState.D: parallel(2740.0, 270.0),  # ~246 Ohm
}


def make_board(
    clock: FakeClock,
    main: FeedbackKind = FeedbackKind.NORMALLY_OPEN,
    discharge: FeedbackKind = FeedbackKind.NORMALLY_OPEN,
    rcd_self_test: bool = True,
) -> MockBoard:
    settings = BoardSettings(
        main_feedback=main,
        discharge_feedback=discharge,
        mock=MockSettings(
            relay_delay_ms=DELAY_MS,
            deadman_timeout_ms=DEADMAN_MS,
            noise_mv=0,
            supports_rcd_self_test=rcd_self_test,
        ),
    )
    return MockBoard(settings, clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def board(clock: FakeClock) -> MockBoard:
    return make_board(clock)


def closed(board: MockBoard, relay: Relay = Relay.MAIN) -> bool:
    return board.contacts(relay)[0]


# --- the circuit -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [VehicleState.B, VehicleState.C, VehicleState.D])
def test_high_plateau_by_ohms_law(state: VehicleState) -> None:
    high, low = plateaus_v(PWM_50, VehicleSide(state))
    assert high == pytest.approx(ohm_law_high_v(LOAD_OHM[state], 0.7), abs=TOLERANCE_V)
    assert high == pytest.approx(REFERENCE_HIGH_V[state], abs=TOLERANCE_V)
    assert low == pytest.approx(-12.0, abs=TOLERANCE_V)  # the diode blocks the negative half


def test_unplugged_pilot_swings_the_full_12_volts() -> None:
    assert plateaus_v(PWM_50, VehicleSide(VehicleState.A)) == pytest.approx((12.0, -12.0))


@pytest.mark.parametrize("state", [VehicleState.B, VehicleState.C, VehicleState.D])
def test_shorted_diode_mirrors_the_plateaus(state: VehicleState) -> None:
    high, low = plateaus_v(PWM_50, VehicleSide(state, diode_shorted=True))
    # no diode drop: a plain divider, symmetric about 0 V
    expected = 12.0 * LOAD_OHM[state] / (1000.0 + LOAD_OHM[state])
    assert high == pytest.approx(expected, abs=TOLERANCE_V)
    assert low == pytest.approx(-high, abs=TOLERANCE_V)


@pytest.mark.parametrize("state", list(VehicleState))
def test_pilot_short_to_pe_reads_zero(state: VehicleState) -> None:
    assert plateaus_v(PWM_50, VehicleSide(state, pilot_shorted=True)) == (0.0, 0.0)


@pytest.mark.parametrize("state", list(VehicleState))
def test_lost_pe_floats_at_the_source(state: VehicleState) -> None:
    assert plateaus_v(PWM_50, VehicleSide(state, pe_connected=False)) == (12.0, -12.0)
    steady = plateaus_v(SAFE_PILOT, VehicleSide(state, pe_connected=False))
    assert steady == (12.0, 12.0)


@pytest.mark.parametrize(
    ("state", "load_ohm"),
    # nominal -/+3 % on R2 and S2's resistor (the a7/a8 HIL scenarios), and far off it
    [
        (VehicleState.B, 2658.0),
        (VehicleState.B, 2822.0),
        (VehicleState.C, 855.0),
        (VehicleState.C, 908.0),
        (VehicleState.D, 238.0),
        (VehicleState.D, 253.0),
        (VehicleState.B, 50.0),
        (VehicleState.D, 100_000.0),
    ],
)
def test_a_load_override_replaces_the_nominal_load(state: VehicleState, load_ohm: float) -> None:
    high, low = plateaus_v(PWM_50, VehicleSide(state, load_ohm=load_ohm))
    assert high == pytest.approx(ohm_law_high_v(load_ohm, 0.7), abs=0.001)
    assert (high < REFERENCE_HIGH_V[state]) is (load_ohm < LOAD_OHM[state])
    assert low == pytest.approx(-12.0)  # the diode still blocks the negative half


def test_unplugged_ignores_a_load_override() -> None:
    vehicle = VehicleSide(VehicleState.A, load_ohm=882.0)
    assert plateaus_v(PWM_50, vehicle) == pytest.approx((12.0, -12.0))


def test_a_shorted_diode_divides_over_the_overridden_load() -> None:
    high, low = plateaus_v(PWM_50, VehicleSide(VehicleState.C, diode_shorted=True, load_ohm=855))
    assert high == pytest.approx(12.0 * 855 / 1855, abs=0.001)
    assert low == pytest.approx(-high, abs=0.001)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (SAFE_PILOT, (8.98, 8.98)),  # steady +12 V: both detectors see one level
        (PilotOutput(PilotDrive.STEADY_NEGATIVE), (-12.0, -12.0)),  # state F
        (PilotOutput(PilotDrive.ZERO), (0.0, 0.0)),  # state E
        (PilotOutput(PilotDrive.PWM, 1000), (8.98, 8.98)),  # 100 %: steady high
        (PilotOutput(PilotDrive.PWM, 0), (-12.0, -12.0)),  # 0 %: steady low
    ],
)
def test_steady_drives(output: PilotOutput, expected: tuple[float, float]) -> None:
    high, low = plateaus_v(output, VehicleSide(VehicleState.B))
    assert high == pytest.approx(expected[0], abs=TOLERANCE_V)
    assert low == pytest.approx(expected[1], abs=TOLERANCE_V)


@pytest.mark.parametrize(
    ("vehicle", "expected"),
    [
        (VehicleSide(VehicleState.A), PilotState.A),
        (VehicleSide(VehicleState.B), PilotState.B),
        (VehicleSide(VehicleState.C), PilotState.C),
        (VehicleSide(VehicleState.D), PilotState.D),
        (VehicleSide(VehicleState.C, diode_shorted=True), PilotState.DIODE_FAULT),
        (VehicleSide(VehicleState.C, pilot_shorted=True), PilotState.E),
        # loss of PE must show as a fault or as A, never as a valid B/C
        (VehicleSide(VehicleState.C, pe_connected=False), PilotState.A),
    ],
)
def test_the_firmware_classifies_the_modelled_plateaus(
    vehicle: VehicleSide, expected: PilotState
) -> None:
    high, low = plateaus_v(PWM_50, vehicle)
    prev = PilotState.B  # a vehicle was connected
    got = classify(round(high * 1000), round(low * 1000), prev, pwm_running=True)
    assert got is expected


@pytest.mark.parametrize(
    ("high_v", "letter"),
    [(12.0, "A"), (8.98, "B"), (6.0, "C"), (2.93, "D"), (0.0, "E"), (-12.0, "F")],
)
def test_rig_letter_for_nominal_plateaus(high_v: float, letter: str) -> None:
    assert rig_state_letter(high_v) == letter


def test_read_pilot_gives_millivolts_and_the_clock(board: MockBoard, clock: FakeClock) -> None:
    board.set_vehicle(VehicleSide(VehicleState.C))
    board.set_pilot(PWM_50)
    clock.advance_ms(3)
    sample = board.read_pilot()
    high, low = plateaus_v(PWM_50, VehicleSide(VehicleState.C))
    assert sample.low_mv == round(low * 1000)
    assert sample.high_mv == round(high * 1000)
    assert abs(sample.high_mv - 6000) <= 50
    assert sample.low_mv == -12000
    assert sample.t_ns == clock.t_ns


def test_noise_is_bounded_to_three_sigma(clock: FakeClock) -> None:
    settings = BoardSettings(mock=MockSettings(noise_mv=15, seed=7))
    board = MockBoard(settings, clock=clock)
    highs = {board.read_pilot().high_mv for _ in range(500)}
    assert all(abs(mv - 12000) <= 45 for mv in highs)
    assert len(highs) > 1  # there is noise


def test_pilot_output_remembers_when_it_changed(board: MockBoard, clock: FakeClock) -> None:
    assert board.pilot_output()[0] == SAFE_PILOT
    t_set = clock.advance_ms(5)
    board.set_pilot(PWM_50)
    clock.advance_ms(5)
    board.set_pilot(PWM_50)  # the same command again: not a change
    assert board.pilot_output() == (PWM_50, t_set)


# --- relays, dead-man and delay --------------------------------------------------------------


def test_relays_start_open(board: MockBoard) -> None:
    assert not closed(board, Relay.MAIN)
    assert not closed(board, Relay.DISCHARGE)
    assert board.read_feedback(Relay.MAIN) is Contacts.OPEN


@pytest.mark.parametrize("relay", list(Relay))
def test_contacts_close_exactly_relay_delay_after_the_command(
    board: MockBoard, clock: FakeClock, relay: Relay
) -> None:
    board.kick_deadman()
    t_cmd = clock.advance_ms(1)
    board.set_relay(relay, True)
    clock.at(t_cmd + DELAY_MS * MS - 1)
    assert not closed(board, relay)
    clock.at(t_cmd + DELAY_MS * MS)
    assert board.contacts(relay) == (True, t_cmd + DELAY_MS * MS)
    other = Relay.DISCHARGE if relay is Relay.MAIN else Relay.MAIN
    assert not closed(board, other)


def test_contacts_open_exactly_relay_delay_after_the_command(
    board: MockBoard, clock: FakeClock
) -> None:
    board.kick_deadman()
    board.set_relay(Relay.MAIN, True)
    clock.advance_ms(30)
    board.kick_deadman()
    t_cmd = clock.advance_ms(10)
    board.set_relay(Relay.MAIN, False)
    clock.at(t_cmd + DELAY_MS * MS - 1)
    assert closed(board)
    clock.at(t_cmd + DELAY_MS * MS)
    assert not closed(board)


def test_no_dead_man_no_closing(board: MockBoard, clock: FakeClock) -> None:
    board.set_relay(Relay.MAIN, True)  # never kicked
    for _ in range(10):
        clock.advance_ms(50)
        assert not closed(board)
        assert board.read_feedback(Relay.MAIN) is Contacts.OPEN


def test_a_command_after_the_dead_man_expired_does_not_close(
    board: MockBoard, clock: FakeClock
) -> None:
    t_kick = clock.t_ns
    board.kick_deadman()
    clock.at(t_kick + DEADMAN_MS * MS)  # exactly the timeout: no longer alive
    board.set_relay(Relay.MAIN, True)
    clock.advance_ms(DELAY_MS * 5)
    assert not closed(board)


def test_a_command_inside_the_dead_man_window_closes(board: MockBoard, clock: FakeClock) -> None:
    t_kick = clock.t_ns
    board.kick_deadman()
    t_cmd = t_kick + (DEADMAN_MS - 20) * MS
    clock.at(t_cmd)
    board.set_relay(Relay.MAIN, True)
    clock.at(t_cmd + 5 * MS)
    board.kick_deadman()  # keep it alive past the mechanical delay
    clock.at(t_cmd + DELAY_MS * MS)
    assert closed(board)


def test_kicks_resuming_energize_a_pending_command(board: MockBoard, clock: FakeClock) -> None:
    board.set_relay(Relay.MAIN, True)
    t_kick = clock.advance_ms(200)
    board.kick_deadman()
    clock.at(t_kick + DELAY_MS * MS - 1)
    assert not closed(board)
    clock.at(t_kick + DELAY_MS * MS)
    assert closed(board)


def test_regular_kicks_keep_the_relay_closed(board: MockBoard, clock: FakeClock) -> None:
    board.kick_deadman()
    board.set_relay(Relay.MAIN, True)
    clock.advance_ms(DELAY_MS)
    for _ in range(40):
        clock.advance_ms(DEADMAN_MS * 0.9)
        board.kick_deadman()
        assert closed(board)


def test_relays_drop_when_the_kicks_stop(board: MockBoard, clock: FakeClock) -> None:
    board.kick_deadman()
    board.set_relay(Relay.MAIN, True)
    board.set_relay(Relay.DISCHARGE, True)
    last_kick = clock.advance_ms(50)
    board.kick_deadman()
    opens_at = last_kick + DEADMAN_MS * MS + DELAY_MS * MS
    clock.at(opens_at - 1)
    assert closed(board, Relay.MAIN)
    assert closed(board, Relay.DISCHARGE)
    clock.at(opens_at)
    assert board.contacts(Relay.MAIN) == (False, opens_at)
    assert board.contacts(Relay.DISCHARGE) == (False, opens_at)


def test_drop_time_is_exact_even_when_observed_late(board: MockBoard, clock: FakeClock) -> None:
    board.kick_deadman()
    board.set_relay(Relay.MAIN, True)
    last_kick = clock.advance_ms(20)
    board.kick_deadman()
    clock.advance_ms(5000)  # nobody looked for five seconds
    assert board.contacts(Relay.MAIN) == (False, last_kick + (DEADMAN_MS + DELAY_MS) * MS)


# --- feedback --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [FeedbackKind.NORMALLY_OPEN, FeedbackKind.NORMALLY_CLOSED])
def test_wired_feedback_reports_the_contacts(clock: FakeClock, kind: FeedbackKind) -> None:
    board = make_board(clock, main=kind, discharge=kind)
    assert board.read_feedback(Relay.MAIN) is Contacts.OPEN
    board.kick_deadman()
    board.set_relay(Relay.MAIN, True)
    clock.advance_ms(DELAY_MS)
    assert board.read_feedback(Relay.MAIN) is Contacts.CLOSED
    assert board.read_feedback(Relay.DISCHARGE) is Contacts.OPEN


def test_no_feedback_reads_unknown(clock: FakeClock) -> None:
    board = make_board(clock, main=FeedbackKind.NONE, discharge=FeedbackKind.NORMALLY_OPEN)
    assert board.read_feedback(Relay.MAIN) is Contacts.UNKNOWN
    board.kick_deadman()
    board.set_relay(Relay.MAIN, True)
    clock.advance_ms(DELAY_MS)
    assert board.read_feedback(Relay.MAIN) is Contacts.UNKNOWN
    assert board.read_feedback(Relay.DISCHARGE) is Contacts.OPEN
    assert board.capabilities.main_feedback is FeedbackKind.NONE


@pytest.mark.parametrize(
    ("kind", "contacts_closed", "pin_high"),
    [
        (FeedbackKind.NORMALLY_OPEN, False, False),
        (FeedbackKind.NORMALLY_OPEN, True, True),
        (FeedbackKind.NORMALLY_CLOSED, False, True),  # the NC aux contact inverts
        (FeedbackKind.NORMALLY_CLOSED, True, False),
    ],
)
def test_aux_pin_level_follows_the_wiring(
    kind: FeedbackKind, contacts_closed: bool, pin_high: bool
) -> None:
    model = RelayModel(DELAY_MS * MS, kind, now_ns=0)
    model.set_coil(0, contacts_closed)
    assert model.aux_pin_high(DELAY_MS * MS) is pin_high


@pytest.mark.parametrize("kind", [FeedbackKind.NORMALLY_OPEN, FeedbackKind.NORMALLY_CLOSED])
def test_stuck_closed_feedback_while_contacts_stay_open(
    clock: FakeClock, kind: FeedbackKind
) -> None:
    board = make_board(clock, main=kind)
    board.set_feedback_mode(Relay.MAIN, FeedbackMode.STUCK_CLOSED)
    clock.advance_ms(DELAY_MS * 3)
    assert board.read_feedback(Relay.MAIN) is Contacts.CLOSED
    assert not closed(board, Relay.MAIN)
    assert board.read_feedback(Relay.DISCHARGE) is Contacts.OPEN  # only MAIN is stuck


def test_stuck_open_feedback_while_contacts_close(board: MockBoard, clock: FakeClock) -> None:
    board.set_feedback_mode(Relay.MAIN, FeedbackMode.STUCK_OPEN)
    board.kick_deadman()
    board.set_relay(Relay.MAIN, True)
    clock.advance_ms(DELAY_MS)
    assert closed(board, Relay.MAIN)
    assert board.read_feedback(Relay.MAIN) is Contacts.OPEN
    board.set_feedback_mode(Relay.MAIN, FeedbackMode.FOLLOW)
    assert board.read_feedback(Relay.MAIN) is Contacts.CLOSED


# --- close(), RCD and the rest ---------------------------------------------------------------


def test_close_opens_everything_and_stays_safe(board: MockBoard, clock: FakeClock) -> None:
    board.kick_deadman()
    board.set_relay(Relay.MAIN, True)
    board.set_relay(Relay.DISCHARGE, True)
    board.set_pilot(PWM_50)
    clock.advance_ms(DELAY_MS)
    board.kick_deadman()
    assert closed(board, Relay.MAIN)
    assert closed(board, Relay.DISCHARGE)
    t_close = clock.t_ns
    board.close()
    assert board.pilot_output()[0] == SAFE_PILOT
    clock.at(t_close + DELAY_MS * MS)
    assert not closed(board, Relay.MAIN)
    assert not closed(board, Relay.DISCHARGE)
    # after close nothing closes again, whatever is commanded
    for _ in range(5):
        board.kick_deadman()
        board.set_relay(Relay.MAIN, True)
        clock.advance_ms(DELAY_MS * 2)
        assert not closed(board, Relay.MAIN)
    board.close()  # idempotent
    assert not closed(board, Relay.MAIN)


def test_rcd_self_test_when_supported(board: MockBoard) -> None:
    assert board.capabilities.supports_rcd_self_test
    assert board.read_rcd() is RcdState.CLEAR
    board.set_rcd_test(True)
    assert board.read_rcd() is not RcdState.CLEAR
    board.set_rcd_test(False)
    assert board.read_rcd() is RcdState.CLEAR


def test_rcd_self_test_without_support_does_nothing(clock: FakeClock) -> None:
    board = make_board(clock, rcd_self_test=False)
    assert not board.capabilities.supports_rcd_self_test
    board.set_rcd_test(True)
    assert board.read_rcd() is RcdState.CLEAR


@pytest.mark.parametrize("state", [RcdState.DC, RcdState.AC])
def test_rcd_trip_is_reported(board: MockBoard, state: RcdState) -> None:
    board.set_rcd(state)
    assert board.read_rcd() is state


def test_proximity_and_meter(board: MockBoard) -> None:
    assert board.read_proximity_ohm() is None
    board.set_proximity_ohm(150.0)
    assert board.read_proximity_ohm() == 150.0
    assert board.read_meter().power_w == 0.0
    board.set_meter_w(-7200.0)
    assert board.read_meter().power_w == -7200.0
