"""2030.5 value types: links, power quantities, power factors, intervals, event status.

These are the small complex types that other resources embed; none is a document on its own.
Every quantity is the schema's ``{multiplier, value}`` pair (value x 10^multiplier in the unit),
kept as integers: converting to watts is the caller's business, so nothing is rounded here.
Field order is the schema's sequence order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware.sep2.fields import (
    BOOL,
    INT16,
    INT32,
    MULTIPLIER,
    SIGNED_PERCENT,
    STR32,
    STR192,
    TIME,
    UINT8,
    UINT16,
    UINT32,
    UINT48,
    URI,
    opt,
    req,
)
from firmware.sep2.model import Sep2Model


@dataclass(frozen=True, slots=True, kw_only=True)
class Link(Sep2Model):
    """Link: a reference to another resource."""

    href: str = field(metadata=req("href", URI, attr=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class ListLink(Sep2Model):
    """ListLink: a reference to a List, with the number of items in it."""

    href: str = field(metadata=req("href", URI, attr=True))
    all: int | None = opt("all", UINT32, attr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivePower(Sep2Model):
    """ActivePower: value x 10^multiplier W (Int16 value)."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    value: int = field(metadata=req("value", INT16))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactivePower(Sep2Model):
    """ReactivePower: value x 10^multiplier var (Int16 value)."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    value: int = field(metadata=req("value", INT16))


@dataclass(frozen=True, slots=True, kw_only=True)
class ApparentPower(Sep2Model):
    """ApparentPower: value x 10^multiplier VA (UInt16 value)."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    value: int = field(metadata=req("value", UINT16))


@dataclass(frozen=True, slots=True, kw_only=True)
class VoltageRMS(Sep2Model):
    """VoltageRMS: value x 10^multiplier V (UInt16 value)."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    value: int = field(metadata=req("value", UINT16))


@dataclass(frozen=True, slots=True, kw_only=True)
class CurrentRMS(Sep2Model):
    """CurrentRMS: value x 10^multiplier A (UInt16 value)."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    value: int = field(metadata=req("value", UINT16))


@dataclass(frozen=True, slots=True, kw_only=True)
class AmpereHour(Sep2Model):
    """AmpereHour: value x 10^multiplier Ah (UInt16 value)."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    value: int = field(metadata=req("value", UINT16))


@dataclass(frozen=True, slots=True, kw_only=True)
class WattHour(Sep2Model):
    """WattHour: value x 10^multiplier Wh (UInt16 value)."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    value: int = field(metadata=req("value", UINT16))


@dataclass(frozen=True, slots=True, kw_only=True)
class RealEnergy(Sep2Model):
    """RealEnergy: value x 10^multiplier Wh (UInt48 value)."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    value: int = field(metadata=req("value", UINT48))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactiveSusceptance(Sep2Model):
    """ReactiveSusceptance: value x 10^multiplier S (UInt16 value)."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    value: int = field(metadata=req("value", UINT16))


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerFactor(Sep2Model):
    """PowerFactor: displacement x 10^multiplier (note: displacement comes first)."""

    displacement: int = field(metadata=req("displacement", UINT16))
    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerFactorWithExcitation(Sep2Model):
    """PowerFactorWithExcitation: excitation true = absorbing vars (under-excited)."""

    displacement: int = field(metadata=req("displacement", UINT16))
    excitation: bool = field(metadata=req("excitation", BOOL))
    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitValue(Sep2Model):
    """UnitValueType: value x 10^multiplier in ``unit`` (a UomType code); Int32 value."""

    multiplier: int = field(metadata=req("multiplier", MULTIPLIER))
    unit: int = field(metadata=req("unit", UINT8))
    value: int = field(metadata=req("value", INT32))


@dataclass(frozen=True, slots=True, kw_only=True)
class GPSLocation(Sep2Model):
    """GPSLocationType: WGS 84 latitude and longitude in decimal degrees, as String32 text."""

    lat: str = field(metadata=req("lat", STR32))
    lon: str = field(metadata=req("lon", STR32))


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedVar(Sep2Model):
    """FixedVar: a signed var setpoint in hundredths of a percent of ``ref_type``'s quantity."""

    ref_type: int = field(metadata=req("refType", UINT8))
    value: int = field(metadata=req("value", SIGNED_PERCENT))


@dataclass(frozen=True, slots=True, kw_only=True)
class DateTimeInterval(Sep2Model):
    """DateTimeInterval: ``duration`` seconds from ``start`` (TimeType)."""

    duration: int = field(metadata=req("duration", UINT32))
    start: int = field(metadata=req("start", TIME))


@dataclass(frozen=True, slots=True, kw_only=True)
class EventStatus(Sep2Model):
    """EventStatus: 0 scheduled, 1 active, 2 cancelled, 3 cancelled randomized, 4 superseded."""

    current_status: int = field(metadata=req("currentStatus", UINT8))
    date_time: int = field(metadata=req("dateTime", TIME))
    potentially_superseded: bool = field(metadata=req("potentiallySuperseded", BOOL))
    potentially_superseded_time: int | None = opt("potentiallySupersededTime", TIME)
    reason: str | None = opt("reason", STR192)
