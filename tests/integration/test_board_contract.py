"""The board-support contract, one suite for every backend (gpiozero's pattern).

Parametrized over the backends that can be opened on this machine; the reference-board
backend joins with its injected fakes of RPi.GPIO, sysfs PWM and spidev (issue #7). Uses
real time in small steps: the contract is about a board as the sampler sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from hal import (
    BACKENDS,
    Board,
    BoardSettings,
    Contacts,
    FeedbackKind,
    HalError,
    MeterReading,
    MockSettings,
    PilotDrive,
    PilotOutput,
    PilotSample,
    RcdState,
    Relay,
    open_board,
)

pytestmark = pytest.mark.integration

SETTLE_S = 0.3  # longer than any backend's relay delay; the 250 ms feedback window


def _mock() -> Board:
    return open_board(BoardSettings(backend="mock", mock=MockSettings(noise_mv=0)))


OPENERS: dict[str, Callable[[], Board]] = {"mock": _mock}


@pytest.fixture(params=sorted(OPENERS))
def board(request: pytest.FixtureRequest) -> Iterator[Board]:
    opened = OPENERS[request.param]()
    yield opened
    opened.close()


def kick_for(board: Board, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        board.kick_deadman()
        time.sleep(0.005)


def test_it_is_a_board_in_its_safe_state(board: Board) -> None:
    assert isinstance(board, Board)
    for relay in Relay:
        assert board.read_feedback(relay) in (Contacts.OPEN, Contacts.UNKNOWN)
    sample = board.read_pilot()
    assert isinstance(sample, PilotSample)
    assert sample.high_mv > 11_000, "opened with the pilot at steady +12 V"


def test_capabilities_publish_the_feedback_wiring(board: Board) -> None:
    caps = board.capabilities
    assert caps.max_current_a >= 6
    for relay in Relay:
        assert isinstance(caps.feedback(relay), FeedbackKind)


def test_relays_close_only_while_the_dead_man_toggles(board: Board) -> None:
    if board.capabilities.main_feedback is FeedbackKind.NONE:
        pytest.skip("no feedback to observe the contacts with")
    board.set_relay(Relay.MAIN, True)
    time.sleep(SETTLE_S)
    assert board.read_feedback(Relay.MAIN) is Contacts.OPEN, "closed without the dead-man"
    kick_for(board, SETTLE_S)
    assert board.read_feedback(Relay.MAIN) is Contacts.CLOSED
    time.sleep(SETTLE_S)  # the toggling stops: the drive drops
    assert board.read_feedback(Relay.MAIN) is Contacts.OPEN


def test_close_opens_the_relays_and_is_idempotent(board: Board) -> None:
    board.set_relay(Relay.MAIN, True)
    kick_for(board, SETTLE_S)
    board.close()
    board.close()
    kick_for(board, SETTLE_S)
    assert board.read_feedback(Relay.MAIN) in (Contacts.OPEN, Contacts.UNKNOWN)


def test_every_pilot_drive_is_accepted_and_samples_advance(board: Board) -> None:
    stamps = []
    for output in (
        PilotOutput(PilotDrive.PWM, 533),
        PilotOutput(PilotDrive.STEADY_NEGATIVE, 0),
        PilotOutput(PilotDrive.ZERO),
        PilotOutput(PilotDrive.STEADY_POSITIVE),
    ):
        board.set_pilot(output)
        stamps.append(board.read_pilot().t_ns)
    assert stamps == sorted(stamps)


def test_inputs_read_without_raising(board: Board) -> None:
    assert isinstance(board.read_rcd(), RcdState)
    assert isinstance(board.read_meter(), MeterReading)
    ohm = board.read_proximity_ohm()
    assert ohm is None or ohm >= 0


def test_unknown_backend_names_the_valid_ones() -> None:
    with pytest.raises(HalError) as refused:
        open_board(BoardSettings(backend="arduino"))
    for name in BACKENDS:
        assert name in str(refused.value)
