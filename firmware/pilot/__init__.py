"""J1772 control-pilot logic: classification, confirmation, duty mapping. Pure, no I/O."""

from firmware.pilot.confirm import PilotChange, PilotConfirmer
from firmware.pilot.duty import current_to_duty_permille, duty_to_current_a
from firmware.pilot.levels import PilotState, classify, classify_high

__all__ = [
    "PilotChange",
    "PilotConfirmer",
    "PilotState",
    "classify",
    "classify_high",
    "current_to_duty_permille",
    "duty_to_current_a",
]
