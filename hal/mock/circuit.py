"""The J1772 pilot circuit, solved by Ohm's law: what the peak detectors see.

EVSE side: a +/-12 V source behind R1 = 1 kOhm. Vehicle side: a diode, then R2 = 2.74 kOhm to
PE, with S2 adding 1.3 kOhm (C) or 270 Ohm (D) in parallel. Values from docs/j1772.md
"Circuit". The rig may override that load (``load_ohm``: R2, or R2 parallel S2's resistor) to
stage a vehicle at the edge of its resistor tolerance. Faults the rig can inject: the diode
shorted, the pilot shorted to PE, PE lost.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hal.contract import PilotDrive, PilotOutput

SUPPLY_V = 12.0
R_SOURCE_OHM = 1000.0
R_BASE_OHM = 2740.0  # R2, always present once plugged in
R_C_OHM = 1300.0  # R3 via S2: charge requested
R_D_OHM = 270.0  # charge requested, ventilation needed
DIODE_DROP_V = 0.7


class VehicleState(enum.Enum):
    A = "A"  # unplugged
    B = "B"
    C = "C"
    D = "D"


def _parallel(a: float, b: float) -> float:
    return a * b / (a + b)


_LOAD_OHM: dict[VehicleState, float | None] = {
    VehicleState.A: None,
    VehicleState.B: R_BASE_OHM,
    VehicleState.C: _parallel(R_BASE_OHM, R_C_OHM),
    VehicleState.D: _parallel(R_BASE_OHM, R_D_OHM),
}


@dataclass(frozen=True, slots=True)
class VehicleSide:
    """Everything on the far side of the connector that shapes the pilot voltage."""

    state: VehicleState = VehicleState.A
    diode_shorted: bool = False
    pilot_shorted: bool = False
    pe_connected: bool = True
    plc: bool = False  # the vehicle's PLC modem is on the line (it performs SLAC as a PEV)
    load_ohm: float | None = None  # total load after the diode; None: the state's nominal


def _load_ohm(vehicle: VehicleSide) -> float | None:
    """The resistance from after the diode to PE; None when unplugged (A has no load)."""
    nominal = _LOAD_OHM[vehicle.state]
    if nominal is None or vehicle.load_ohm is None:
        return nominal
    return vehicle.load_ohm


def pilot_node_v(source_v: float, vehicle: VehicleSide) -> float:
    """Voltage at the pilot node for a given source voltage."""
    load = _load_ohm(vehicle)
    if not vehicle.pe_connected:
        return source_v  # every return path goes through PE: the pilot floats at the source
    if vehicle.pilot_shorted:
        return 0.0
    if load is None:
        return source_v
    if source_v > 0:
        drop = 0.0 if vehicle.diode_shorted else DIODE_DROP_V
        if source_v <= drop:
            return source_v
        current = (source_v - drop) / (R_SOURCE_OHM + load)
        return source_v - current * R_SOURCE_OHM
    if source_v < 0 and vehicle.diode_shorted:
        return source_v * load / (R_SOURCE_OHM + load)
    return source_v  # the diode blocks: no current on the negative half


def plateaus_v(output: PilotOutput, vehicle: VehicleSide) -> tuple[float, float]:
    """(high plateau, low plateau) as positive and negative peak detectors see them.

    A steady drive has one level, so both detectors settle on it.
    """
    if output.drive is PilotDrive.ZERO:
        return 0.0, 0.0
    if output.drive is PilotDrive.STEADY_NEGATIVE or (
        output.drive is PilotDrive.PWM and output.duty_permille == 0
    ):
        v = pilot_node_v(-SUPPLY_V, vehicle)
        return v, v
    high = pilot_node_v(SUPPLY_V, vehicle)
    if output.pwm_running:
        return high, pilot_node_v(-SUPPLY_V, vehicle)
    return high, high


def rig_state_letter(high_v: float) -> str:
    """The letter a vehicle-side tester shows for a high plateau (mid-band thresholds)."""
    for threshold, letter in ((10.5, "A"), (7.5, "B"), (4.5, "C"), (1.5, "D"), (-1.5, "E")):
        if high_v >= threshold:
            return letter
    return "F"
