"""2030.5 DER state the PEV reports: DERAvailability and DERStatus (the 1 s heartbeat).

Each DERStatus element other than alarmStatus is a ``{dateTime, value}`` pair; the value's type
differs (UInt8, HexBinary8 bitmap, String6, PerCent), hence one small class per shape.
inverterStatus 2 means sleeping (profile §4.8.3).
"""

# ruff: noqa: RUF009  # opt() and many() return dataclasses.field(...) specifiers

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from firmware.sep2.base import SubscribableResource
from firmware.sep2.fields import HEX8, HEX32, PERCENT, STR6, TIME, UINT8, UINT32, opt, req
from firmware.sep2.model import Sep2Model
from firmware.sep2.values import ActivePower, ReactivePower

INVERTER_STATUS_SLEEPING = 2
INVERTER_STATUS_STARTING = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class DERAvailability(SubscribableResource):
    """DERAvailability: reserve the PEV can offer, and for how long."""

    TAG: ClassVar[str] = "DERAvailability"

    availability_duration: int | None = opt("availabilityDuration", UINT32)
    max_charge_duration: int | None = opt("maxChargeDuration", UINT32)
    reading_time: int = field(metadata=req("readingTime", TIME))
    reserve_charge_percent: int | None = opt("reserveChargePercent", PERCENT)
    reserve_percent: int | None = opt("reservePercent", PERCENT)
    stat_var_avail: ReactivePower | None = opt("statVarAvail", ReactivePower)
    stat_w_avail: ActivePower | None = opt("statWAvail", ActivePower)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusValue(Sep2Model):
    """InverterStatusType, OperationalModeStatusType, …: a UInt8 state and when it applied."""

    date_time: int = field(metadata=req("dateTime", TIME))
    value: int = field(metadata=req("value", UINT8))


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectStatus(Sep2Model):
    """ConnectStatusType: bitmap 0 connected, 1 available, 2 operating, 3 test, 4 fault."""

    date_time: int = field(metadata=req("dateTime", TIME))
    value: int = field(metadata=req("value", HEX8))


@dataclass(frozen=True, slots=True, kw_only=True)
class ManufacturerStatus(Sep2Model):
    """ManufacturerStatusType: a String6 code."""

    date_time: int = field(metadata=req("dateTime", TIME))
    value: str = field(metadata=req("value", STR6))


@dataclass(frozen=True, slots=True, kw_only=True)
class StateOfChargeStatus(Sep2Model):
    """StateOfChargeStatusType: hundredths of a percent."""

    date_time: int = field(metadata=req("dateTime", TIME))
    value: int = field(metadata=req("value", PERCENT))


@dataclass(frozen=True, slots=True, kw_only=True)
class DERStatus(SubscribableResource):
    """DERStatus: the PEV's heartbeat; readingTime required."""

    TAG: ClassVar[str] = "DERStatus"

    alarm_status: int | None = opt("alarmStatus", HEX32)
    gen_connect_status: ConnectStatus | None = opt("genConnectStatus", ConnectStatus)
    inverter_status: StatusValue | None = opt("inverterStatus", StatusValue)
    local_control_mode_status: StatusValue | None = opt("localControlModeStatus", StatusValue)
    manufacturer_status: ManufacturerStatus | None = opt("manufacturerStatus", ManufacturerStatus)
    operational_mode_status: StatusValue | None = opt("operationalModeStatus", StatusValue)
    reading_time: int = field(metadata=req("readingTime", TIME))
    state_of_charge_status: StateOfChargeStatus | None = opt(
        "stateOfChargeStatus", StateOfChargeStatus
    )
    storage_mode_status: StatusValue | None = opt("storageModeStatus", StatusValue)
    stor_connect_status: ConnectStatus | None = opt("storConnectStatus", ConnectStatus)
