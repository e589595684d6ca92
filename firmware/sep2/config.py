"""The 2030.5 side of the configuration: ``[tls]``, ``[sep2]``, and ``[site]`` (the site limits
and the IEEE 1547 functions in effect).

Read like the rest of the config: every problem collected as ``section.key: why``. The site
functions are checked against the V2G-AC profile's rules (docs/v2g-ac-profile.md, "The
session", step 4): one operating mode per control, each mode at most once, at most one
reactive-power mode; anything else is refused.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.config.reader import SectionReader


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


class Mode(enum.Enum):
    """The IEEE 1547 functions a site can put in effect, one DERControl each."""

    FIXED_PF = "fixed-pf"
    VOLT_VAR = "volt-var"
    WATT_VAR = "watt-var"
    FIXED_VAR = "fixed-var"
    VOLT_WATT = "volt-watt"
    FREQ_DROOP = "freq-droop"
    MAX_LIM_W = "max-lim-w"
    FIXED_W = "fixed-w"  # the dispatch (§4.8.2): + discharge, % of setMaxW; only once energized

    @property
    def reactive(self) -> bool:
        return self in (Mode.FIXED_PF, Mode.VOLT_VAR, Mode.WATT_VAR, Mode.FIXED_VAR)


CURVE_MODES = (Mode.VOLT_VAR, Mode.WATT_VAR, Mode.VOLT_WATT)
MAX_CURVE_POINTS = 10  # 2030.5 CurveData: at most 10 points


@dataclass(frozen=True, slots=True)
class SiteFunction:
    """One mode and its parameters: ``curve`` for the curve modes (x, y pairs in percent),
    ``value`` for fixed-pf (the power factor), fixed-var, max-lim-w and fixed-w (percent), and the
    droop parameters for freq-droop."""

    mode: Mode
    curve: tuple[tuple[float, float], ...] = ()
    value: float | None = None
    droop: tuple[tuple[str, float], ...] = ()


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
    functions: tuple[SiteFunction, ...] = field(default_factory=tuple)

    def max_lim_w_pct(self) -> float | None:
        """The opModMaxLimW the site publishes (percent of setMaxW), if any."""
        for function in self.functions:
            if function.mode is Mode.MAX_LIM_W:
                return function.value
        return None


DEVICE_INFORMATION_STRINGS = ("mfHwVer", "mfInfo", "mfModel", "mfSerNum", "swVer")
# freq-droop parameters: (default, low, high); defaults from IEEE 1547-2018 Table 24
# (category III): deadbands 0.036 Hz, droop 5 %, open-loop response time 5 s
DROOP_KEYS: dict[str, tuple[float, float, float]] = {
    "db_of_hz": (0.036, 0.017, 1.0),
    "db_uf_hz": (0.036, 0.017, 1.0),
    "k_of": (0.05, 0.02, 0.07),
    "k_uf": (0.05, 0.02, 0.07),
    "response_s": (5.0, 0.2, 10.0),
}


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
        functions=_functions(section.raw_list("functions"), problems),
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


def _functions(raw: Any, problems: list[str]) -> tuple[SiteFunction, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        problems.append("site.functions: must be an array of tables ([[site.functions]])")
        return ()
    functions: list[SiteFunction] = []
    for index, table in enumerate(raw):
        function = _function(SectionReader(f"site.functions[{index}]", table, problems), problems)
        if function is not None:
            functions.append(function)
    modes = [f.mode for f in functions]
    for mode in sorted({m for m in modes if modes.count(m) > 1}, key=lambda m: m.value):
        problems.append(f"site.functions: mode {mode.value} appears more than once")
    reactive = sorted({m.value for m in modes if m.reactive})
    if len(reactive) > 1:
        problems.append(
            f"site.functions: at most one reactive-power mode, got {', '.join(reactive)}"
        )
    return tuple(functions)


def _function(section: SectionReader, problems: list[str]) -> SiteFunction | None:
    choices = tuple(m.value for m in Mode)
    name = section.string("mode", "", choices)
    if not name:
        if not section.has("mode"):
            problems.append(f"{section.name}.mode: required (one of {', '.join(choices)})")
        section.finish()
        return None
    mode = Mode(name)
    function = SiteFunction(mode)
    if mode in CURVE_MODES:
        function = SiteFunction(mode, curve=_curve(section, problems))
    elif mode is Mode.FIXED_PF:
        function = SiteFunction(mode, value=section.number("power_factor", 1.0, 0.8, 1.0))
    elif mode in (Mode.FIXED_VAR, Mode.MAX_LIM_W, Mode.FIXED_W):
        low = 0.0 if mode is Mode.MAX_LIM_W else -100.0
        function = SiteFunction(mode, value=section.number("percent", 100.0, low, 100.0))
    elif mode is Mode.FREQ_DROOP:
        droop = tuple((key, section.number(key, *limits)) for key, limits in DROOP_KEYS.items())
        function = SiteFunction(mode, droop=droop)
    section.finish()
    return function


def _curve(section: SectionReader, problems: list[str]) -> tuple[tuple[float, float], ...]:
    raw = section.raw_list("curve")
    where = f"{section.name}.curve"
    ok = (
        isinstance(raw, list)
        and all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
            for p in raw
        )
        and 2 <= len(raw) <= MAX_CURVE_POINTS
    )
    if not ok:
        problems.append(f"{where}: 2 to {MAX_CURVE_POINTS} [x, y] points, in percent")
        return ()
    points = tuple((float(x), float(y)) for x, y in raw)
    if any(b[0] <= a[0] for a, b in itertools.pairwise(points)):
        problems.append(f"{where}: x values must increase")
    return points
