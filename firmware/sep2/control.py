"""2030.5 DER controls: DERControlBase, DefaultDERControl, DERControl and DERControlList.

DERControlBase carries the IEEE 1547 functions the profile publishes: connect/energize, fixed
power factor, fixed var, fixed W (dispatch, hundredths of a percent of setMaxW), frequency droop,
max W limit, the curve-based modes and the ride-through curves (as DERCurve links), and rampTms.
opModTargetW and opModTargetVar are not used by the profile and are refused as unknown.
Enter-Service settings and opModEnergize (permit service) live in DefaultDERControl.
"""

# ruff: noqa: RUF009  # opt() and many() return dataclasses.field(...) specifiers

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from firmware.sep2.base import RandomizableEvent, SubscribableIdentifiedObject, SubscribableList
from firmware.sep2.fields import (
    BOOL,
    HEX32,
    INT16,
    PERCENT,
    SIGNED_PERCENT,
    UINT16,
    UINT32,
    many,
    opt,
    req,
)
from firmware.sep2.model import Sep2Model
from firmware.sep2.values import FixedVar, Link, PowerFactorWithExcitation

DURATION_INDEFINITE_S = 4_294_967_295  # the profile's "until further notice"


@dataclass(frozen=True, slots=True, kw_only=True)
class FreqDroop(Sep2Model):
    """FreqDroopType: dead bands in mHz, droop in thousandths, open-loop time in 1/100 s."""

    db_of: int = field(metadata=req("dBOF", UINT32))
    db_uf: int = field(metadata=req("dBUF", UINT32))
    k_of: int = field(metadata=req("kOF", UINT16))
    k_uf: int = field(metadata=req("kUF", UINT16))
    open_loop_tms: int = field(metadata=req("openLoopTms", UINT16))


@dataclass(frozen=True, slots=True, kw_only=True)
class DERControlBase(Sep2Model):
    """DERControlBase: the control modes; curve-based ones are links to DERCurves."""

    op_mod_connect: bool | None = opt("opModConnect", BOOL)
    op_mod_energize: bool | None = opt("opModEnergize", BOOL)
    op_mod_fixed_pf_absorb_w: PowerFactorWithExcitation | None = opt(
        "opModFixedPFAbsorbW", PowerFactorWithExcitation
    )
    op_mod_fixed_pf_inject_w: PowerFactorWithExcitation | None = opt(
        "opModFixedPFInjectW", PowerFactorWithExcitation
    )
    op_mod_fixed_var: FixedVar | None = opt("opModFixedVar", FixedVar)
    op_mod_fixed_w: int | None = opt("opModFixedW", SIGNED_PERCENT)
    op_mod_freq_droop: FreqDroop | None = opt("opModFreqDroop", FreqDroop)
    op_mod_freq_watt: Link | None = opt("opModFreqWatt", Link)
    op_mod_hfrt_may_trip: Link | None = opt("opModHFRTMayTrip", Link)
    op_mod_hfrt_must_trip: Link | None = opt("opModHFRTMustTrip", Link)
    op_mod_hvrt_may_trip: Link | None = opt("opModHVRTMayTrip", Link)
    op_mod_hvrt_momentary_cessation: Link | None = opt("opModHVRTMomentaryCessation", Link)
    op_mod_hvrt_must_trip: Link | None = opt("opModHVRTMustTrip", Link)
    op_mod_lfrt_may_trip: Link | None = opt("opModLFRTMayTrip", Link)
    op_mod_lfrt_must_trip: Link | None = opt("opModLFRTMustTrip", Link)
    op_mod_lvrt_may_trip: Link | None = opt("opModLVRTMayTrip", Link)
    op_mod_lvrt_momentary_cessation: Link | None = opt("opModLVRTMomentaryCessation", Link)
    op_mod_lvrt_must_trip: Link | None = opt("opModLVRTMustTrip", Link)
    op_mod_max_lim_w: int | None = opt("opModMaxLimW", PERCENT)
    op_mod_volt_var: Link | None = opt("opModVoltVar", Link)
    op_mod_volt_watt: Link | None = opt("opModVoltWatt", Link)
    op_mod_watt_pf: Link | None = opt("opModWattPF", Link)
    op_mod_watt_var: Link | None = opt("opModWattVar", Link)
    ramp_tms: int | None = opt("rampTms", UINT16)


@dataclass(frozen=True, slots=True, kw_only=True)
class DefaultDERControl(SubscribableIdentifiedObject):
    """DefaultDERControl: in force when no DERControl is; carries Enter-Service settings."""

    TAG: ClassVar[str] = "DefaultDERControl"

    der_control_base: DERControlBase = field(metadata=req("DERControlBase", DERControlBase))
    set_es_delay: int | None = opt("setESDelay", UINT32)
    set_es_high_freq: int | None = opt("setESHighFreq", UINT16)
    set_es_high_volt: int | None = opt("setESHighVolt", INT16)
    set_es_low_freq: int | None = opt("setESLowFreq", UINT16)
    set_es_low_volt: int | None = opt("setESLowVolt", INT16)
    set_es_ramp_tms: int | None = opt("setESRampTms", UINT32)
    set_es_random_delay: int | None = opt("setESRandomDelay", UINT32)
    set_grad_w: int | None = opt("setGradW", UINT16)
    set_soft_grad_w: int | None = opt("setSoftGradW", UINT16)


@dataclass(frozen=True, slots=True, kw_only=True)
class DERControl(RandomizableEvent):
    """DERControl: one operating mode per control in this profile, start now, indefinite."""

    TAG: ClassVar[str] = "DERControl"

    der_control_base: DERControlBase = field(metadata=req("DERControlBase", DERControlBase))
    device_category: int | None = opt("deviceCategory", HEX32)


@dataclass(frozen=True, slots=True, kw_only=True)
class DERControlList(SubscribableList):
    """DERControlList (the schema gives it no pollRate)."""

    TAG: ClassVar[str] = "DERControlList"

    der_controls: tuple[DERControl, ...] = many("DERControl", DERControl)
