"""2030.5 curves: CurveData, DERCurve and DERCurveList (volt-var, ride-through, …).

A DERCurve holds 1 to 10 points; x and y are scaled by 10^xMultiplier and 10^yMultiplier, and
yRefType says what a percentage y refers to (1 %setMaxW, 2 %setMaxVar, 3 %statVarAvail, …).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from firmware.sep2.base import IdentifiedObject, List
from firmware.sep2.fields import (
    BOOL,
    INT32,
    MULTIPLIER,
    PERCENT,
    TIME,
    UINT8,
    UINT16,
    UINT32,
    many,
    opt,
    req,
)
from firmware.sep2.model import Sep2Model

MAX_CURVE_POINTS = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class CurveData(Sep2Model):
    """CurveData: one point; ``excitation`` only when y is a power factor."""

    excitation: bool | None = opt("excitation", BOOL)
    xvalue: int = field(metadata=req("xvalue", INT32))
    yvalue: int = field(metadata=req("yvalue", INT32))


@dataclass(frozen=True, slots=True, kw_only=True)
class DERCurve(IdentifiedObject):
    """DERCurve: curveType 0 freq-watt … 11 volt-var, 12 volt-watt, 13 watt-PF, 14 watt-var."""

    TAG: ClassVar[str] = "DERCurve"

    autonomous_v_ref_enable: bool | None = opt("autonomousVRefEnable", BOOL)
    autonomous_v_ref_time_constant: int | None = opt("autonomousVRefTimeConstant", UINT32)
    creation_time: int = field(metadata=req("creationTime", TIME))
    curve_data: tuple[CurveData, ...] = many(
        "CurveData", CurveData, required=True, max_occurs=MAX_CURVE_POINTS
    )
    curve_type: int = field(metadata=req("curveType", UINT8))
    open_loop_tms: int | None = opt("openLoopTms", UINT16)
    ramp_dec_tms: int | None = opt("rampDecTms", UINT16)
    ramp_inc_tms: int | None = opt("rampIncTms", UINT16)
    ramp_pt1_tms: int | None = opt("rampPT1Tms", UINT16)
    v_ref: int | None = opt("vRef", PERCENT)
    x_multiplier: int = field(metadata=req("xMultiplier", MULTIPLIER))
    y_multiplier: int = field(metadata=req("yMultiplier", MULTIPLIER))
    y_ref_type: int = field(metadata=req("yRefType", UINT8))


@dataclass(frozen=True, slots=True, kw_only=True)
class DERCurveList(List):
    """DERCurveList (the schema gives it no pollRate)."""

    TAG: ClassVar[str] = "DERCurveList"

    der_curves: tuple[DERCurve, ...] = many("DERCurve", DERCurve)
