"""Current limit <-> PWM duty (firmware/pilot/duty.py) against docs/j1772.md.

EVSE side: < 6 A or > 80 A invalid; 6 A -> 10 %; up to 51 A duty = A / 0.6; 51-52.5 A clamp to
51 A; 52.5-80 A duty = A / 2.5 + 64. Duty is in permille and rounded *down* to 0.1 %, so the
vehicle never reads more current than the limit.

EV side: 3-7 % digital communication; other < 8 % no charging; 8-10 % 6 A; 10-85 % D x 0.6 A;
85-96 % (D - 64) x 2.5 A; 96-97 % 80 A; > 97 % no charging.

At exactly 85 % the two formulas disagree (51 A vs 52.5 A). The reference's own EVSE-side clamp
settles it: 51-52.5 A is advertised as 51 / 0.6 = 85 %, which is only safe if 85 % reads 51 A.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.pilot.duty import (
    current_to_duty_permille,
    duty_to_current_a,
    is_digital_communication,
)

# "tiny epsilon": float noise only (the conversion rounds to 1e-6 permille before flooring)
EPS_A = 1e-6


@pytest.mark.parametrize(
    ("current_a", "permille"),
    [
        (6.0, 100),  # 6 A -> 10 %
        (7.5, 125),  # 7.5 / 0.6 = 12.5 %
        (16.0, 266),  # 26.67 % rounded down
        (20.0, 333),  # 33.33 % rounded down
        (30.0, 500),
        (32.0, 533),  # 53.33 % rounded down
        (40.0, 666),  # 66.67 % rounded down, never up to 66.7 %
        (48.0, 800),
        (51.0, 850),  # top of the A / 0.6 range: 85 %
        (51.1, 850),  # 51 .. 52.5 A: clamped to 51 A
        (52.0, 850),
        (52.49, 850),
        (52.5, 850),  # 52.5 / 2.5 + 64 = 85 %
        (55.0, 860),  # 22 + 64
        (60.0, 880),  # 24 + 64
        (70.0, 920),  # 28 + 64
        (80.0, 960),  # 32 + 64 = 96 %
    ],
)
def test_current_to_duty_fixed_points(current_a: float, permille: int) -> None:
    assert current_to_duty_permille(current_a) == permille


@pytest.mark.parametrize(
    "current_a", [0.0, -6.0, 5.0, 5.99, 80.01, 81.0, 1000.0, math.nan, math.inf, -math.inf]
)
def test_current_that_cannot_be_offered(current_a: float) -> None:
    assert current_to_duty_permille(current_a) is None


@pytest.mark.parametrize(
    ("permille", "current_a"),
    [
        (0, None),
        (29, None),  # 2.9 %: not digital, no charging
        (30, None),  # 3 %: digital communication, no PWM current
        (50, None),  # 5 %
        (70, None),  # 7 %
        (75, None),  # 7.5 %: no charging
        (79, None),  # 7.9 %: below 8 %
        (80, 6.0),  # 8 %
        (95, 6.0),
        (99, 6.0),  # 9.9 %
        (100, 6.0),  # 10 % -> 10 x 0.6
        (250, 15.0),
        (500, 30.0),
        (533, 31.98),
        (849, 50.94),
        (850, 51.0),  # 85 %: 51 A (see module docstring)
        (851, 52.75),  # 85.1 %: (85.1 - 64) x 2.5
        (880, 60.0),
        (900, 65.0),
        (959, 79.75),
        (960, 80.0),  # 96 %
        (965, 80.0),  # 96-97 %: 80 A
        (970, 80.0),  # 97 %
        (971, None),  # above 97 %: no charging
        (990, None),
        (1000, None),  # 100 %: steady +12 V, no PWM
    ],
)
def test_duty_to_current_table(permille: int, current_a: float | None) -> None:
    got = duty_to_current_a(permille)
    if current_a is None:
        assert got is None
    else:
        assert got == pytest.approx(current_a, abs=1e-9)


@pytest.mark.parametrize(
    ("permille", "digital"),
    [(0, False), (29, False), (30, True), (50, True), (70, True), (71, False), (100, False)],
)
def test_digital_communication_band(permille: int, digital: bool) -> None:
    assert is_digital_communication(permille) is digital


def test_every_duty_on_the_grid_round_trips_exactly() -> None:
    # 10 % .. 96 %: the EVSE's conversion gives back the very duty the EV decoded
    for permille in range(100, 961):
        current = duty_to_current_a(permille)
        assert current is not None
        assert current_to_duty_permille(current) == permille, permille


def _step_a(permille: int) -> float:
    """Current worth of one 0.1 % step above ``permille`` (0.06 A or 0.25 A)."""
    return 0.06 if permille < 850 else 0.25


CURRENTS = st.floats(min_value=6.0, max_value=80.0, allow_nan=False)


@given(current_a=CURRENTS)
def test_round_trip_never_advertises_more_than_the_limit(current_a: float) -> None:
    permille = current_to_duty_permille(current_a)
    assert permille is not None
    assert 100 <= permille <= 960
    advertised = duty_to_current_a(permille)
    assert advertised is not None
    assert advertised <= current_a + EPS_A


@given(current_a=CURRENTS)
def test_round_trip_loses_at_most_one_step(current_a: float) -> None:
    permille = current_to_duty_permille(current_a)
    assert permille is not None
    advertised = duty_to_current_a(permille)
    assert advertised is not None
    if 51.0 <= current_a < 52.75:
        # the gap: 85 % reads 51 A and the next step (85.1 %) reads 52.75 A
        assert advertised == pytest.approx(51.0)
    else:
        assert advertised >= current_a - _step_a(permille) - EPS_A


@given(current_a=CURRENTS)
def test_duty_is_the_largest_on_the_grid_that_does_not_exceed_the_limit(current_a: float) -> None:
    permille = current_to_duty_permille(current_a)
    assert permille is not None
    if permille < 960:  # above 96 % the EV reads 80 A flat
        next_up = duty_to_current_a(permille + 1)
        assert next_up is not None
        assert next_up > current_a - EPS_A


@given(permille=st.integers(min_value=0, max_value=1000))
def test_duty_to_current_is_total_and_within_j1772(permille: int) -> None:
    current = duty_to_current_a(permille)
    assert current is None or 6.0 <= current <= 80.0
    if is_digital_communication(permille):
        assert current is None
