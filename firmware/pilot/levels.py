"""Pilot classification: peak-detector millivolts -> J1772 state, with hysteresis.

Pure: no I/O, no clock. The band table, the diode check and the pilot-short rule are from
docs/j1772.md "Classifying the high plateau" (as EVerest IECStateMachine and chargebyte
CPUtils apply them). ``prev`` is the last *confirmed* state.
"""

from __future__ import annotations

import enum


class PilotState(enum.Enum):
    A = "A"  # no vehicle
    B = "B"  # vehicle connected
    C = "C"  # charge requested
    D = "D"  # charge requested, ventilation required
    E = "E"  # 0 V: pilot shorted to PE or EVSE error
    F = "F"  # -12 V: EVSE not available
    PILOT_FAULT = "pilot_fault"  # out of every band
    DIODE_FAULT = "diode_fault"  # the vehicle's diode is missing or shorted

    @property
    def requests_power(self) -> bool:
        return self in (PilotState.C, PilotState.D)

    @property
    def is_fault(self) -> bool:
        return self in (
            PilotState.E,
            PilotState.F,
            PilotState.PILOT_FAULT,
            PilotState.DIODE_FAULT,
        )


A, B, C, D, E, F = (
    PilotState.A,
    PilotState.B,
    PilotState.C,
    PilotState.D,
    PilotState.E,
    PilotState.F,
)
FAULT = PilotState.PILOT_FAULT

# docs/j1772.md "Low-plateau checks": only meaningful while PWM runs.
DIODE_CHECK_MIN_HIGH_MV = 2000
DIODE_SYMMETRY_MV = 1200  # |V+ + V-| at or below this means the plateaus mirror each other


def classify_high(high_mv: int, prev: PilotState) -> PilotState:
    """The band table with hysteresis.

    A reading exactly on an edge belongs to the band above it (11.000 V is A, -10.000 V is a
    pilot fault), except at the outer limits +13 V and -13 V, which are still in range.
    """
    v = high_mv
    if v > 13000:
        return FAULT
    if v >= 11000:
        return A
    if v >= 10000:
        return A if prev is A else B
    if v >= 8000:
        return B
    if v >= 7000:
        return B if prev in (A, B) else C
    if v >= 5000:
        return C
    if v >= 4000:
        return C if prev in (A, B, C) else D
    if v >= 2000:
        return D
    if v >= -1000:
        return E
    if v >= -2000:
        return E if prev in (A, B, C, D, E) else FAULT
    if v >= -10000:
        return FAULT
    if v >= -11000:
        return F if prev is F else FAULT
    if v >= -13000:
        return F
    return FAULT


def shows_short_to_pe(high_mv: int) -> bool:
    """Near 0 V: while the EVSE drives -12 V itself, only a pilot shorted to PE reads so."""
    return -1000 <= high_mv < 2000


def classify(high_mv: int, low_mv: int, prev: PilotState, pwm_running: bool) -> PilotState:
    """One sample -> a state, applying the low-plateau checks while PWM runs.

    The diode check applies only where the high plateau shows a vehicle (B, C or D): with
    nothing plugged in the pilot swings a symmetric +/-12 V, which is not a diode fault.
    """
    state = classify_high(high_mv, prev)
    if pwm_running and abs(high_mv + low_mv) <= DIODE_SYMMETRY_MV:
        if high_mv > DIODE_CHECK_MIN_HIGH_MV and state in (B, C, D):
            return PilotState.DIODE_FAULT  # V- mirrors V+: no diode in the vehicle
        if high_mv < DIODE_CHECK_MIN_HIGH_MV:
            return E  # both plateaus near 0 V: pilot shorted to PE
    return state
