"""Two-sample confirmation (firmware/pilot/confirm.py) against docs/j1772.md.

"Confirmation: a new state needs 2 agreeing consecutive samples (rejects one-sample glitches)."
Samples are fed as peak-detector millivolts; the nominal plateau values below are the
reference's circuit values (A 12 V, B 8.98 V, C 6.0 V, D 2.93 V, low plateau -12 V).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.pilot.confirm import PilotChange, PilotConfirmer
from firmware.pilot.levels import PilotState, classify

A, B, C, D, E = PilotState.A, PilotState.B, PilotState.C, PilotState.D, PilotState.E

# (high_mv, low_mv) of a clean PWM sample in each state
NOMINAL = {A: (12000, -12000), B: (8980, -12000), C: (6000, -12000), D: (2930, -12000)}


class Feeder:
    """Feeds nominal samples 1 ms apart and records every change."""

    def __init__(self, confirmer: PilotConfirmer) -> None:
        self.confirmer = confirmer
        self.t_ns = 0
        self.changes: list[PilotChange] = []

    def feed(self, state: PilotState) -> PilotChange | None:
        self.t_ns += 1_000_000
        high, low = NOMINAL[state]
        change = self.confirmer.feed(high, low, self.t_ns, pwm_running=True)
        if change is not None:
            self.changes.append(change)
        return change


def test_starts_in_a_by_default_and_accepts_another_initial_state() -> None:
    assert PilotConfirmer().confirmed is A
    assert PilotConfirmer(C).confirmed is C
    assert not PilotConfirmer().confirming


@pytest.mark.parametrize("glitch", [B, C, D])
def test_a_single_glitch_never_changes_the_confirmed_state(glitch: PilotState) -> None:
    feeder = Feeder(PilotConfirmer())
    for _ in range(3):
        feeder.feed(A)
    assert feeder.feed(glitch) is None
    assert feeder.feed(A) is None
    assert feeder.feed(A) is None
    assert feeder.confirmer.confirmed is A
    assert feeder.changes == []


def test_alternating_glitches_never_confirm() -> None:
    feeder = Feeder(PilotConfirmer(B))
    for _ in range(20):
        feeder.feed(C)
        feeder.feed(B)
    assert feeder.changes == []
    assert feeder.confirmer.confirmed is B


def test_two_different_glitches_in_a_row_do_not_confirm_either() -> None:
    feeder = Feeder(PilotConfirmer(A))
    assert feeder.feed(B) is None
    assert feeder.feed(C) is None  # disagrees with the first: only a new candidate
    assert feeder.confirmer.confirmed is A
    change = feeder.feed(C)  # second agreeing C
    assert change == PilotChange(A, C, feeder.t_ns)


def test_two_agreeing_samples_confirm_on_the_second() -> None:
    confirmer = PilotConfirmer(A)
    assert confirmer.feed(8980, -12000, 1_000, pwm_running=True) is None
    assert confirmer.confirmed is A
    change = confirmer.feed(8990, -12000, 2_000, pwm_running=True)
    assert change is not None
    assert change.previous is A
    assert change.current is B
    assert change.t_ns == 2_000  # the time of the confirming (second) sample
    assert confirmer.confirmed is B


def test_a_confirmed_state_is_reported_once() -> None:
    feeder = Feeder(PilotConfirmer(A))
    feeder.feed(B)
    feeder.feed(B)
    for _ in range(5):
        assert feeder.feed(B) is None
    assert [(c.previous, c.current) for c in feeder.changes] == [(A, B)]


def test_a_full_session_a_b_c_b_a() -> None:
    feeder = Feeder(PilotConfirmer(A))
    for state in (A, B, B, B, C, C, C, B, B, A, A):
        feeder.feed(state)
    assert [(c.previous, c.current) for c in feeder.changes] == [(A, B), (B, C), (C, B), (B, A)]


def test_confirming_flag() -> None:
    feeder = Feeder(PilotConfirmer(A))
    assert not feeder.confirmer.confirming
    feeder.feed(A)
    assert not feeder.confirmer.confirming  # agrees with the confirmed state
    feeder.feed(B)
    assert feeder.confirmer.confirming  # a candidate waits for its second sample
    feeder.feed(A)
    assert not feeder.confirmer.confirming  # glitch rejected, candidate dropped
    feeder.feed(C)
    assert feeder.confirmer.confirming
    feeder.feed(C)
    assert not feeder.confirmer.confirming  # confirmed
    assert feeder.confirmer.confirmed is C


def test_diode_fault_also_needs_two_samples() -> None:
    confirmer = PilotConfirmer(B)
    assert confirmer.feed(8980, -8980, 1, pwm_running=True) is None
    change = confirmer.feed(8980, -8980, 2, pwm_running=True)
    assert change == PilotChange(B, PilotState.DIODE_FAULT, 2)


def test_classification_uses_the_confirmed_state_as_prev() -> None:
    # 10.5 V is B unless the confirmed state is A (hysteresis): from A it never leaves A
    from_a = PilotConfirmer(A)
    assert from_a.feed(10500, -12000, 1, True) is None
    assert from_a.feed(10500, -12000, 2, True) is None
    assert from_a.confirmed is A
    from_b = PilotConfirmer(B)
    assert from_b.feed(10500, -12000, 1, True) is None
    assert from_b.confirmed is B


SAMPLE_MV = st.one_of(
    st.sampled_from([12000, 10500, 8980, 7500, 6000, 4500, 2930, 0, -1500, -10500, -12000]),
    st.integers(min_value=-14000, max_value=14000),
)
SAMPLE = st.tuples(
    SAMPLE_MV,
    st.one_of(st.just(-12000), st.integers(min_value=-14000, max_value=14000)),
    st.booleans(),
)


@given(
    initial=st.sampled_from(list(PilotState)),
    samples=st.lists(SAMPLE, max_size=60),
)
def test_changes_only_on_the_second_of_two_agreeing_classifications(
    initial: PilotState, samples: list[tuple[int, int, bool]]
) -> None:
    confirmer = PilotConfirmer(initial)
    previous_class: PilotState | None = None
    for t_ns, (high, low, pwm) in enumerate(samples):
        before = confirmer.confirmed
        this_class = classify(high, low, before, pwm)
        change = confirmer.feed(high, low, t_ns, pwm)
        should_change = this_class is previous_class and this_class is not before
        if should_change:
            assert change == PilotChange(before, this_class, t_ns)
            assert confirmer.confirmed is this_class
        else:
            assert change is None
            assert confirmer.confirmed is before
        previous_class = this_class


@pytest.mark.parametrize(
    ("first_own", "second_own", "expected"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_change_records_whether_a_sample_was_taken_under_own_drive(
    first_own: bool, second_own: bool, expected: bool
) -> None:
    confirmer = PilotConfirmer(B)
    assert confirmer.feed(0, 0, 1, pwm_running=False, own_drive=first_own) is None
    change = confirmer.feed(0, 0, 2, pwm_running=False, own_drive=second_own)
    assert change == PilotChange(B, E, 2, own_drive=expected)


def test_own_drive_of_an_older_sample_does_not_leak_into_a_later_change() -> None:
    confirmer = PilotConfirmer(B)
    confirmer.feed(8980, -12000, 1, pwm_running=True, own_drive=True)  # agrees with B
    confirmer.feed(6000, -12000, 2, pwm_running=True)
    change = confirmer.feed(6000, -12000, 3, pwm_running=True)
    assert change == PilotChange(B, C, 3, own_drive=False)
