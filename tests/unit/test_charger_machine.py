"""The state machine's table: complete, consistent with the outputs, and documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.charger.diagram import render
from firmware.charger.machine import ChargerMachine
from firmware.charger.outputs import STATE_OUTPUTS

DOC = Path(__file__).parents[2] / "docs" / "charger-machine.md"
EVENTS = sorted(e.id for e in ChargerMachine.events)
STATES = sorted(s.id for s in ChargerMachine.states)


class _Context:
    """Guards all False or all True: the table must answer every event either way."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer

    def __getattr__(self, name: str) -> object:
        return lambda: self.answer


@pytest.mark.parametrize("answer", [False, True])
@pytest.mark.parametrize("state", STATES)
def test_every_event_has_a_row_in_every_state(state: str, answer: bool) -> None:
    for event in EVENTS:
        machine = ChargerMachine(_Context(answer))  # type: ignore[arg-type]
        machine.current_state_value = state  # type: ignore[assignment]
        machine.send(event)  # raises TransitionNotAllowed on a missing row


def test_every_state_has_outputs() -> None:
    assert set(STATE_OUTPUTS) == set(STATES)


def test_missing_rows_are_errors_not_silently_ignored() -> None:
    assert ChargerMachine.allow_event_without_transition is False


def test_inoperative_never_leaves() -> None:
    for event in EVENTS:
        machine = ChargerMachine(_Context(True))  # type: ignore[arg-type]
        machine.current_state_value = "inoperative"  # type: ignore[assignment]
        machine.send(event)
        assert machine.current_state_value == "inoperative"


def test_docs_diagram_matches_the_machine() -> None:
    assert DOC.read_text() == render(), "run `make diagram` and commit docs/charger-machine.md"
