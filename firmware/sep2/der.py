"""2030.5 DER resources: DER, DERList, DERCapability (ratings) and DERSettings (limits).

DERSettings under SelfDevice are the site limits; under the PEV's EndDevice they are the PEV's
own, site-adjusted settings. The profile's nominal voltage is ``setVRef``, never ``setVNom``:
the site limits never carry setVNom, and a vehicle's setVNom (schema-valid) is kept but judged by
nothing (docs/v2g-ac-profile.md, "XML hardening"). DERAvailability and DERStatus live in
``firmware.sep2.der_status``.
"""

# ruff: noqa: RUF009  # opt() and many() return dataclasses.field(...) specifiers

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from firmware.sep2.base import List, Resource, SubscribableResource
from firmware.sep2.fields import HEX32, INT16, TIME, UINT8, UINT16, UINT32, many, opt, req
from firmware.sep2.values import (
    ActivePower,
    AmpereHour,
    ApparentPower,
    CurrentRMS,
    Link,
    ListLink,
    PowerFactor,
    ReactivePower,
    ReactiveSusceptance,
    VoltageRMS,
    WattHour,
)

DER_TYPE_PEV = 81
DER_TYPE_EVSE = 82


@dataclass(frozen=True, slots=True, kw_only=True)
class DER(SubscribableResource):
    """DER: links to one DER's capability, settings, availability and status."""

    TAG: ClassVar[str] = "DER"

    associated_der_program_list_link: ListLink | None = opt(
        "AssociatedDERProgramListLink", ListLink
    )
    associated_usage_point_link: Link | None = opt("AssociatedUsagePointLink", Link)
    current_der_program_link: Link | None = opt("CurrentDERProgramLink", Link)
    der_availability_link: Link | None = opt("DERAvailabilityLink", Link)
    der_capability_link: Link | None = opt("DERCapabilityLink", Link)
    der_settings_link: Link | None = opt("DERSettingsLink", Link)
    der_status_link: Link | None = opt("DERStatusLink", Link)


@dataclass(frozen=True, slots=True, kw_only=True)
class DERList(List):
    """DERList."""

    TAG: ClassVar[str] = "DERList"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    ders: tuple[DER, ...] = many("DER", DER)


@dataclass(frozen=True, slots=True, kw_only=True)
class DERCapability(Resource):
    """DERCapability: type (81 PEV, 82 EVSE), supported modes and nameplate ratings."""

    TAG: ClassVar[str] = "DERCapability"

    modes_supported: int = field(metadata=req("modesSupported", HEX32))
    rtg_abnormal_category: int | None = opt("rtgAbnormalCategory", UINT8)
    rtg_max_a: CurrentRMS | None = opt("rtgMaxA", CurrentRMS)
    rtg_max_ah: AmpereHour | None = opt("rtgMaxAh", AmpereHour)
    rtg_max_charge_rate_va: ApparentPower | None = opt("rtgMaxChargeRateVA", ApparentPower)
    rtg_max_charge_rate_w: ActivePower | None = opt("rtgMaxChargeRateW", ActivePower)
    rtg_max_discharge_rate_va: ApparentPower | None = opt("rtgMaxDischargeRateVA", ApparentPower)
    rtg_max_discharge_rate_w: ActivePower | None = opt("rtgMaxDischargeRateW", ActivePower)
    rtg_max_v: VoltageRMS | None = opt("rtgMaxV", VoltageRMS)
    rtg_max_va: ApparentPower | None = opt("rtgMaxVA", ApparentPower)
    rtg_max_var: ReactivePower | None = opt("rtgMaxVar", ReactivePower)
    rtg_max_var_neg: ReactivePower | None = opt("rtgMaxVarNeg", ReactivePower)
    rtg_max_w: ActivePower = field(metadata=req("rtgMaxW", ActivePower))
    rtg_max_wh: WattHour | None = opt("rtgMaxWh", WattHour)
    rtg_min_pf_over_excited: PowerFactor | None = opt("rtgMinPFOverExcited", PowerFactor)
    rtg_min_pf_under_excited: PowerFactor | None = opt("rtgMinPFUnderExcited", PowerFactor)
    rtg_min_v: VoltageRMS | None = opt("rtgMinV", VoltageRMS)
    rtg_normal_category: int | None = opt("rtgNormalCategory", UINT8)
    rtg_over_excited_pf: PowerFactor | None = opt("rtgOverExcitedPF", PowerFactor)
    rtg_over_excited_w: ActivePower | None = opt("rtgOverExcitedW", ActivePower)
    rtg_reactive_susceptance: ReactiveSusceptance | None = opt(
        "rtgReactiveSusceptance", ReactiveSusceptance
    )
    rtg_under_excited_pf: PowerFactor | None = opt("rtgUnderExcitedPF", PowerFactor)
    rtg_under_excited_w: ActivePower | None = opt("rtgUnderExcitedW", ActivePower)
    rtg_v_nom: VoltageRMS | None = opt("rtgVNom", VoltageRMS)
    der_type: int = field(metadata=req("type", UINT8))


@dataclass(frozen=True, slots=True, kw_only=True)
class DERSettings(SubscribableResource):
    """DERSettings: setGradW, setMaxW and updatedTime required; setES* are Enter-Service."""

    TAG: ClassVar[str] = "DERSettings"

    modes_enabled: int | None = opt("modesEnabled", HEX32)
    set_es_delay: int | None = opt("setESDelay", UINT32)
    set_es_high_freq: int | None = opt("setESHighFreq", UINT16)
    set_es_high_volt: int | None = opt("setESHighVolt", INT16)
    set_es_low_freq: int | None = opt("setESLowFreq", UINT16)
    set_es_low_volt: int | None = opt("setESLowVolt", INT16)
    set_es_ramp_tms: int | None = opt("setESRampTms", UINT32)
    set_es_random_delay: int | None = opt("setESRandomDelay", UINT32)
    set_grad_w: int = field(metadata=req("setGradW", UINT16))
    set_max_a: CurrentRMS | None = opt("setMaxA", CurrentRMS)
    set_max_ah: AmpereHour | None = opt("setMaxAh", AmpereHour)
    set_max_charge_rate_va: ApparentPower | None = opt("setMaxChargeRateVA", ApparentPower)
    set_max_charge_rate_w: ActivePower | None = opt("setMaxChargeRateW", ActivePower)
    set_max_discharge_rate_va: ApparentPower | None = opt("setMaxDischargeRateVA", ApparentPower)
    set_max_discharge_rate_w: ActivePower | None = opt("setMaxDischargeRateW", ActivePower)
    set_max_v: VoltageRMS | None = opt("setMaxV", VoltageRMS)
    set_max_va: ApparentPower | None = opt("setMaxVA", ApparentPower)
    set_max_var: ReactivePower | None = opt("setMaxVar", ReactivePower)
    set_max_var_neg: ReactivePower | None = opt("setMaxVarNeg", ReactivePower)
    set_max_w: ActivePower = field(metadata=req("setMaxW", ActivePower))
    set_max_wh: WattHour | None = opt("setMaxWh", WattHour)
    set_min_pf_over_excited: PowerFactor | None = opt("setMinPFOverExcited", PowerFactor)
    set_min_pf_under_excited: PowerFactor | None = opt("setMinPFUnderExcited", PowerFactor)
    set_min_v: VoltageRMS | None = opt("setMinV", VoltageRMS)
    set_soft_grad_w: int | None = opt("setSoftGradW", UINT16)
    set_v_nom: VoltageRMS | None = opt("setVNom", VoltageRMS)
    set_v_ref: VoltageRMS | None = opt("setVRef", VoltageRMS)
    set_v_ref_ofs: VoltageRMS | None = opt("setVRefOfs", VoltageRMS)
    updated_time: int = field(metadata=req("updatedTime", TIME))
