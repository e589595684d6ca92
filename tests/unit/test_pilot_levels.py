"""Pilot classification (firmware/pilot/levels.py) against docs/j1772.md.

The band table below is the reference's "Classifying the high plateau" table, row for row, in
millivolts. Every parametrized case is generated from it: each edge is probed at edge - 1 mV,
edge and edge + 1 mV, with every possible ``prev`` state. Convention (documented in
``classify_high``): a value exactly on an edge belongs to the band above it, except the outer
limits +13000 / -13000 mV, which are still in range (A and F).

The low-plateau rules (diode fault, pilot short, only while PWM runs) are a second table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.pilot.levels import FAULT, A, B, C, D, E, F, PilotState, classify, classify_high

DIODE = PilotState.DIODE_FAULT
ALL_PREV = tuple(PilotState)

Rule = Callable[[PilotState], PilotState]


def always(state: PilotState) -> Rule:
    return lambda prev: state


def if_prev(prevs: set[PilotState], then: PilotState, otherwise: PilotState) -> Rule:
    return lambda prev: then if prev in prevs else otherwise


@dataclass(frozen=True)
class Band:
    """One row of the reference table: ``low_mv <= V+ < high_mv`` (None = unbounded)."""

    low_mv: int | None
    high_mv: int | None
    rule: Rule
    text: str

    def contains(self, mv: int) -> bool:
        above_low = self.low_mv is None or mv >= self.low_mv
        below_high = self.high_mv is None or mv < self.high_mv
        return above_low and below_high


# docs/j1772.md, "Classifying the high plateau". The outer limits are
# inclusive, so the A row ends at 13001 (exclusive) and the "> 13.0" row starts there; the F row
# starts at -13000 (inclusive) and the "< -13.0" row ends there.
BAND_TABLE: tuple[Band, ...] = (
    Band(13001, None, always(FAULT), "> 13.0 V: pilot fault"),
    Band(11000, 13001, always(A), "11.0 .. 13.0 V: A"),
    Band(10000, 11000, if_prev({A}, A, B), "10.0 .. 11.0 V: A if prev is A, else B"),
    Band(8000, 10000, always(B), "8.0 .. 10.0 V: B"),
    Band(7000, 8000, if_prev({A, B}, B, C), "7.0 .. 8.0 V: B if prev is A or B, else C"),
    Band(5000, 7000, always(C), "5.0 .. 7.0 V: C"),
    Band(4000, 5000, if_prev({A, B, C}, C, D), "4.0 .. 5.0 V: C if prev is A, B or C, else D"),
    Band(2000, 4000, always(D), "2.0 .. 4.0 V: D"),
    Band(-1000, 2000, always(E), "-1.0 .. 2.0 V: E"),
    Band(-2000, -1000, if_prev({A, B, C, D, E}, E, FAULT), "-2.0 .. -1.0 V: E if prev A-E"),
    Band(-10000, -2000, always(FAULT), "-10.0 .. -2.0 V: pilot fault"),
    Band(-11000, -10000, if_prev({F}, F, FAULT), "-11.0 .. -10.0 V: F if prev is F"),
    Band(-13000, -11000, always(F), "-13.0 .. -11.0 V: F"),
    Band(None, -13000, always(FAULT), "< -13.0 V: pilot fault"),
)


def band_of(mv: int) -> Band:
    (band,) = [b for b in BAND_TABLE if b.contains(mv)]
    return band


def _edge_cases() -> list[object]:
    """Every edge between adjacent rows, at edge - 1, edge, edge + 1, for every prev."""
    cases = []
    for band in BAND_TABLE:
        if band.low_mv is None:
            continue
        edge = band.low_mv
        for mv in (edge - 1, edge, edge + 1):
            for prev in ALL_PREV:
                expected = band_of(mv).rule(prev)
                cases.append(
                    pytest.param(mv, prev, expected, id=f"{mv}mV-prev{prev.name}-{expected.name}")
                )
    return cases


def _mid_band_cases() -> list[object]:
    cases = []
    for band in BAND_TABLE:
        low = band.low_mv if band.low_mv is not None else band.high_mv - 2000
        high = band.high_mv if band.high_mv is not None else band.low_mv + 2000
        mid = (low + high) // 2
        for prev in ALL_PREV:
            expected = band.rule(prev)
            cases.append(pytest.param(mid, prev, expected, id=f"{band.text}-prev{prev.name}"))
    return cases


def test_band_table_is_contiguous_and_covers_every_millivolt() -> None:
    # guards the generator itself: the rows tile the whole axis with no gap or overlap
    for upper, lower in itertools.pairwise(BAND_TABLE):
        assert lower.high_mv == upper.low_mv


@pytest.mark.parametrize(("high_mv", "prev", "expected"), _edge_cases())
def test_every_band_edge(high_mv: int, prev: PilotState, expected: PilotState) -> None:
    assert classify_high(high_mv, prev) is expected


@pytest.mark.parametrize(("high_mv", "prev", "expected"), _mid_band_cases())
def test_every_band_in_its_middle(high_mv: int, prev: PilotState, expected: PilotState) -> None:
    assert classify_high(high_mv, prev) is expected


# The edge convention spelled out once by hand (independent of the generator above).
@pytest.mark.parametrize(
    ("high_mv", "prev", "expected"),
    [
        (13000, A, A),  # outer limit: still in range
        (13001, A, FAULT),
        (11000, B, A),  # on the edge: the band above
        (10999, B, B),
        (10000, C, B),
        (9999, A, B),
        (8000, C, B),
        (7999, C, C),
        (7000, D, C),
        (6999, A, C),
        (5000, D, C),
        (4999, D, D),
        (4000, E, D),
        (3999, A, D),
        (2000, A, D),
        (1999, A, E),
        (-1000, F, E),
        (-1001, F, FAULT),
        (-2000, E, E),
        (-2001, E, FAULT),
        (-10000, F, FAULT),  # on the edge: the band above (pilot fault)
        (-10001, F, F),
        (-11000, F, F),
        (-11000, A, FAULT),
        (-11001, A, F),
        (-13000, A, F),  # outer limit: still in range
        (-13001, F, FAULT),
    ],
)
def test_edge_convention_by_hand(high_mv: int, prev: PilotState, expected: PilotState) -> None:
    assert classify_high(high_mv, prev) is expected


# Each hysteresis band, with the prev values that keep the upper state and those that do not.
HYSTERESIS = [
    # (mid-band mV, prev values giving the "sticky" result, sticky, otherwise)
    (10500, {A}, A, B),
    (7500, {A, B}, B, C),
    (4500, {A, B, C}, C, D),
    (-1500, {A, B, C, D, E}, E, FAULT),
    (-10500, {F}, F, FAULT),
]


@pytest.mark.parametrize(
    ("high_mv", "prev", "expected"),
    [
        pytest.param(mv, prev, sticky if prev in keep else other, id=f"{mv}mV-prev{prev.name}")
        for mv, keep, sticky, other in HYSTERESIS
        for prev in ALL_PREV
    ],
)
def test_hysteresis_bands_depend_on_prev(
    high_mv: int, prev: PilotState, expected: PilotState
) -> None:
    assert classify_high(high_mv, prev) is expected


def test_classify_without_pwm_is_the_band_table() -> None:
    # no PWM: the low plateau is not looked at, whatever it reads
    for band in BAND_TABLE:
        mv = band.low_mv if band.low_mv is not None else -20000
        for low_mv in (mv, -mv, 0, -12000):
            for prev in ALL_PREV:
                assert classify(mv, low_mv, prev, pwm_running=False) is band.rule(prev)


# Low-plateau checks while PWM runs: (V+, V-, prev, pwm_running, expected, why)
LOW_PLATEAU = [
    # a healthy vehicle: the diode holds V- at -12 V
    (8980, -12000, A, True, B, "B with diode"),
    (6000, -12000, B, True, C, "C with diode"),
    (2930, -12000, C, True, D, "D with diode"),
    # nothing plugged in: +12/-12 is symmetric but it is A, never a diode fault
    (12000, -12000, A, True, A, "unplugged, PWM running"),
    (12000, -12000, B, True, A, "unplug from B, PWM running"),
    (12000, -11000, A, True, A, "unplugged, |sum| = 1000"),
    (10500, -10500, A, True, A, "hysteresis keeps A: no vehicle shown"),
    # diode missing/shorted: V- mirrors V+ while the high plateau shows a vehicle
    (8980, -8980, B, True, DIODE, "B, diode shorted"),
    (6000, -6000, C, True, DIODE, "C, diode shorted"),
    (2930, -2930, C, True, DIODE, "D, diode shorted"),
    (10500, -10500, B, True, DIODE, "10.5 V read as B (prev B), mirrored"),
    (7500, -7500, A, True, DIODE, "7.5 V read as B (prev A), mirrored"),
    (8980, -7780, B, True, DIODE, "|sum| = 1200: still symmetric"),
    (8980, -10180, B, True, DIODE, "|sum| = 1200 the other way"),
    (8980, -7779, B, True, B, "|sum| = 1201: not symmetric"),
    (8980, -10181, B, True, B, "|sum| = 1201 the other way"),
    (2001, -2001, D, True, DIODE, "just above 2 V"),
    (2000, -2000, D, True, D, "exactly 2 V: neither rule (> 2 V / < 2 V)"),
    # pilot shorted to PE: both plateaus near 0 V -> E
    (0, 0, B, True, E, "pilot short"),
    (1999, -1999, B, True, E, "just below 2 V"),
    (-1500, 300, F, True, E, "|sum| = 1200 after F"),
    (-1500, 299, F, True, FAULT, "|sum| = 1201 after F: the band table decides"),
    (-1500, 1500, F, True, E, "short while high reads -1.5 V (band alone: fault after F)"),
    (-1500, 1500, PilotState.PILOT_FAULT, True, E, "short after a pilot fault"),
    # the same readings without PWM: no low-plateau checks at all
    (8980, -8980, B, False, B, "no PWM: no diode check"),
    (2930, -2930, D, False, D, "no PWM: no diode check (D)"),
    (-1500, 1500, F, False, FAULT, "no PWM: no short rule"),
]


@pytest.mark.parametrize(
    ("high_mv", "low_mv", "prev", "pwm", "expected"),
    [pytest.param(h, lo, p, pwm, exp, id=why) for h, lo, p, pwm, exp, why in LOW_PLATEAU],
)
def test_low_plateau_rules(
    high_mv: int, low_mv: int, prev: PilotState, pwm: bool, expected: PilotState
) -> None:
    assert classify(high_mv, low_mv, prev, pwm) is expected


def test_state_properties() -> None:
    assert {s for s in PilotState if s.requests_power} == {C, D}
    assert {s for s in PilotState if s.is_fault} == {E, F, FAULT, DIODE}


MILLIVOLTS = st.integers(min_value=-1_000_000, max_value=1_000_000)


@given(high_mv=MILLIVOLTS, low_mv=MILLIVOLTS, prev=st.sampled_from(ALL_PREV), pwm=st.booleans())
def test_classification_is_total(high_mv: int, low_mv: int, prev: PilotState, pwm: bool) -> None:
    assert isinstance(classify_high(high_mv, prev), PilotState)
    assert isinstance(classify(high_mv, low_mv, prev, pwm), PilotState)


@given(high_mv=MILLIVOLTS, prev=st.sampled_from(ALL_PREV))
def test_classify_high_agrees_with_the_table_everywhere(high_mv: int, prev: PilotState) -> None:
    assert classify_high(high_mv, prev) is band_of(high_mv).rule(prev)
