"""The 2030.5 side of the configuration: ``[tls]``, ``[sep2]``, and ``[site]`` (the site limits
and the IEEE 1547 functions in effect).

Read like the rest of the config: every problem collected as ``section.key: why``. The site
functions are checked against the V2G-AC profile's rules (docs/v2g-ac-profile.md, "The
session", step 4): one operating mode per control, each mode at most once, at most one
reactive-power mode; anything else is refused.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from firmware.config.reader import SectionReader
from firmware.sep2.functions import DEFAULT_FUNCTIONS, SiteFunction, read_functions


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: Path | None = None  # the SERCA root(s) the PEV's chain must end in
    cert_file: Path | None = None  # the EVSE device certificate, then its chain
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Sep2Config:
    enabled: bool = False
    host: str = "::1"  # bind address; "plc" = the EVSE's own address on the PLC link
    port: int = 8443
    discovery: bool = True  # DNS-SD on the PLC interface (never in mock mode)


class Quadrants(enum.Enum):
    TWO = "2Q"  # active power only
    FOUR = "4Q"  # active and reactive power in both directions


@dataclass(frozen=True, slots=True)
class EnterService:
    """IEEE 1547-2018 Table 39 defaults."""

    delay_s: int = 300
    high_volt_pct: float = 105.0
    low_volt_pct: float = 91.7
    high_freq_hz: float = 60.1
    low_freq_hz: float = 59.5
    ramp_s: int = 300
    random_delay_s: int = 0


@dataclass(frozen=True, slots=True)
class SiteConfig:
    service_area: str = ""
    max_w: int = 7200  # setMaxW: the site's active-power limit (never VA)
    v_ref_v: int = 240  # setVRef: nominal voltage
    quadrants: Quadrants = Quadrants.TWO  # what the site requires of a PEV
    enter_service: EnterService = EnterService()
    functions: tuple[SiteFunction, ...] = DEFAULT_FUNCTIONS


DEVICE_INFORMATION_STRINGS = ("mfHwVer", "mfInfo", "mfModel", "mfSerNum", "swVer")


def read_tls(section: SectionReader) -> TlsConfig:
    paths = {key: section.optional_string(key) for key in ("ca_file", "cert_file", "key_file")}
    section.finish()
    return TlsConfig(**{k: Path(v) if v else None for k, v in paths.items()})


def read_sep2(section: SectionReader) -> Sep2Config:
    d = Sep2Config()
    config = Sep2Config(
        enabled=section.boolean("enabled", d.enabled),
        host=section.string("host", d.host),
        port=section.integer("port", d.port, 0, 65535),  # 0: any free port (tests)
        discovery=section.boolean("discovery", d.discovery),
    )
    section.finish()
    return config


def sep2_problems(sep2: Sep2Config, tls: TlsConfig) -> list[str]:
    """What ``[sep2]`` needs of ``[tls]``: a server needs its keys."""
    if not sep2.enabled:
        return []
    missing = [key for key in ("ca_file", "cert_file", "key_file") if getattr(tls, key) is None]
    return [f"tls.{key}: required when sep2.enabled = true" for key in missing]


def read_site(section: SectionReader) -> SiteConfig:
    problems = section.problems
    d = SiteConfig()
    es = _enter_service(
        SectionReader("site.enter_service", section.table("enter_service"), problems)
    )
    config = SiteConfig(
        service_area=section.string("service_area", ""),  # the approval list must name it
        max_w=section.integer("max_w", d.max_w, 1, 1_000_000),
        v_ref_v=section.integer("v_ref_v", d.v_ref_v, 100, 600),
        quadrants=Quadrants(
            section.string("quadrants", d.quadrants.value, tuple(q.value for q in Quadrants))
        ),
        enter_service=es,
        functions=read_functions(section.raw_list("functions"), es, problems),
    )
    section.finish()
    return config


def _enter_service(section: SectionReader) -> EnterService:
    d = EnterService()
    config = EnterService(
        delay_s=section.integer("delay_s", d.delay_s, 0, 600),
        high_volt_pct=section.number("high_volt_pct", d.high_volt_pct, 100.0, 110.0),
        low_volt_pct=section.number("low_volt_pct", d.low_volt_pct, 88.0, 100.0),
        high_freq_hz=section.number("high_freq_hz", d.high_freq_hz, 59.0, 62.0),
        low_freq_hz=section.number("low_freq_hz", d.low_freq_hz, 56.0, 61.0),
        ramp_s=section.integer("ramp_s", d.ramp_s, 1, 1000),
        random_delay_s=section.integer("random_delay_s", d.random_delay_s, 0, 1000),
    )
    section.finish()
    return config
