"""Current limit <-> PWM duty cycle, both directions (docs/j1772.md "Current <-> duty").

Duty is carried in permille (0.1 % steps, the pilot generator's resolution). SAE J1772 /
IEC 61851-1 Table A.8 as EVerest and OpenEVSE apply it.
"""

from __future__ import annotations

import math

MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 80.0
DIGITAL_COMMUNICATION_PERMILLE = 50  # 5 %: high-level communication required
NO_PWM_PERMILLE = 1000  # 100 %: steady +12 V, power not offered


def current_to_duty_permille(current_a: float) -> int | None:
    """Duty that advertises ``current_a``; None when the limit cannot be offered (< 6 or > 80 A).

    Rounded down to the 0.1 % grid, so the vehicle never reads more current than allowed.
    """
    if not MIN_CURRENT_A <= current_a <= MAX_CURRENT_A or math.isnan(current_a):
        return None
    if current_a <= 51.0:
        duty_pct = current_a / 0.6
    elif current_a < 52.5:
        duty_pct = 51.0 / 0.6  # the gap between the two ranges: clamp down to 51 A
    else:
        duty_pct = current_a / 2.5 + 64.0
    return math.floor(round(duty_pct * 10, 6))


def duty_to_current_a(duty_permille: int) -> float | None:
    """Current a vehicle may draw at this duty; None = no charging (or digital only)."""
    d = duty_permille / 10
    if d < 8.0 or d > 97.0:
        return None  # 3-7 % means digital communication; anything else here means stop
    if d < 10.0:
        return 6.0
    if d <= 85.0:
        return d * 0.6
    if d <= 96.0:
        return (d - 64.0) * 2.5
    return 80.0


def is_digital_communication(duty_permille: int) -> bool:
    return 30 <= duty_permille <= 70
