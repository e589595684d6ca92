"""The documents a simulated PEV sends, built from its profile, the site limits and ``now``.

Pure: no I/O, no clock (``now`` is TimeType seconds). Covers the PEV data of §4.6.2
(DERSettings, DeviceInformation, DERCapability, DERAvailability, PowerStatus with PEVInfo), the
heartbeat DERStatus (§4.8.1.1), DERControlResponses (§4.7.1), the Subscription, and the mirrored
metering (W, var, V, Hz). Units follow 2030.5: powers as value x 10^multiplier, percentages in
hundredths. Which requests carry them, and in which order, is ``hil.pev.client``'s business.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from firmware.sep2.der import DER_TYPE_PEV, DERCapability, DERSettings
from firmware.sep2.der_status import (
    ConnectStatus,
    DERAvailability,
    DERStatus,
    StateOfChargeStatus,
    StatusValue,
)
from firmware.sep2.device import DeviceInformation, PEVInfo, PowerStatus
from firmware.sep2.metering import (
    ROLE_IS_DER,
    ROLE_IS_MIRROR,
    ROLE_IS_PEV,
    UOM_HZ,
    UOM_V,
    UOM_VAR,
    UOM_W,
    MirrorMeterReading,
    MirrorUsagePoint,
    Reading,
    ReadingType,
)
from firmware.sep2.pubsub import ENCODING_XML, Subscription
from firmware.sep2.response import DERControlResponse
from firmware.sep2.site import active_power, watts
from firmware.sep2.values import ApparentPower, ReactivePower, RealEnergy, WattHour
from hil.pev.profiles import Profile, SettingsPolicy

# DERControlType bits (2030.5 modesSupported)
CHARGE, DISCHARGE, CONNECT, ENERGIZE = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FIXED_PF = 1 << 4 | 1 << 5  # absorbing and injecting W
FIXED_VAR, FIXED_W, FREQ_DROOP = 1 << 6, 1 << 7, 1 << 8
RIDE_THROUGH = sum(1 << bit for bit in range(10, 20))  # HFRT … LVRT may/must trip, cessation
MAX_LIM_W = 1 << 20
VOLT_VAR, VOLT_WATT, WATT_PF, WATT_VAR = 1 << 23, 1 << 24, 1 << 25, 1 << 26
ACTIVE_MODES = CHARGE | DISCHARGE | CONNECT | ENERGIZE | FIXED_W | FREQ_DROOP | RIDE_THROUGH
ACTIVE_MODES |= MAX_LIM_W | VOLT_WATT
REACTIVE_MODES = FIXED_PF | FIXED_VAR | VOLT_VAR | WATT_PF | WATT_VAR

# RoleFlagsType: the PEV mirrors itself, a PEV that is also a DER (V2G)
MIRROR_ROLE_FLAGS = ROLE_IS_MIRROR | ROLE_IS_PEV | ROLE_IS_DER
SERVICE_ELECTRICITY = 0
STATUS_ON = 1
POWER_SOURCE_MAINS, POWER_SOURCE_BATTERY, POWER_SOURCE_NONE = 1, 2, 0
BATTERY_NORMAL = 1
INVERTER_AWAKE = 0  # the brief's "awake": 0 after waking (§4.8.3)
INVERTER_SLEEPING = 2
OPERATIONAL_OFF, OPERATIONAL_MODE = 1, 2
CONNECTED, AVAILABLE = 0x01, 0x02
# KindType defines 0 (not applicable), 3, 8, 12 and 37 (power); the rest is reserved, so a
# voltage or a frequency is "not applicable" (IEC 61968-9's 54 for voltage is not 2030.5's)
KIND_POWER, KIND_VOLTAGE, KIND_FREQUENCY = 37, 0, 0
ACCUMULATION_INSTANTANEOUS = 12
FLOW_FORWARD = 1  # into the PEV
MF_DATE = 1_735_689_600  # 2025-01-01T00:00:00Z
MF_ID = 55555  # the test arc's made-up private enterprise number
SW_VERSION = "hil.pev 0.1"
GRID_HZ = 60.0


def mrid(*parts: object) -> str:
    """A stable 128-bit mRID for something the PEV names (same on every run)."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32].upper()


def scaled_u16(amount: float) -> tuple[int, int]:
    """(multiplier, value) with value in UInt16 range: ``value x 10^multiplier ≈ amount``."""
    multiplier, value = 0, round(amount)
    while value > 65535:
        multiplier += 1
        value = round(amount / 10**multiplier)
    return multiplier, value


def scaled_i16(amount: float) -> tuple[int, int]:
    power = active_power(round(amount))
    return power.multiplier, power.value


def site_max_w(site: DERSettings) -> float:
    return watts(site.set_max_w)


def der_settings(profile: Profile, site: DERSettings, now: int) -> DERSettings:
    """The PEV's settings after reading the site limits (§4.6.1-4.6.2).

    SITE_ADJUSTED caps every active-power limit at the site's setMaxW; ABOVE_SITE claims a
    setMaxW of 150 % of the site's; OTHER_V_REF a setVRef 10 % above the site's. Otherwise the
    Enter-Service settings, setGradW and setVRef are the site's. CARELESS sends no setMaxWh,
    no Enter Service delay and a 120 % high-voltage limit.
    """
    r, limit = profile.ratings, site_max_w(site)
    max_w = min(r.max_w, limit)
    if profile.settings is SettingsPolicy.ABOVE_SITE:
        max_w = max(r.max_w, limit * 3 / 2)
    four_q = r.four_quadrant
    v_ref = site.set_v_ref
    if profile.settings is SettingsPolicy.OTHER_V_REF and v_ref is not None:
        v_ref = replace(v_ref, value=round(v_ref.value * 11 / 10))
    careless = profile.settings is SettingsPolicy.CARELESS
    return DERSettings(
        set_es_delay=0 if careless else site.set_es_delay,
        set_es_high_freq=site.set_es_high_freq,
        set_es_high_volt=12000 if careless else site.set_es_high_volt,
        set_es_low_freq=site.set_es_low_freq,
        set_es_low_volt=site.set_es_low_volt,
        set_es_ramp_tms=site.set_es_ramp_tms,
        set_es_random_delay=site.set_es_random_delay,
        set_grad_w=site.set_grad_w,
        set_max_charge_rate_w=active_power(round(min(r.max_charge_w, limit))),
        set_max_discharge_rate_w=active_power(round(min(r.max_discharge_w, max_w))),
        set_max_var=_var(r.max_var) if four_q else None,
        set_max_var_neg=_var(r.max_var_neg) if four_q else None,
        set_max_w=active_power(round(max_w)),
        set_max_wh=None if careless else _wh(r.max_wh),
        set_v_ref=v_ref,
        updated_time=now,
    )


def device_information(profile: Profile, lfdi: str, now: int) -> DeviceInformation:
    """ISM in mfModel, certification in mfInfo, VIN in mfSerNum (the default mapping)."""
    return DeviceInformation(
        lfdi=lfdi,
        mf_date=MF_DATE,
        mf_hw_ver="sim-1",
        mf_id=MF_ID,
        mf_info=profile.certification,
        mf_model=profile.ism,
        mf_ser_num=profile.vin,
        primary_power=POWER_SOURCE_BATTERY,
        secondary_power=POWER_SOURCE_NONE,
        sw_act_time=now,
        sw_ver=SW_VERSION,
    )


def der_capability(profile: Profile) -> DERCapability:
    r = profile.ratings
    four_q = r.four_quadrant
    return DERCapability(
        modes_supported=ACTIVE_MODES | (REACTIVE_MODES if four_q else 0),
        rtg_abnormal_category=r.abnormal_category,
        rtg_max_charge_rate_w=active_power(r.max_charge_w),
        rtg_max_discharge_rate_w=active_power(r.max_discharge_w),
        rtg_max_va=_va(r.max_va),
        rtg_max_var=_var(r.max_var) if four_q else None,
        rtg_max_var_neg=_var(r.max_var_neg) if four_q else None,
        rtg_max_w=active_power(r.max_w),
        rtg_max_wh=_wh(r.max_wh),
        rtg_normal_category=r.normal_category,
        der_type=DER_TYPE_PEV,
    )


def der_availability(profile: Profile, site: DERSettings, now: int) -> DERAvailability:
    r, b = profile.ratings, profile.battery
    discharge_w = min(r.max_discharge_w, site_max_w(site))
    stored_wh = r.max_wh * b.soc_pct / 100
    return DERAvailability(
        availability_duration=round(stored_wh / discharge_w * 3600),
        max_charge_duration=round(r.max_wh * (100 - b.soc_pct) / 100 / r.max_charge_w * 3600),
        reading_time=now,
        reserve_percent=2000,  # the PEV keeps 20 % for driving
        stat_var_avail=_var(r.max_var) if r.four_quadrant else None,
        stat_w_avail=active_power(round(discharge_w)),
    )


def power_status(profile: Profile, site: DERSettings, now: int) -> PowerStatus:
    r, b = profile.ratings, profile.battery
    charge_w = min(r.max_charge_w, site_max_w(site))
    request_wh = max(0.0, r.max_wh * (b.target_soc_pct - b.soc_pct) / 100)
    return PowerStatus(
        battery_status=BATTERY_NORMAL,
        changed_time=now,
        current_power_source=POWER_SOURCE_MAINS,
        estimated_charge_remaining=round(b.soc_pct * 100),
        pev_info=PEVInfo(
            charging_power_now=active_power(round(charge_w)),
            energy_request_now=RealEnergy(multiplier=0, value=round(request_wh)),
            max_forward_power=active_power(r.max_charge_w),
            minimum_charging_duration=round(request_wh / charge_w * 3600),
            target_state_of_charge=round(b.target_soc_pct * 100),
            time_charge_is_needed=now + b.departure_in_s,
            time_charging_status_pev=now,
        ),
    )


def der_status(profile: Profile, asleep: bool, since: int, now: int) -> DERStatus:
    """The heartbeat; ``since`` is when the PEV last fell asleep or woke up."""
    return DERStatus(
        gen_connect_status=ConnectStatus(
            date_time=since, value=CONNECTED if asleep else CONNECTED | AVAILABLE
        ),
        inverter_status=StatusValue(
            date_time=since, value=INVERTER_SLEEPING if asleep else INVERTER_AWAKE
        ),
        operational_mode_status=StatusValue(
            date_time=since, value=OPERATIONAL_OFF if asleep else OPERATIONAL_MODE
        ),
        reading_time=now,
        state_of_charge_status=StateOfChargeStatus(
            date_time=now, value=round(profile.battery.soc_pct * 100)
        ),
    )


def control_response(lfdi: str, subject: str, status: int, now: int) -> DERControlResponse:
    return DERControlResponse(
        created_date_time=now, end_device_lfdi=lfdi, status=status, subject=subject
    )


def subscription(resource_href: str, notification_uri: str) -> Subscription:
    """Every change of ``resource_href``, as XML, one notification at a time."""
    return Subscription(
        subscribed_resource=resource_href,
        encoding=ENCODING_XML,
        level="+S1",
        limit=1,
        notification_uri=notification_uri,
    )


# (description, uom, ReadingType.kind, powerOfTenMultiplier)
QUANTITIES = (
    ("W", UOM_W, KIND_POWER, 0),
    ("var", UOM_VAR, KIND_POWER, 0),
    ("V", UOM_V, KIND_VOLTAGE, 0),
    ("Hz", UOM_HZ, KIND_FREQUENCY, -2),
)


def mirror_usage_point(lfdi: str) -> MirrorUsagePoint:
    """roleFlags isMirror | isPEV | isDER, one MirrorMeterReading per quantity."""
    return MirrorUsagePoint(
        mrid=mrid(lfdi, "mup"),
        description="PEV",
        role_flags=MIRROR_ROLE_FLAGS,
        service_category_kind=SERVICE_ELECTRICITY,
        status=STATUS_ON,
        device_lfdi=lfdi,
        mirror_meter_readings=tuple(
            MirrorMeterReading(
                mrid=mrid(lfdi, name),
                description=name,
                reading_type=_reading_type(uom, kind, power),
            )
            for name, uom, kind, power in QUANTITIES
        ),
        post_rate=1,
    )


def meter_readings(
    profile: Profile, site: DERSettings, lfdi: str, now: int
) -> tuple[MirrorMeterReading, ...]:
    """The PEV charging at its site-adjusted rate, no vars, at nominal voltage and 60 Hz."""
    charge_w = min(profile.ratings.max_charge_w, site_max_w(site))
    v_ref = site.set_v_ref.value * 10**site.set_v_ref.multiplier if site.set_v_ref else 240
    values = {"W": round(charge_w), "var": 0, "V": round(v_ref), "Hz": round(GRID_HZ * 100)}
    return tuple(
        MirrorMeterReading(
            mrid=mrid(lfdi, name),
            description=name,
            last_update_time=now,
            reading=Reading(value=values[name]),
            reading_type=_reading_type(uom, kind, power),
        )
        for name, uom, kind, power in QUANTITIES
    )


def _reading_type(uom: int, kind: int, power: int) -> ReadingType:
    return ReadingType(
        accumulation_behaviour=ACCUMULATION_INSTANTANEOUS,
        flow_direction=FLOW_FORWARD,
        kind=kind,
        power_of_ten_multiplier=power,
        uom=uom,
    )


def _va(amount: int) -> ApparentPower:
    multiplier, value = scaled_u16(amount)
    return ApparentPower(multiplier=multiplier, value=value)


def _var(amount: int) -> ReactivePower:
    multiplier, value = scaled_i16(amount)
    return ReactivePower(multiplier=multiplier, value=value)


def _wh(amount: int) -> WattHour:
    multiplier, value = scaled_u16(amount)
    return WattHour(multiplier=multiplier, value=value)
