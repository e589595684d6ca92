"""2030.5 device resources: DeviceCapability, Time, Self/EndDevice, DeviceInformation, PowerStatus.

Covers what the V2G-AC profile uses. Deliberately absent, so refused as unknown on parse:
DERProgramListLink in DeviceCapability (no public programs, profile §4.5.1) and RegistrationLink
in EndDevice (registration is prohibited, §4.5.3), plus the function sets the profile does not
use (billing, pricing, files, network status, logs). What the vehicle PUTs is modelled in full:
DeviceInformation's DRLCCapabilities, gpsLocation and SupportedLocaleListLink are schema-valid,
so they are parsed and kept though the profile uses none of them.
"""

# ruff: noqa: RUF009  # opt() and many() return dataclasses.field(...) specifiers

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from firmware.sep2.base import Resource, SubscribableList, SubscribableResource
from firmware.sep2.fields import (
    BOOL,
    HEX32,
    HEX64,
    INT32,
    LFDI,
    PERCENT,
    SFDI,
    STR32,
    TIME,
    UINT8,
    UINT32,
    many,
    opt,
    req,
)
from firmware.sep2.model import Sep2Model
from firmware.sep2.values import ActivePower, GPSLocation, Link, ListLink, RealEnergy


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceCapability(Resource):
    """DeviceCapability (/dcap): where a client finds everything else."""

    TAG: ClassVar[str] = "DeviceCapability"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    response_set_list_link: ListLink | None = opt("ResponseSetListLink", ListLink)
    time_link: Link | None = opt("TimeLink", Link)
    end_device_list_link: ListLink | None = opt("EndDeviceListLink", ListLink)
    mirror_usage_point_list_link: ListLink | None = opt("MirrorUsagePointListLink", ListLink)
    self_device_link: Link | None = opt("SelfDeviceLink", Link)


@dataclass(frozen=True, slots=True, kw_only=True)
class Time(Resource):
    """Time: the server's clock; offsets in seconds, quality 3 (NTP) … 7 (uncoordinated)."""

    TAG: ClassVar[str] = "Time"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    current_time: int = field(metadata=req("currentTime", TIME))
    dst_end_time: int = field(metadata=req("dstEndTime", TIME))
    dst_offset: int = field(metadata=req("dstOffset", INT32))
    dst_start_time: int = field(metadata=req("dstStartTime", TIME))
    local_time: int | None = opt("localTime", TIME)
    quality: int = field(metadata=req("quality", UINT8))
    tz_offset: int = field(metadata=req("tzOffset", INT32))


@dataclass(frozen=True, slots=True, kw_only=True)
class AbstractDevice(SubscribableResource):
    """AbstractDevice: the elements SelfDevice and EndDevice share (sFDI required)."""

    der_list_link: ListLink | None = opt("DERListLink", ListLink)
    device_category: int | None = opt("deviceCategory", HEX32)
    device_information_link: Link | None = opt("DeviceInformationLink", Link)
    lfdi: str | None = opt("lFDI", LFDI)
    power_status_link: Link | None = opt("PowerStatusLink", Link)
    sfdi: int = field(metadata=req("sFDI", SFDI))


@dataclass(frozen=True, slots=True, kw_only=True)
class SelfDevice(AbstractDevice):
    """SelfDevice: the EVSE itself; its DER's DERSettings are the site limits."""

    TAG: ClassVar[str] = "SelfDevice"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class EndDevice(AbstractDevice):
    """EndDevice: the authenticated PEV, found by its LFDI (no RegistrationLink)."""

    TAG: ClassVar[str] = "EndDevice"

    changed_time: int = field(metadata=req("changedTime", TIME))
    enabled: bool | None = opt("enabled", BOOL)
    function_set_assignments_list_link: ListLink | None = opt(
        "FunctionSetAssignmentsListLink", ListLink
    )
    post_rate: int | None = opt("postRate", UINT32)
    subscription_list_link: ListLink | None = opt("SubscriptionListLink", ListLink)


@dataclass(frozen=True, slots=True, kw_only=True)
class EndDeviceList(SubscribableList):
    """EndDeviceList: at most the one PEV on this port."""

    TAG: ClassVar[str] = "EndDeviceList"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    end_devices: tuple[EndDevice, ...] = many("EndDevice", EndDevice)


@dataclass(frozen=True, slots=True, kw_only=True)
class DRLCCapabilities(Sep2Model):
    """DRLCCapabilities: a load-control client's normal energy use and demand (unused here)."""

    average_energy: RealEnergy = field(metadata=req("averageEnergy", RealEnergy))
    max_demand: ActivePower = field(metadata=req("maxDemand", ActivePower))
    options_implemented: int = field(metadata=req("optionsImplemented", HEX32))


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInformation(Resource):
    """DeviceInformation: make, model, serial (VIN), certification; strings ≤ 32 bytes."""

    TAG: ClassVar[str] = "DeviceInformation"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    drlc_capabilities: DRLCCapabilities | None = opt("DRLCCapabilities", DRLCCapabilities)
    functions_implemented: int | None = opt("functionsImplemented", HEX64)
    gps_location: GPSLocation | None = opt("gpsLocation", GPSLocation)
    lfdi: str = field(metadata=req("lFDI", LFDI))
    mf_date: int = field(metadata=req("mfDate", TIME))
    mf_hw_ver: str = field(metadata=req("mfHwVer", STR32))
    mf_id: int = field(metadata=req("mfID", UINT32))
    mf_info: str | None = opt("mfInfo", STR32)
    mf_model: str = field(metadata=req("mfModel", STR32))
    mf_ser_num: str = field(metadata=req("mfSerNum", STR32))
    primary_power: int = field(metadata=req("primaryPower", UINT8))
    secondary_power: int = field(metadata=req("secondaryPower", UINT8))
    supported_locale_list_link: ListLink | None = opt("SupportedLocaleListLink", ListLink)
    sw_act_time: int = field(metadata=req("swActTime", TIME))
    sw_ver: str = field(metadata=req("swVer", STR32))


@dataclass(frozen=True, slots=True, kw_only=True)
class PEVInfo(Sep2Model):
    """PEVInfo: the PEV's charging needs (all elements required)."""

    charging_power_now: ActivePower = field(metadata=req("chargingPowerNow", ActivePower))
    energy_request_now: RealEnergy = field(metadata=req("energyRequestNow", RealEnergy))
    max_forward_power: ActivePower = field(metadata=req("maxForwardPower", ActivePower))
    minimum_charging_duration: int = field(metadata=req("minimumChargingDuration", UINT32))
    target_state_of_charge: int = field(metadata=req("targetStateOfCharge", PERCENT))
    time_charge_is_needed: int = field(metadata=req("timeChargeIsNeeded", TIME))
    time_charging_status_pev: int = field(metadata=req("timeChargingStatusPEV", TIME))


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerStatus(Resource):
    """PowerStatus: power source and, for a PEV, its PEVInfo."""

    TAG: ClassVar[str] = "PowerStatus"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    battery_status: int = field(metadata=req("batteryStatus", UINT8))
    changed_time: int = field(metadata=req("changedTime", TIME))
    current_power_source: int = field(metadata=req("currentPowerSource", UINT8))
    estimated_charge_remaining: int | None = opt("estimatedChargeRemaining", PERCENT)
    estimated_time_remaining: int | None = opt("estimatedTimeRemaining", UINT32)
    pev_info: PEVInfo | None = opt("PEVInfo", PEVInfo)
    session_time_on_battery: int | None = opt("sessionTimeOnBattery", UINT32)
    total_time_on_battery: int | None = opt("totalTimeOnBattery", UINT32)
