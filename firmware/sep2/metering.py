"""2030.5 metering mirrors: MirrorUsagePoint(List), MirrorMeterReading, ReadingType, Reading.

Enough for the PEV to mirror instantaneous W, var, V and Hz (uom 38, 63, 29, 33) with roleFlags
"is PEV". Mirror reading sets (interval data), consumption blocks, TOU tiers and gas/water
ReadingType elements are outside the model and refused as unknown.
"""

# ruff: noqa: RUF009  # opt() and many() return dataclasses.field(...) specifiers

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from firmware.sep2.base import IdentifiedObject, List, Resource, SubscribableResource
from firmware.sep2.fields import (
    HEX16,
    INT48,
    LFDI,
    MULTIPLIER,
    TIME,
    UINT8,
    UINT32,
    many,
    opt,
    req,
)
from firmware.sep2.values import DateTimeInterval

ROLE_IS_MIRROR = 1 << 0
ROLE_IS_PEV = 1 << 2
ROLE_IS_DER = 1 << 3
UOM_W = 38
UOM_VAR = 63
UOM_V = 29
UOM_HZ = 33


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingType(Resource):
    """ReadingType: what a reading measures (uom, power-of-ten multiplier, phase, …)."""

    accumulation_behaviour: int | None = opt("accumulationBehaviour", UINT8)
    commodity: int | None = opt("commodity", UINT8)
    data_qualifier: int | None = opt("dataQualifier", UINT8)
    flow_direction: int | None = opt("flowDirection", UINT8)
    interval_length: int | None = opt("intervalLength", UINT32)
    kind: int | None = opt("kind", UINT8)
    phase: int | None = opt("phase", UINT8)
    power_of_ten_multiplier: int | None = opt("powerOfTenMultiplier", MULTIPLIER)
    uom: int | None = opt("uom", UINT8)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading(SubscribableResource):
    """Reading: one value in the units of its ReadingType."""

    quality_flags: int | None = opt("qualityFlags", HEX16)
    time_period: DateTimeInterval | None = opt("timePeriod", DateTimeInterval)
    value: int | None = opt("value", INT48)


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorMeterReading(IdentifiedObject):
    """MirrorMeterReading: the PEV's latest reading of one quantity."""

    TAG: ClassVar[str] = "MirrorMeterReading"

    last_update_time: int | None = opt("lastUpdateTime", TIME)
    next_update_time: int | None = opt("nextUpdateTime", TIME)
    reading: Reading | None = opt("Reading", Reading)
    reading_type: ReadingType | None = opt("ReadingType", ReadingType)


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorUsagePoint(IdentifiedObject):
    """MirrorUsagePoint: a usage point the PEV mirrors onto the EVSE."""

    TAG: ClassVar[str] = "MirrorUsagePoint"

    role_flags: int = field(metadata=req("roleFlags", HEX16))
    service_category_kind: int = field(metadata=req("serviceCategoryKind", UINT8))
    status: int = field(metadata=req("status", UINT8))
    device_lfdi: str = field(metadata=req("deviceLFDI", LFDI))
    mirror_meter_readings: tuple[MirrorMeterReading, ...] = many(
        "MirrorMeterReading", MirrorMeterReading
    )
    post_rate: int | None = opt("postRate", UINT32)


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorUsagePointList(List):
    """MirrorUsagePointList."""

    TAG: ClassVar[str] = "MirrorUsagePointList"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    mirror_usage_points: tuple[MirrorUsagePoint, ...] = many("MirrorUsagePoint", MirrorUsagePoint)
