"""The charger's outputs as a pure function of its state (EVerest's "state -> outputs" idea).

The caller applies them: pilot first when closing, relays first when opening. The discharge
relay is wanted only while main is (charging or ventilating), no fault is latched and the
J3072 gate authorizes it: the controller adds that input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hal import SAFE_PILOT, PilotDrive, PilotOutput


class ChargerState(enum.StrEnum):
    """The charger machine's states, as other modules see them (equal to their ids)."""

    IDLE = "idle"
    CONNECTED = "connected"
    CHARGING = "charging"
    VENTILATING = "ventilating"
    FINISHING = "finishing"
    FAULT = "fault"
    FAULT_LATCHED = "fault_latched"
    INOPERATIVE = "inoperative"

    @property
    def powered(self) -> bool:
        """Main closed for charging: the states the discharge path may close in."""
        return self in (ChargerState.CHARGING, ChargerState.VENTILATING)


class PilotPlan(enum.Enum):
    STEADY = "x1"  # +12 V, no PWM
    OFFER = "pwm"  # PWM at the advertised duty, or x1 when no current can be offered
    F = "F"  # -12 V: EVSE not available


@dataclass(frozen=True, slots=True)
class Outputs:
    pilot: PilotOutput
    main_closed: bool
    discharge_closed: bool = False


# state id -> (pilot plan, main contactor closed)
STATE_OUTPUTS: dict[str, tuple[PilotPlan, bool]] = {
    "idle": (PilotPlan.STEADY, False),
    "connected": (PilotPlan.OFFER, False),
    "charging": (PilotPlan.OFFER, True),
    "ventilating": (PilotPlan.OFFER, True),
    "finishing": (PilotPlan.OFFER, False),
    "fault": (PilotPlan.F, False),  # IEC 61851-1 Table A.5: F for >= 300 ms after a fault
    "fault_latched": (PilotPlan.STEADY, False),  # x1 again, to see the vehicle leave
    "inoperative": (PilotPlan.F, False),  # permanent: never offers power again
}


def outputs_for(
    state_id: str, offered_duty_permille: int | None, discharge: bool = False
) -> Outputs:
    plan, main_closed = STATE_OUTPUTS[state_id]
    if plan is PilotPlan.F:
        pilot = PilotOutput(PilotDrive.STEADY_NEGATIVE, 0)
    elif plan is PilotPlan.OFFER and offered_duty_permille is not None:
        pilot = PilotOutput(PilotDrive.PWM, offered_duty_permille)
    else:
        pilot = SAFE_PILOT
    # main stays closed when the offer is withdrawn: the vehicle gets 6 s to stop drawing
    # current before the controller forces it open (IEC 61851-1 Table A.6 seq 10.2)
    return Outputs(pilot=pilot, main_closed=main_closed, discharge_closed=discharge and main_closed)
