"""Faults the charger latches, and the condition that clears each (docs/j1772.md "Faults and
their clear conditions").

Errors are fatal by default: each kind names its clear condition; the contactor and RCD
self-test faults are permanent (inoperative) and clear only by service and restart.
"""

from __future__ import annotations

import enum

from firmware.pilot.levels import PilotState


class FaultKind(enum.Enum):
    PILOT_E = "pilot_e"  # 0 V: pilot shorted to PE, or the vehicle signals an error
    PILOT_F = "pilot_f"  # -12 V seen while we did not drive it
    PILOT_OUT_OF_BAND = "pilot_out_of_band"
    DIODE = "diode"  # the vehicle's diode is shorted or missing
    RCD_DC = "rcd_dc"
    RCD_AC = "rcd_ac"
    VENTILATION = "ventilation_unavailable"  # state D at a site without ventilation
    MAIN_WELDED = "main_welded"
    MAIN_FAILED_TO_CLOSE = "main_failed_to_close"
    DISCHARGE_WELDED = "discharge_welded"
    DISCHARGE_FAILED_TO_CLOSE = "discharge_failed_to_close"
    RCD_SELF_TEST = "rcd_self_test_failed"
    RECORD_UNREADABLE = "fault_record_unreadable"  # the permanent-fault record is damaged
    UNAUTHORIZED_DISCHARGE = "unauthorized_discharge"  # the meter saw discharge not allowed
    METER_UNTRUSTED = "meter_untrusted"  # after an authorization, no meter to show it stopped

    @property
    def permanent(self) -> bool:
        return self in PERMANENT

    @property
    def clears_on(self) -> frozenset[PilotState]:
        """Pilot states in which this fault clears (empty: never, it is permanent)."""
        return CLEARS_ON.get(self, frozenset())


PERMANENT = frozenset(
    {
        FaultKind.MAIN_WELDED,
        FaultKind.MAIN_FAILED_TO_CLOSE,
        FaultKind.DISCHARGE_WELDED,
        FaultKind.DISCHARGE_FAILED_TO_CLOSE,
        FaultKind.RCD_SELF_TEST,
        FaultKind.RECORD_UNREADABLE,
    }
)

_UNPLUGGED = frozenset({PilotState.A})
CLEARS_ON: dict[FaultKind, frozenset[PilotState]] = {
    FaultKind.PILOT_E: _UNPLUGGED,
    FaultKind.PILOT_F: _UNPLUGGED,
    FaultKind.PILOT_OUT_OF_BAND: _UNPLUGGED,
    FaultKind.DIODE: _UNPLUGGED,  # "Latched; clears only in A"
    FaultKind.UNAUTHORIZED_DISCHARGE: _UNPLUGGED,  # the vehicle must leave; no retry
    FaultKind.METER_UNTRUSTED: _UNPLUGGED,
    FaultKind.RCD_DC: _UNPLUGGED,  # and the RCD input clear again
    FaultKind.RCD_AC: _UNPLUGGED,
    FaultKind.VENTILATION: frozenset({PilotState.A, PilotState.B}),  # the vehicle gave up D
}

PILOT_FAULTS: dict[PilotState, FaultKind] = {
    PilotState.E: FaultKind.PILOT_E,
    PilotState.F: FaultKind.PILOT_F,
    PilotState.PILOT_FAULT: FaultKind.PILOT_OUT_OF_BAND,
    PilotState.DIODE_FAULT: FaultKind.DIODE,
}
