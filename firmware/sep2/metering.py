"""2030.5 metering mirrors: MirrorUsagePoint(List), MirrorMeterReading, ReadingType, Reading.

The PEV mirrors instantaneous W, var, V and Hz (uom 38, 63, 29, 33) with roleFlags "is PEV".
Every element the schema allows is modelled, so a schema-valid mirror is never refused: mirror
reading sets (interval data), consumption blocks, TOU tiers, local IDs and the gas/tariff
details of a ReadingType are parsed and bounded (the parser's element cap bounds how many);
what the profile does not use is dropped before the store keeps a reading
(``MirrorMeterReading.latest_only``).
"""

# ruff: noqa: RUF009  # opt() and many() return dataclasses.field(...) specifiers

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Self

from firmware.sep2.base import IdentifiedObject, List, Resource, SubscribableResource
from firmware.sep2.fields import (
    BOOL,
    HEX16,
    INT48,
    LFDI,
    MULTIPLIER,
    TIME,
    UINT8,
    UINT32,
    UINT48,
    many,
    opt,
    req,
)
from firmware.sep2.values import DateTimeInterval, UnitValue

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
    calorific_value: UnitValue | None = opt("calorificValue", UnitValue)
    commodity: int | None = opt("commodity", UINT8)
    conversion_factor: UnitValue | None = opt("conversionFactor", UnitValue)
    data_qualifier: int | None = opt("dataQualifier", UINT8)
    flow_direction: int | None = opt("flowDirection", UINT8)
    interval_length: int | None = opt("intervalLength", UINT32)
    kind: int | None = opt("kind", UINT8)
    max_number_of_intervals: int | None = opt("maxNumberOfIntervals", UINT8)
    number_of_consumption_blocks: int | None = opt("numberOfConsumptionBlocks", UINT8)
    number_of_tou_tiers: int | None = opt("numberOfTouTiers", UINT8)
    phase: int | None = opt("phase", UINT8)
    power_of_ten_multiplier: int | None = opt("powerOfTenMultiplier", MULTIPLIER)
    sub_interval_length: int | None = opt("subIntervalLength", UINT32)
    supply_limit: int | None = opt("supplyLimit", UINT48)
    tiered_consumption_blocks: bool | None = opt("tieredConsumptionBlocks", BOOL)
    uom: int | None = opt("uom", UINT8)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading(SubscribableResource):
    """Reading: one value in the units of its ReadingType (ReadingBase's elements, then localID)."""

    consumption_block: int | None = opt("consumptionBlock", UINT8)
    quality_flags: int | None = opt("qualityFlags", HEX16)
    time_period: DateTimeInterval | None = opt("timePeriod", DateTimeInterval)
    tou_tier: int | None = opt("touTier", UINT8)
    value: int | None = opt("value", INT48)
    local_id: int | None = opt("localID", HEX16)


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorReadingSet(IdentifiedObject):
    """MirrorReadingSet: interval readings over ``time_period`` (ReadingSetBase, then Readings)."""

    time_period: DateTimeInterval = field(metadata=req("timePeriod", DateTimeInterval))
    readings: tuple[Reading, ...] = many("Reading", Reading)


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorMeterReading(IdentifiedObject):
    """MirrorMeterReading: the PEV's latest reading of one quantity."""

    TAG: ClassVar[str] = "MirrorMeterReading"

    last_update_time: int | None = opt("lastUpdateTime", TIME)
    mirror_reading_sets: tuple[MirrorReadingSet, ...] = many("MirrorReadingSet", MirrorReadingSet)
    next_update_time: int | None = opt("nextUpdateTime", TIME)
    reading: Reading | None = opt("Reading", Reading)
    reading_type: ReadingType | None = opt("ReadingType", ReadingType)

    def latest_only(self) -> Self:
        """Without the interval data: the profile mirrors instantaneous values only, and a
        vehicle's reading sets would otherwise grow the store by up to a body per reading."""
        return replace(self, mirror_reading_sets=()) if self.mirror_reading_sets else self


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

    def latest_only(self) -> Self:
        """Each mirrored reading without its interval data (see MirrorMeterReading)."""
        readings = tuple(reading.latest_only() for reading in self.mirror_meter_readings)
        return replace(self, mirror_meter_readings=readings)


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorUsagePointList(List):
    """MirrorUsagePointList."""

    TAG: ClassVar[str] = "MirrorUsagePointList"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    mirror_usage_points: tuple[MirrorUsagePoint, ...] = many("MirrorUsagePoint", MirrorUsagePoint)
