"""The configuration: one TOML file, read once into frozen dataclasses, validated at start.

Every problem is reported at once as ``section.key: why``; a config with any problem is
refused whole, so the daemon never starts half-configured. Spec constants live in code;
this file holds board and site facts only.
"""

from __future__ import annotations

import enum
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.approvals.config import ApprovalsConfig, read_approvals
from firmware.config.reader import SectionReader
from firmware.errors import ConfigError
from firmware.net.config import BridgeConfig, read_bridge
from firmware.pilot.duty import MAX_CURRENT_A, MIN_CURRENT_A
from firmware.pilot.proximity import ProximityMode
from firmware.sep2.config import (
    MappingConfig,
    Sep2Config,
    SiteConfig,
    TlsConfig,
    read_mapping,
    read_sep2,
    read_site,
    read_tls,
)
from hal import (
    BACKENDS,
    AdcChip,
    BoardSettings,
    FeedbackKind,
    MockSettings,
    PilotDrive,
    RcdState,
    RpiSettings,
)

FEEDBACK_CHOICES = tuple(kind.value for kind in FeedbackKind)
LOG_LEVELS = ("debug", "info", "warning", "error")
SECTIONS = (
    *("hal", "charger", "contactor", "plc", "tls", "sep2", "site", "j3072", "approvals", "bridge"),
    *("paths", "log", "control"),
)
# [hal.rpi]: BCM GPIOs on the 40-pin header, and those the reference board already uses
RPI_MAX_GPIO = 27
RPI_RESERVED_GPIOS = {
    0: "the HAT ID EEPROM",
    1: "the HAT ID EEPROM",
    7: "SPI0 CE1",
    8: "SPI0 CE0",
    9: "SPI0 MISO",
    10: "SPI0 MOSI",
    11: "SPI0 SCLK",
    18: "the pilot PWM",
}
RPI_SAFE_PILOTS = {"+12V": PilotDrive.STEADY_POSITIVE, "F": PilotDrive.STEADY_NEGATIVE}
MAX_SOCKET_PATH_BYTES = 107  # sockaddr_un.sun_path is 108 bytes with its terminating NUL
SABOTAGES = ("none", "interlock-off")  # [hal.mock] sabotage: test-only broken builds
PLC_MOCK = "mock"  # [plc] interface: the in-process simulated modem and vehicle


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    max_current_a: float = 32.0  # the site's circuit rating, advertised by PWM
    ventilation: bool = False  # the site has ventilation: state D may charge
    sample_rate_hz: int = 200  # pilot sampler / interlock rate
    proximity: ProximityMode = ProximityMode.NONE  # what the PP circuit is wired to


@dataclass(frozen=True, slots=True)
class ContactorConfig:
    min_close_interval_ms: int = 10_000  # contact protection: at most one closing per interval


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


@dataclass(frozen=True, slots=True)
class PathsConfig:
    state_dir: Path = Path("/var/lib/evse-gatekeeper")


@dataclass(frozen=True, slots=True)
class ControlConfig:
    socket: Path = Path("/var/lib/evse-gatekeeper/control.sock")  # default: in the state dir


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Config:
    board: BoardSettings
    charger: ChargerConfig
    contactor: ContactorConfig
    paths: PathsConfig
    log: LogConfig
    plc: PlcConfig = PlcConfig()
    tls: TlsConfig = field(default_factory=TlsConfig)
    sep2: Sep2Config = field(default_factory=Sep2Config)
    site: SiteConfig = field(default_factory=SiteConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    approvals: ApprovalsConfig = field(default_factory=ApprovalsConfig)
    control: ControlConfig = ControlConfig()
    bridge: BridgeConfig = field(default_factory=BridgeConfig)

    @property
    def plc_link_interface(self) -> str | None:
        """The netdev that carries the vehicle's IPv6: ``[bridge] plc_interface``, else the
        ``[plc] interface`` when it is a real netdev."""
        if self.bridge.plc_interface is not None:
            return self.bridge.plc_interface
        interface = self.plc.interface
        return None if interface in (None, PLC_MOCK) else interface

    source: Path | None = None


def load_config(path: str | Path) -> Config:
    """Read and validate ``path``; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            [f"{path}: cannot read: {getattr(err, 'strerror', None) or err}"]
        ) from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"{path}: not valid TOML: {err}"]) from err
    return parse_config(data, source=path)


def parse_config(data: dict[str, Any], source: Path | None = None) -> Config:
    problems: list[str] = []
    for name in sorted(set(data) - set(SECTIONS)):
        problems.append(f"{name}: unknown section")
    board = _board(SectionReader("hal", data.get("hal"), problems), problems)
    tls = read_tls(SectionReader("tls", data.get("tls"), problems))
    j3072 = SectionReader("j3072", data.get("j3072"), problems)
    mapping = read_mapping(SectionReader("j3072.mapping", j3072.table("mapping"), problems))
    j3072.finish()
    paths = _paths(SectionReader("paths", data.get("paths"), problems))
    config = Config(
        board=board,
        charger=_charger(SectionReader("charger", data.get("charger"), problems)),
        contactor=_contactor(SectionReader("contactor", data.get("contactor"), problems)),
        paths=paths,
        log=_log(SectionReader("log", data.get("log"), problems)),
        plc=_plc(SectionReader("plc", data.get("plc"), problems), board, problems),
        tls=tls,
        sep2=read_sep2(SectionReader("sep2", data.get("sep2"), problems), tls, problems),
        site=read_site(SectionReader("site", data.get("site"), problems), problems),
        mapping=mapping,
        bridge=read_bridge(SectionReader("bridge", data.get("bridge"), problems), problems),
        approvals=read_approvals(
            SectionReader("approvals", data.get("approvals"), problems), problems
        ),
        control=_control(SectionReader("control", data.get("control"), problems), paths, problems),
        source=source,
    )
    if problems:
        raise ConfigError(problems)
    return config


def _board(hal: SectionReader, problems: list[str]) -> BoardSettings:
    backend = hal.string("backend", "mock", tuple(sorted(BACKENDS)))
    main_fb = hal.string("main_feedback", FeedbackKind.NORMALLY_OPEN.value, FEEDBACK_CHOICES)
    dis_fb = hal.string("discharge_feedback", FeedbackKind.NORMALLY_OPEN.value, FEEDBACK_CHOICES)
    mock = _mock(SectionReader("hal.mock", hal.table("mock"), problems))
    rpi = _rpi(SectionReader("hal.rpi", hal.table("rpi"), problems), problems)
    hal.finish()
    return BoardSettings(
        backend=backend,
        main_feedback=FeedbackKind(main_fb),
        discharge_feedback=FeedbackKind(dis_fb),
        mock=mock,
        rpi=rpi,
    )


def _mock(section: SectionReader) -> MockSettings:
    defaults = MockSettings()
    settings = MockSettings(
        rig_link=section.optional_string("rig_link"),
        relay_delay_ms=section.number("relay_delay_ms", defaults.relay_delay_ms, 0, 1000),
        deadman_timeout_ms=section.number(
            "deadman_timeout_ms", defaults.deadman_timeout_ms, 10, 5000
        ),
        noise_mv=section.number("noise_mv", defaults.noise_mv, 0, 300),
        seed=section.optional_integer("seed", 0, 2**63 - 1),
        supports_rcd_self_test=section.boolean("rcd_self_test", defaults.supports_rcd_self_test),
        sabotage=section.string("sabotage", defaults.sabotage, SABOTAGES),
    )
    section.finish()
    return settings


def _rpi(section: SectionReader, problems: list[str]) -> RpiSettings:
    """The reference board's wiring (docs/hardware.md); cross-checked once each key is valid."""
    d = RpiSettings()
    before = len(problems)

    def pin(key: str, default: int) -> int:
        return section.integer(key, default, 0, RPI_MAX_GPIO)

    def channel(key: str, default: int) -> int:
        return section.integer(key, default, 0, 7)

    def millivolts(key: str, default: float) -> float:
        return section.number(key, default, 0, 5500)

    def gain(key: str, default: float) -> float:
        value = section.number(key, default, -100, 100)
        if value == 0:
            problems.append(f"hal.rpi.{key}: must not be 0")
            return default
        return value

    safe_pilot = section.string("safe_pilot", "+12V", tuple(RPI_SAFE_PILOTS))
    settings = RpiSettings(
        pwm_sysfs_root=section.string("pwm_sysfs_root", d.pwm_sysfs_root),
        pwm_device=section.string("pwm_device", d.pwm_device),
        pwm_channel=section.integer("pwm_channel", d.pwm_channel, 0, 15),
        pilot_inverted=section.boolean("pilot_inverted", d.pilot_inverted),
        pilot_zero_pin=section.integer_or_none("pilot_zero_pin", d.pilot_zero_pin, 0, RPI_MAX_GPIO),
        safe_pilot=RPI_SAFE_PILOTS[safe_pilot],
        spi_bus=section.integer("spi_bus", d.spi_bus, 0, 6),
        spi_device=section.integer("spi_device", d.spi_device, 0, 2),
        # 2 MHz: the MCP320x's clock at its fastest rating (100 ksps at 5 V)
        spi_max_speed_hz=section.integer("spi_max_speed_hz", d.spi_max_speed_hz, 10_000, 2_000_000),
        adc_chip=AdcChip(
            section.string("adc_chip", d.adc_chip.value, tuple(c.value for c in AdcChip))
        ),
        adc_vref_mv=section.number("adc_vref_mv", d.adc_vref_mv, 1000, 5500),
        pilot_high_channel=channel("pilot_high_channel", d.pilot_high_channel),
        pilot_low_channel=channel("pilot_low_channel", d.pilot_low_channel),
        pp_channel=section.integer_or_none("pp_channel", d.pp_channel, 0, 7),
        pilot_high_offset_mv=millivolts("pilot_high_offset_mv", d.pilot_high_offset_mv),
        pilot_high_gain=gain("pilot_high_gain", d.pilot_high_gain),
        pilot_low_offset_mv=millivolts("pilot_low_offset_mv", d.pilot_low_offset_mv),
        pilot_low_gain=gain("pilot_low_gain", d.pilot_low_gain),
        pp_pullup_ohm=section.number("pp_pullup_ohm", d.pp_pullup_ohm, 100, 100_000),
        pp_pullup_mv=section.number("pp_pullup_mv", d.pp_pullup_mv, 1000, 5500),
        pp_open_ohm=section.number("pp_open_ohm", d.pp_open_ohm, 1000, 1_000_000),
        peak_reset_pin=pin("peak_reset_pin", d.peak_reset_pin),
        peak_reset_us=section.integer("peak_reset_us", d.peak_reset_us, 1, 1000),
        main_relay_pin=pin("main_relay_pin", d.main_relay_pin),
        discharge_relay_pin=pin("discharge_relay_pin", d.discharge_relay_pin),
        main_feedback_pin=pin("main_feedback_pin", d.main_feedback_pin),
        discharge_feedback_pin=pin("discharge_feedback_pin", d.discharge_feedback_pin),
        feedback_active_high=section.boolean("feedback_active_high", d.feedback_active_high),
        rcd_fault_pin=pin("rcd_fault_pin", d.rcd_fault_pin),
        rcd_fault_active_high=section.boolean("rcd_fault_active_high", d.rcd_fault_active_high),
        rcd_fault=RcdState(
            section.string("rcd_fault", d.rcd_fault.value, (RcdState.DC.value, RcdState.AC.value))
        ),
        rcd_test_pin=pin("rcd_test_pin", d.rcd_test_pin),
        deadman_pin=pin("deadman_pin", d.deadman_pin),
        max_current_a=section.number(
            "max_current_a", d.max_current_a, MIN_CURRENT_A, MAX_CURRENT_A
        ),
    )
    section.finish()
    if len(problems) == before:  # a value already refused would only echo here
        problems.extend(_rpi_wiring_problems(settings))
    return settings


def _rpi_wiring_problems(rpi: RpiSettings) -> list[str]:
    """Each GPIO used once and not one the board already uses; ADC channels likewise."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for key, gpio in (*rpi.output_pins().items(), *rpi.input_pins().items()):
        if gpio in RPI_RESERVED_GPIOS:
            problems.append(f"hal.rpi.{key}: GPIO{gpio} is {RPI_RESERVED_GPIOS[gpio]}")
        elif gpio in seen:
            problems.append(f"hal.rpi.{key}: GPIO{gpio} is already {seen[gpio]}")
        seen.setdefault(gpio, key)
    used: dict[int, str] = {}
    chip = rpi.adc_chip
    for key, channel in rpi.adc_channels().items():
        if channel >= chip.channels:
            problems.append(f"hal.rpi.{key}: {chip.value} has channels 0..{chip.channels - 1}")
        elif channel in used:
            problems.append(f"hal.rpi.{key}: channel {channel} is already {used[channel]}")
        used.setdefault(channel, key)
    return problems


def _charger(section: SectionReader) -> ChargerConfig:
    d = ChargerConfig()
    config = ChargerConfig(
        max_current_a=section.number(
            "max_current_a", d.max_current_a, MIN_CURRENT_A, MAX_CURRENT_A
        ),
        ventilation=section.boolean("ventilation", d.ventilation),
        # >= 50 Hz keeps two-sample confirmation inside the 50 ms detection budget
        sample_rate_hz=section.integer("sample_rate_hz", d.sample_rate_hz, 50, 1000),
        proximity=ProximityMode(
            section.string("proximity", d.proximity.value, tuple(m.value for m in ProximityMode))
        ),
    )
    section.finish()
    return config


def _contactor(section: SectionReader) -> ContactorConfig:
    # defaults come from an instance: on a slotted dataclass the class attribute is a slot
    default = ContactorConfig()
    config = ContactorConfig(
        min_close_interval_ms=section.integer(
            "min_close_interval_ms", default.min_close_interval_ms, 0, 3_600_000
        )
    )
    section.finish()
    return config


def _plc(section: SectionReader, board: BoardSettings, problems: list[str]) -> PlcConfig:
    d = PlcConfig()
    interface = section.optional_string("interface")
    if interface and not _valid_ifname(interface):
        problems.append(f"plc.interface: {interface!r} is not a network interface name")
    if interface == PLC_MOCK and board.backend != "mock":
        problems.append('plc.interface: "mock" needs hal.backend = "mock" (its rig drives it)')
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


def _valid_ifname(name: str) -> bool:
    """Linux netdev names: 1..15 bytes, no '/', ':' or whitespace, not '.' or '..'."""
    return (
        0 < len(name.encode()) < 16
        and name not in (".", "..")
        and not any(c in "/:" or c.isspace() for c in name)
    )


def _paths(section: SectionReader) -> PathsConfig:
    config = PathsConfig(state_dir=Path(section.string("state_dir", str(PathsConfig().state_dir))))
    section.finish()
    return config


def _control(section: SectionReader, paths: PathsConfig, problems: list[str]) -> ControlConfig:
    """``evse-gatekeeper status`` asks here; by default in the state directory, so that
    two daemons with their own state never share one socket."""
    path = section.string("socket", str(paths.state_dir / "control.sock"))
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        problems.append(
            f"control.socket: longer than {MAX_SOCKET_PATH_BYTES} bytes, too long for a unix socket"
        )
    config = ControlConfig(socket=Path(path))
    section.finish()
    return config


def _log(section: SectionReader) -> LogConfig:
    config = LogConfig(level=section.string("level", LogConfig().level, LOG_LEVELS))
    section.finish()
    return config
