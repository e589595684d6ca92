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


def _ignore(before: str, after: str, event: str) -> None:
    pass


@pytest.mark.parametrize("answer", [False, True])
@pytest.mark.parametrize("state", STATES)
def test_every_event_has_a_row_in_every_state(state: str, answer: bool) -> None:
    for event in EVENTS:
        machine = ChargerMachine(_Context(answer), _ignore)  # type: ignore[arg-type]
        machine.current_state_value = state  # type: ignore[assignment]
        machine.send(event)  # raises TransitionNotAllowed on a missing row


def test_every_state_has_outputs() -> None:
    assert set(STATE_OUTPUTS) == set(STATES)


def test_missing_rows_are_errors_not_silently_ignored() -> None:
    assert ChargerMachine.allow_event_without_transition is False


def test_inoperative_never_leaves() -> None:
    for event in EVENTS:
        machine = ChargerMachine(_Context(True), _ignore)  # type: ignore[arg-type]
        machine.current_state_value = "inoperative"  # type: ignore[assignment]
        machine.send(event)
        assert machine.current_state_value == "inoperative"


class _Guards:
    """Named guards, each False until set."""

    def __init__(self, **answers: bool) -> None:
        self.answers = answers

    def __getattr__(self, name: str) -> object:
        return lambda: self.answers.get(name, False)


def test_one_event_settles_through_eventless_moves_and_the_hook_sees_each() -> None:
    seen: list[tuple[str, str, str]] = []
    guards = _Guards()
    machine = ChargerMachine(guards, lambda *change: seen.append(change))  # type: ignore[arg-type]
    machine.send("pilot_error")
    assert seen == [("idle", "fault", "pilot_error")]
    machine.send("tick")  # the hold has not elapsed: nothing moves, nothing is told
    assert machine.current_state_value == "fault" and len(seen) == 1
    guards.answers.update(fault_hold_elapsed=True, fault_clear_to_connected=True)
    machine.send("tick")
    assert machine.current_state_value == "connected"
    assert seen[1:] == [("fault", "fault_latched", "auto"), ("fault_latched", "connected", "auto")]


def _eventless_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for state in ChargerMachine.states:
        for transition in state.transitions:
            if transition.is_eventless:
                edges.setdefault(state.id, set()).add(transition.target.id)
    return edges


def test_the_eventless_moves_form_no_cycle_so_settling_ends() -> None:
    """The engine takes eventless moves until none is enabled, with no bound of its own."""
    edges = _eventless_edges()
    assert edges, "the machine has eventless moves"

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in edges.get(start, ())
        )

    assert [s for s in edges if reaches(s, s)] == []


def test_all_guards_true_still_settles() -> None:
    machine = ChargerMachine(_Context(True), _ignore)  # type: ignore[arg-type]
    machine.send("pilot_b")
    machine.send("tick")
    assert machine.current_state_value == "finishing"  # connected -> charging -> finishing


def test_docs_diagram_matches_the_machine() -> None:
    assert DOC.read_text() == render(), "run `make diagram` and commit docs/charger-machine.md"
