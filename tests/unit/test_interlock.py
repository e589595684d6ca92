"""The interlock and the sampler tick, on the mock board with an injected clock (no threads)."""

from __future__ import annotations

import pytest

from firmware.charger.faults import FaultKind
from firmware.pilot.confirm import PilotChange
from firmware.pilot.levels import PilotState as P
from firmware.safety.interlock import FEEDBACK_DEBOUNCE_NS, FEEDBACK_TIMEOUT_NS, Interlock, Trip
from firmware.safety.sampler import RcdChange, Sampler, SamplerEvent
from hal import FeedbackKind, PilotDrive, PilotOutput, RcdState, Relay
from hal.mock.board import MockBoard
from hal.mock.circuit import VehicleSide, VehicleState
from hal.mock.relays import FeedbackMode
from hal.settings import BoardSettings, MockSettings
from tests.fakes import FakeClock

MS = 1_000_000
PWM = PilotOutput(PilotDrive.PWM, 533)


class Clock(FakeClock):
    """The fake clock with the short name these tests read best with."""

    def advance(self, ms: float) -> int:
        return self.advance_ms(ms)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def board_with(clock: Clock, feedback: FeedbackKind = FeedbackKind.NORMALLY_OPEN) -> MockBoard:
    settings = BoardSettings(
        main_feedback=feedback,
        discharge_feedback=feedback,
        mock=MockSettings(noise_mv=0, relay_delay_ms=10, deadman_timeout_ms=100),
    )
    return MockBoard(settings, clock=clock)


def armed(clock: Clock, board: MockBoard, ventilation: bool = False) -> Interlock:
    interlock = Interlock(board, ventilation, clock())
    while not interlock.armed(clock()):
        board.kick_deadman()
        assert confirm(interlock, clock, P.A) is None
        clock.advance(5)
    return interlock


def confirm(
    interlock: Interlock,
    clock: Clock,
    pilot: P,
    rcd: RcdState = RcdState.CLEAR,
    own_drive: bool = False,
) -> Trip | None:
    """A sample that newly confirms ``pilot``, then two more under the drive in force (as
    the sampler reports them); returns what the confirming sample tripped."""
    pwm = interlock.pilot_output.pwm_running
    change = PilotChange(interlock.confirmed, pilot, clock(), own_drive)
    trip = interlock.evaluate(clock(), pilot, rcd, change, pwm_running=pwm)
    for _ in range(2):
        interlock.evaluate(clock.advance(5), pilot, rcd, pwm_running=pwm)
    return trip


def pwm_sample(
    interlock: Interlock, clock: Clock, pilot: P, ms: float = 5, settled: bool = True
) -> Trip | None:
    """One more sample under PWM in an unchanged confirmed state."""
    return interlock.evaluate(
        clock.advance(ms), pilot, RcdState.CLEAR, pwm_running=True, settled=settled
    )


def settle(clock: Clock, board: MockBoard, interlock: Interlock, pilot: P, ms: int = 30) -> None:
    for _ in range(ms // 5):
        board.kick_deadman()
        clock.advance(5)
        interlock.evaluate(clock(), pilot, board.read_rcd(), pwm_running=True)


def test_closing_is_refused_during_the_boot_weld_check(clock: Clock) -> None:
    board = board_with(clock)
    interlock = Interlock(board, False, clock())
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.C)
    assert not interlock.command(Relay.MAIN, True, clock())


@pytest.mark.parametrize("pilot", [P.A, P.B, P.E, P.F, P.PILOT_FAULT, P.DIODE_FAULT])
def test_closing_needs_the_pilot_in_c(clock: Clock, pilot: P) -> None:
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    interlock.evaluate(clock(), pilot, RcdState.CLEAR)
    assert not interlock.command(Relay.MAIN, True, clock())


def test_closing_needs_pwm_running(clock: Clock) -> None:
    board = board_with(clock)
    interlock = armed(clock, board)
    confirm(interlock, clock, P.C)
    assert not interlock.command(Relay.MAIN, True, clock())  # steady +12 V
    interlock.set_pilot(PWM)
    pwm_sample(interlock, clock, P.C)
    pwm_sample(interlock, clock, P.C)
    assert interlock.command(Relay.MAIN, True, clock())


def test_closing_needs_two_samples_under_pwm_in_the_present_state(clock: Clock) -> None:
    """The diode check runs only under PWM: a vehicle already in C when the PWM starts is
    not closed onto before its diode has been seen twice."""
    board = board_with(clock)
    interlock = armed(clock, board)
    confirm(interlock, clock, P.C)  # confirmed under steady +12 V
    interlock.set_pilot(PWM)
    assert not interlock.command(Relay.MAIN, True, clock())
    pwm_sample(interlock, clock, P.C)
    assert not interlock.command(Relay.MAIN, True, clock())
    pwm_sample(interlock, clock, P.C)
    assert interlock.command(Relay.MAIN, True, clock())


def test_no_closing_while_a_different_reading_awaits_confirmation(clock: Clock) -> None:
    """The first sample of a diode fault (or any change) leaves C confirmed for one more
    sample: a closing in that window is refused."""
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.C)
    pwm_sample(interlock, clock, P.C, settled=False)
    assert not interlock.command(Relay.MAIN, True, clock())
    pwm_sample(interlock, clock, P.C, ms=1)
    assert interlock.command(Relay.MAIN, True, clock())


def test_a_c_confirmed_under_pwm_may_close_at_once(clock: Clock) -> None:
    """B -> C under PWM: the two confirming samples passed the diode check already."""
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.B)
    pwm_sample(interlock, clock, P.B, settled=False)
    change = PilotChange(P.B, P.C, clock.advance(1))
    interlock.evaluate(clock(), P.C, RcdState.CLEAR, change, pwm_running=True)
    assert interlock.command(Relay.MAIN, True, clock())


def test_withdrawn_pwm_does_not_trip_a_closed_contactor(clock: Clock) -> None:
    """The vehicle gets 6 s to stop after the offer is withdrawn (the controller's timer)."""
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.C)
    assert interlock.command(Relay.MAIN, True, clock())
    interlock.set_pilot(PilotOutput(PilotDrive.STEADY_POSITIVE))
    assert interlock.evaluate(clock.advance(5), P.C, RcdState.CLEAR, pwm_running=False) is None
    assert interlock.closed(Relay.MAIN)


def test_d_closes_only_with_ventilation(clock: Clock) -> None:
    for ventilation in (False, True):
        board = board_with(clock)
        interlock = armed(clock, board, ventilation)
        interlock.set_pilot(PWM)
        confirm(interlock, clock, P.D)
        assert interlock.command(Relay.MAIN, True, clock()) is ventilation


@pytest.mark.parametrize(
    ("pilot", "rcd", "reason"),
    [
        (P.B, RcdState.CLEAR, "pilot_b"),
        (P.A, RcdState.CLEAR, "pilot_a"),
        (P.E, RcdState.CLEAR, "pilot_e"),
        (P.DIODE_FAULT, RcdState.CLEAR, "diode_fault"),
        (P.F, RcdState.CLEAR, "pilot_f"),  # -12 V not of our making: no rig stimulus makes it
        (P.PILOT_FAULT, RcdState.CLEAR, "pilot_fault"),
        (P.C, RcdState.AC, "rcd_ac"),
    ],
)
def test_trip_opens_main_in_the_same_sample(
    clock: Clock, pilot: P, rcd: RcdState, reason: str
) -> None:
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.C)
    assert interlock.command(Relay.MAIN, True, clock())
    settle(clock, board, interlock, P.C)
    assert board.contacts(Relay.MAIN)[0]
    t = clock.advance(5)
    trip = confirm(interlock, clock, pilot, rcd)
    assert trip == Trip(reason, t)
    assert not interlock.closed(Relay.MAIN)
    clock.advance(10)  # the mechanical delay
    assert not board.contacts(Relay.MAIN)[0]


def test_latched_faults_hold_until_a_with_the_rcd_clear(clock: Clock) -> None:
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.DIODE_FAULT, RcdState.DC)
    confirm(interlock, clock, P.C, RcdState.DC)
    assert not interlock.command(Relay.MAIN, True, clock())
    confirm(interlock, clock, P.A, RcdState.DC)
    confirm(interlock, clock, P.C, RcdState.CLEAR)
    assert not interlock.command(Relay.MAIN, True, clock())  # RCD cleared, but not yet in A
    confirm(interlock, clock, P.A, RcdState.CLEAR)
    confirm(interlock, clock, P.C, RcdState.CLEAR)
    assert interlock.command(Relay.MAIN, True, clock())


def test_a_pilot_fault_latches_until_a(clock: Clock) -> None:
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.DIODE_FAULT)
    confirm(interlock, clock, P.C)
    assert not interlock.command(Relay.MAIN, True, clock())
    confirm(interlock, clock, P.A)
    confirm(interlock, clock, P.C)
    assert interlock.command(Relay.MAIN, True, clock())


def test_readings_of_our_own_f_drive_latch_nothing(clock: Clock) -> None:
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.F, own_drive=True)  # we drove -12 V ourselves
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.C)
    assert interlock.command(Relay.MAIN, True, clock())


def test_welded_main_at_boot_latches_permanently(clock: Clock) -> None:
    board = board_with(clock)
    board.set_feedback_mode(Relay.MAIN, FeedbackMode.STUCK_CLOSED)
    interlock = Interlock(board, False, clock())
    trips: list[Trip] = []
    for _ in range(80):
        board.kick_deadman()
        trip = interlock.evaluate(clock.advance(5), P.A, RcdState.CLEAR)
        if trip:
            trips.append(trip)
    assert [t.contactor_fault for t in trips] == [FaultKind.MAIN_WELDED]
    assert (
        FEEDBACK_TIMEOUT_NS
        <= trips[0].t_ns - 1_000 * MS
        <= FEEDBACK_TIMEOUT_NS + 2 * FEEDBACK_DEBOUNCE_NS
    )
    board.set_feedback_mode(Relay.MAIN, FeedbackMode.FOLLOW)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.A)
    confirm(interlock, clock, P.C)
    assert not interlock.command(Relay.MAIN, True, clock())


def test_failed_to_close_is_detected_after_the_feedback_timeout(clock: Clock) -> None:
    board = board_with(clock, FeedbackKind.NORMALLY_CLOSED)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.C)
    board.set_feedback_mode(Relay.MAIN, FeedbackMode.STUCK_OPEN)
    assert interlock.command(Relay.MAIN, True, clock())
    settle(clock, board, interlock, P.C, ms=240)
    assert interlock.permanent is None  # still inside the 250 ms window
    settle(clock, board, interlock, P.C, ms=40)
    assert interlock.permanent is FaultKind.MAIN_FAILED_TO_CLOSE
    assert not interlock.closed(Relay.MAIN)


def test_no_feedback_means_no_supervision(clock: Clock) -> None:
    board = board_with(clock, FeedbackKind.NONE)
    board.set_feedback_mode(Relay.MAIN, FeedbackMode.STUCK_CLOSED)
    interlock = armed(clock, board)
    settle(clock, board, interlock, P.A, ms=500)
    assert interlock.permanent is None


def test_discharge_closes_only_onto_a_confirmed_closed_main(clock: Clock) -> None:
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.C)
    assert not interlock.command(Relay.DISCHARGE, True, clock())
    assert interlock.command(Relay.MAIN, True, clock())
    assert not interlock.command(Relay.DISCHARGE, True, clock())  # contacts still moving
    settle(clock, board, interlock, P.C)
    assert interlock.command(Relay.DISCHARGE, True, clock())
    interlock.command(Relay.MAIN, False, clock())
    assert not interlock.closed(Relay.DISCHARGE)


def test_dead_man_drops_the_relays_when_the_sampler_stops(clock: Clock) -> None:
    board = board_with(clock)
    interlock = armed(clock, board)
    interlock.set_pilot(PWM)
    confirm(interlock, clock, P.C)
    interlock.command(Relay.MAIN, True, clock())
    settle(clock, board, interlock, P.C)
    assert board.contacts(Relay.MAIN)[0]
    clock.advance(200)  # no kicks: the watchdog expires, the coil drops
    assert not board.contacts(Relay.MAIN)[0]


def charging_sampler(
    clock: Clock, board: MockBoard
) -> tuple[Interlock, Sampler, list[SamplerEvent]]:
    """Main closed onto a vehicle in C, every check met, sampled by a Sampler."""
    interlock = armed(clock, board)
    posted: list[SamplerEvent] = []
    sampler = Sampler(board, interlock, 200, posted.append, clock=clock)
    interlock.set_pilot(PWM)
    board.set_vehicle(VehicleSide(VehicleState.C))
    for _ in range(4):
        sampler.tick(clock.advance(5))
    assert interlock.command(Relay.MAIN, True, clock())
    for _ in range(4):
        sampler.tick(clock.advance(5))
    assert board.contacts(Relay.MAIN)[0]
    posted.clear()
    return interlock, sampler, posted


@pytest.mark.parametrize("stall_ms", [150, 300, 1000])
def test_a_stall_past_the_dead_man_opens_the_relays_and_latches_no_contactor_fault(
    clock: Clock, stall_ms: float
) -> None:
    """A sampler that stalled (a hung ADC read, a stopped process) finds its relays dropped by
    the dead-man: it commands them open before its next toggle restores the coil supply, so
    they do not re-close by themselves and the dropped contacts are not a failure to close."""
    board = board_with(clock)
    interlock, sampler, posted = charging_sampler(clock, board)
    sampler.tick(clock.advance(stall_ms))
    assert [e.reason for e in posted if isinstance(e, Trip)] == ["deadman_lapsed"]
    for _ in range(200):  # a second of ticks: feedback supervision sees open == commanded
        sampler.tick(clock.advance(5))
        assert not board.contacts(Relay.MAIN)[0], "re-closed without a command"
    assert interlock.permanent is None
    assert not interlock.closed(Relay.MAIN)


def test_a_gap_under_half_the_dead_man_timeout_opens_nothing(clock: Clock) -> None:
    board = board_with(clock)
    interlock, sampler, posted = charging_sampler(clock, board)
    sampler.tick(clock.advance(45))
    assert posted == [] and interlock.closed(Relay.MAIN) and board.contacts(Relay.MAIN)[0]


def test_a_weld_is_still_latched_after_a_stall(clock: Clock) -> None:
    board = board_with(clock)
    interlock, sampler, _ = charging_sampler(clock, board)
    board.set_feedback_mode(Relay.MAIN, FeedbackMode.STUCK_CLOSED)
    sampler.tick(clock.advance(300))
    for _ in range(100):
        sampler.tick(clock.advance(5))
    assert interlock.permanent is FaultKind.MAIN_WELDED


def test_sampler_tick_confirms_posts_changes_and_trips(clock: Clock) -> None:
    board = board_with(clock)
    interlock = armed(clock, board)
    posted: list[SamplerEvent] = []
    sampler = Sampler(board, interlock, 200, posted.append, clock=clock)
    board.set_vehicle(VehicleSide(VehicleState.B))
    assert sampler.tick(clock.advance(5)) is True  # a candidate asks for its re-read
    assert posted == []
    assert sampler.tick(clock.advance(1.1)) is False
    assert [type(e) for e in posted] == [PilotChange]
    assert posted[0].current is P.B  # type: ignore[union-attr]
    board.set_rcd(RcdState.AC)
    sampler.tick(clock.advance(5))
    assert any(isinstance(e, RcdChange) and e.state is RcdState.AC for e in posted)
    assert sampler.stats.ticks == 3


def test_leaving_our_own_f_drive_latches_nothing(clock: Clock) -> None:
    """Regression: the F confirmed while we drove -12 V was judged under the next drive."""
    board = board_with(clock)
    interlock = armed(clock, board)
    posted: list[SamplerEvent] = []
    sampler = Sampler(board, interlock, 200, posted.append, clock=clock)
    board.set_vehicle(VehicleSide(VehicleState.B))
    interlock.set_pilot(PilotOutput(PilotDrive.STEADY_NEGATIVE, 0))
    for _ in range(3):
        sampler.tick(clock.advance(5))
    interlock.set_pilot(PWM)  # back to observing the vehicle
    for _ in range(3):
        sampler.tick(clock.advance(5))
    changes = [e for e in posted if isinstance(e, PilotChange)]
    assert [(c.current, c.own_drive) for c in changes] == [(P.F, True), (P.B, False)]
    assert interlock.latched == set()


def test_a_short_to_pe_while_we_signal_f_still_latches(clock: Clock) -> None:
    """Found by the stateful test: a pilot short that came and went during our F hold was
    ignored as 'our own drive'. 0 V under our -12 V can only be a short."""
    board = board_with(clock)
    interlock = armed(clock, board)
    posted: list[SamplerEvent] = []
    sampler = Sampler(board, interlock, 200, posted.append, clock=clock)
    board.set_vehicle(VehicleSide(VehicleState.B))
    interlock.set_pilot(PilotOutput(PilotDrive.STEADY_NEGATIVE, 0))
    for _ in range(3):
        sampler.tick(clock.advance(5))
    board.set_vehicle(VehicleSide(VehicleState.B, pilot_shorted=True))
    for _ in range(3):
        sampler.tick(clock.advance(5))
    changes = [e for e in posted if isinstance(e, PilotChange)]
    assert [(c.current, c.own_drive) for c in changes] == [(P.F, True), (P.E, False)]
    assert interlock.latched == {"pilot_e"}


def test_the_test_only_sabotage_trips_and_refuses_nothing() -> None:
    """The broken build the HIL suite must catch ([hal.mock] sabotage = interlock-off)."""
    board = MockBoard(BoardSettings(mock=MockSettings(noise_mv=0)))
    sabotaged = Interlock(board, False, 0, sabotaged=True)
    late = sabotaged.armed_at_ns + 1
    assert sabotaged.command(Relay.MAIN, True, late), "closes with no PWM and the pilot in A"
    assert sabotaged.evaluate(late, P.A, RcdState.DC) is None, "no trip"
    assert sabotaged.closed(Relay.MAIN)
