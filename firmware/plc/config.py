"""The ``[plc]`` config section: which netdev carries HomePlug Green PHY (or the simulated
modems of mock mode), and what the pilot does while SLAC runs and when it fails."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from firmware.config.reader import SectionReader
from firmware.net import valid_ifname

PLC_MOCK = "mock"  # [plc] interface: the in-process simulated modem and vehicle


class PlcDuty(enum.Enum):
    """The pilot duty while SLAC runs (docs/homeplug-slac.md "The pilot duty while SLAC runs")."""

    NOMINAL = "nominal"  # the ampacity: basic charging may start while matching runs
    FIVE_PCT = "5%"  # IEC 61851-1: digital communication required, no ampacity offered


class PlcFallback(enum.Enum):
    """What the EVSE does when no vehicle matches within the SLAC init timeout."""

    BASIC_CHARGING = "basic-charging"  # J1772 charging by PWM alone
    NO_CHARGING = "no-charging"  # no offer: the pilot stays at steady +12 V


@dataclass(frozen=True, slots=True)
class PlcConfig:
    interface: str | None = None  # a netdev (e.g. "eth1" from qcaspi), "mock", or none
    slac_init_timeout_s: float = 40.0  # TT_EVSE_SLAC_init: 20..50 s, default 40
    duty: PlcDuty = PlcDuty.NOMINAL
    fallback: PlcFallback = PlcFallback.BASIC_CHARGING

    @property
    def enabled(self) -> bool:
        return self.interface is not None


def read_plc(section: SectionReader) -> PlcConfig:
    problems = section.problems
    d = PlcConfig()
    interface = section.optional_string("interface")
    if interface and not valid_ifname(interface):
        problems.append(f"plc.interface: {interface!r} is not a network interface name")
    config = PlcConfig(
        interface=interface,
        # ISO 15118-3 TT_EVSE_SLAC_init is 20..50 s; shorter values are for the HIL rigs
        slac_init_timeout_s=section.number("slac_init_timeout_s", d.slac_init_timeout_s, 0.5, 50.0),
        duty=PlcDuty(section.string("duty", d.duty.value, tuple(m.value for m in PlcDuty))),
        fallback=PlcFallback(
            section.string("fallback", d.fallback.value, tuple(m.value for m in PlcFallback))
        ),
    )
    section.finish()
    return config
