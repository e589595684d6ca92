"""The board-support contract, one suite for every backend (gpiozero's pattern).

Parametrized over the backends that can be opened on this machine; the reference-board
backend joins with its injected fakes of RPi.GPIO, sysfs PWM and spidev (tests/fakes_rpi.py).
Uses real time in small steps: the contract is about a board as the sampler sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

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
from tests.fakes_rpi import FakeRpiRig

pytestmark = pytest.mark.integration

SETTLE_S = 0.3  # longer than any backend's relay delay; the 250 ms feedback window


def _mock(tmp_path: Path) -> Board:
    return open_board(BoardSettings(backend="mock", mock=MockSettings(noise_mv=0)))


def _rpi(tmp_path: Path) -> Board:
    """The reference-board backend on fakes: RPi.GPIO, a sysfs PWM tree under tmp_path, and
    an MCP3208 whose inputs follow the pilot the PWM drives."""
    return FakeRpiRig(tmp_path).open()


OPENERS: dict[str, Callable[[Path], Board]] = {"mock": _mock, "rpi": _rpi}


@pytest.fixture(params=sorted(OPENERS))
def board(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Board]:
    opened = OPENERS[request.param](tmp_path)
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
        if output.drive is PilotDrive.ZERO and not board.capabilities.supports_state_e:
            continue  # refused: see the next test
        board.set_pilot(output)
        stamps.append(board.read_pilot().t_ns)
    assert stamps == sorted(stamps)


def test_state_e_is_refused_where_the_board_cannot_drive_it(board: Board) -> None:
    if board.capabilities.supports_state_e:
        pytest.skip("this board drives 0 V")
    with pytest.raises(HalError) as refused:
        board.set_pilot(PilotOutput(PilotDrive.ZERO))
    assert "\n" not in str(refused.value)
    for relay in Relay:
        assert board.read_feedback(relay) in (Contacts.OPEN, Contacts.UNKNOWN)


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
