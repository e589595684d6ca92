"""The OCPP payloads the station sends, as they go on the wire (camelCase JSON objects), built
from plain values: no I/O, no clock (times are passed in).

docs/ocpp.md, "What is sent when", maps each one to what the daemon saw. Both versions share
these shapes except where marked: 2.1 adds the bidirectional energy transfer ("AC_BPT") and
the V2X charging parameters of NotifyEVChargingNeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVSE_ID = 1  # one EVSE, one connector (J1772)
CONNECTOR_ID = 1
TECH_INFO_CHARS = 500  # EventDataType.techInfo
ACTUAL_VALUE_CHARS = 2500
GATE_COMPONENT = "J3072Gate"  # our component of the device model: the J3072 gatekeeper
DER_COMPONENT = "DERControl"  # the 2030.5 controls relayed to the vehicle
VEHICLE_COMPONENT = "V2XVehicle"  # what the vehicle reported of itself over 2030.5


def stamp(wall_s: float) -> str:
    """OCPP's dateTime: UTC, ISO 8601, milliseconds, Z."""
    text = datetime.fromtimestamp(wall_s, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of the EVSE's meter (energy registers in Wh, power + import / - export in
    OCPP's sense is split into the two measurands) and the vehicle's state of charge."""

    wall_s: float
    import_wh: float | None  # None: the meter has not read it yet (not sent)
    export_wh: float | None
    power_w: float | None  # + from the vehicle to the grid (discharge), - into the vehicle
    soc_pct: float | None = None


def meter_value(reading: Reading, context: str) -> dict[str, Any]:
    def sampled(value: float, measurand: str, unit: str) -> dict[str, Any]:
        return {"value": round(value, 1), "measurand": measurand, "context": context,
                "unitOfMeasure": {"unit": unit}}  # fmt: skip

    values = [
        sampled(wh, measurand, "Wh")
        for wh, measurand in ((reading.import_wh, "Energy.Active.Import.Register"),
                              (reading.export_wh, "Energy.Active.Export.Register"))
        if wh is not None
    ]  # fmt: skip
    if reading.power_w is not None:
        values += [
            sampled(max(-reading.power_w, 0.0), "Power.Active.Import", "W"),
            sampled(max(reading.power_w, 0.0), "Power.Active.Export", "W"),
        ]
    if reading.soc_pct is not None:
        values.append(sampled(reading.soc_pct, "SoC", "Percent"))
    return {"timestamp": stamp(reading.wall_s), "sampledValue": values}


def boot_notification(model: str, vendor: str, firmware: str, reason: str) -> dict[str, Any]:
    station = {"model": model[:20], "vendorName": vendor[:50], "firmwareVersion": firmware[:50]}
    return {"chargingStation": station, "reason": reason}


def status_notification(wall_s: float, status: str) -> dict[str, Any]:
    return {"timestamp": stamp(wall_s), "connectorStatus": status, "evseId": EVSE_ID,
            "connectorId": CONNECTOR_ID}  # fmt: skip


@dataclass(frozen=True, slots=True)
class TxEvent:
    event_type: str  # Started, Updated, Ended
    trigger: str  # TriggerReasonEnumType
    seq_no: int
    transaction_id: str
    charging_state: str | None = None
    stopped_reason: str | None = None
    offline: bool = False


def transaction_event(event: TxEvent, reading: Reading, context: str) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": event.transaction_id}
    if event.charging_state is not None:
        info["chargingState"] = event.charging_state
    if event.stopped_reason is not None:
        info["stoppedReason"] = event.stopped_reason
    payload: dict[str, Any] = {
        "eventType": event.event_type,
        "timestamp": stamp(reading.wall_s),
        "triggerReason": event.trigger,
        "seqNo": event.seq_no,
        "transactionInfo": info,
    }
    sampled = meter_value(reading, context)
    if sampled["sampledValue"]:  # the schema wants at least one
        payload["meterValue"] = [sampled]
    if event.offline:
        payload["offline"] = True
    if event.event_type == "Started":
        payload["evse"] = {"id": EVSE_ID, "connectorId": CONNECTOR_ID}
    return payload


@dataclass(frozen=True, slots=True)
class Event:
    """One NotifyEvent entry: what changed, on which component and variable."""

    event_id: int
    component: str
    variable: str
    actual_value: str
    tech_code: str | None = None
    tech_info: str | None = None
    transaction_id: str | None = None


def notify_event(wall_s: float, seq_no: int, event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {
        "eventId": event.event_id,
        "timestamp": stamp(wall_s),
        "trigger": "Delta",
        "actualValue": event.actual_value[:ACTUAL_VALUE_CHARS],
        "eventNotificationType": "CustomMonitor",
        "component": {"name": event.component, "evse": {"id": EVSE_ID}},
        "variable": {"name": event.variable},
    }
    if event.tech_code is not None:
        data["techCode"] = event.tech_code[:50]
    if event.tech_info is not None:
        data["techInfo"] = event.tech_info[:TECH_INFO_CHARS]
    if event.transaction_id is not None:
        data["transactionId"] = event.transaction_id
    return {"generatedAt": stamp(wall_s), "seqNo": seq_no, "eventData": [data]}


@dataclass(frozen=True, slots=True)
class ChargingNeeds:
    """What the vehicle asked for over 2030.5 (PEVInfo, DERAvailability), in SI units."""

    energy_request_wh: float
    departure_s: int  # PEVInfo.timeChargeIsNeeded, wall seconds
    max_charge_w: float
    target_soc_pct: float
    max_discharge_w: float | None  # DERAvailability.statWAvail


def ev_charging_needs(needs: ChargingNeeds, version: str, v_ref_v: int) -> dict[str, Any]:
    ac = {
        "energyAmount": round(needs.energy_request_wh),
        "evMinCurrent": 6,  # J1772: the least the PWM may offer
        "evMaxCurrent": max(6, round(needs.max_charge_w / v_ref_v)),
        "evMaxVoltage": v_ref_v,
    }
    charging: dict[str, Any] = {
        "requestedEnergyTransfer": "AC_single_phase",
        "departureTime": stamp(needs.departure_s),
        "acChargingParameters": ac,
    }
    if version == "2.1":
        charging["requestedEnergyTransfer"] = "AC_BPT"  # bidirectional
        v2x: dict[str, Any] = {
            "maxChargePower": round(needs.max_charge_w),
            "evTargetEnergyRequest": round(needs.energy_request_wh),
            "targetSoC": max(0, min(100, round(needs.target_soc_pct))),
        }
        if needs.max_discharge_w is not None:
            v2x["maxDischargePower"] = round(needs.max_discharge_w)
        charging["v2xChargingParameters"] = v2x
    return {"evseId": EVSE_ID, "chargingNeeds": charging}
