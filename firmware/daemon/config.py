"""The configuration: one TOML file, read once into frozen dataclasses, validated at start.

Each package reads its own section (``read_*`` in its ``config`` module); this module is the
table from section names to those readers, the daemon's own sections (``[paths]``, ``[log]``,
``[control]``) and the few checks that span two sections. Every problem is reported at once
as ``section.key: why``; a config with any problem is refused whole, so the daemon never starts
half-configured. Spec constants live in code; the file holds board and site facts only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.approvals.config import ApprovalsConfig, read_approvals
from firmware.charger.config import (
    ChargerConfig,
    ContactorConfig,
    read_charger,
    read_contactor,
)
from firmware.clock.config import ClockConfig, clock_problems, read_clock
from firmware.config.reader import SectionReader
from firmware.errors import ConfigError
from firmware.j3072.config import J3072Config, read_j3072
from firmware.meter.config import read_meter
from firmware.net.config import BridgeConfig, read_bridge
from firmware.ocpp.config import OcppConfig, read_ocpp
from firmware.plc.config import PLC_MOCK, PlcConfig, read_plc
from firmware.safety.config import read_board
from firmware.sep2.config import (
    Sep2Config,
    SiteConfig,
    TlsConfig,
    read_sep2,
    read_site,
    read_tls,
    sep2_problems,
)
from hal import BoardSettings
from hal.meter import MeterSettings

LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_SOCKET_PATH_BYTES = 107  # sockaddr_un.sun_path is 108 bytes with its terminating NUL


@dataclass(frozen=True, slots=True)
class PathsConfig:
    state_dir: Path = Path("/var/lib/evse-gatekeeper")


@dataclass(frozen=True, slots=True)
class ControlConfig:
    socket: Path | None = None  # None: control.sock in the state directory


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
    plc: PlcConfig = field(default_factory=PlcConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    sep2: Sep2Config = field(default_factory=Sep2Config)
    site: SiteConfig = field(default_factory=SiteConfig)
    j3072: J3072Config = field(default_factory=J3072Config)
    approvals: ApprovalsConfig = field(default_factory=ApprovalsConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    ocpp: OcppConfig = field(default_factory=OcppConfig)
    meter: MeterSettings = field(default_factory=MeterSettings)

    @property
    def plc_link_interface(self) -> str | None:
        """The netdev that carries the vehicle's IPv6: ``[bridge] plc_interface``, else the
        ``[plc] interface`` when it is a real netdev."""
        if self.bridge.plc_interface is not None:
            return self.bridge.plc_interface
        interface = self.plc.interface
        return None if interface in (None, PLC_MOCK) else interface

    source: Path | None = None

    @property
    def control_socket(self) -> Path:
        """``evse-gatekeeper status`` asks here; by default in the state directory, so that
        two daemons with their own state never share one socket."""
        return self.control.socket or self.paths.state_dir / "control.sock"


def _paths(section: SectionReader) -> PathsConfig:
    config = PathsConfig(state_dir=Path(section.string("state_dir", str(PathsConfig().state_dir))))
    section.finish()
    return config


def _control(section: SectionReader) -> ControlConfig:
    path = section.optional_string("socket")
    section.finish()
    return ControlConfig(socket=Path(path) if path else None)


def _log(section: SectionReader) -> LogConfig:
    config = LogConfig(level=section.string("level", LogConfig().level, LOG_LEVELS))
    section.finish()
    return config


# section name -> (the Config field it fills, its package's reader)
SECTIONS: dict[str, tuple[str, Callable[[SectionReader], Any]]] = {
    "hal": ("board", read_board),
    "charger": ("charger", read_charger),
    "contactor": ("contactor", read_contactor),
    "plc": ("plc", read_plc),
    "tls": ("tls", read_tls),
    "sep2": ("sep2", read_sep2),
    "site": ("site", read_site),
    "j3072": ("j3072", read_j3072),
    "approvals": ("approvals", read_approvals),
    "bridge": ("bridge", read_bridge),
    "ocpp": ("ocpp", read_ocpp),
    "meter": ("meter", read_meter),
    "paths": ("paths", _paths),
    "log": ("log", _log),
    "control": ("control", _control),
    "clock": ("clock", read_clock),
}


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
    fields = {
        attribute: read(SectionReader(name, data.get(name), problems))
        for name, (attribute, read) in SECTIONS.items()
    }
    config = Config(**fields, source=source)
    problems += _across_sections(config)
    if problems:
        raise ConfigError(problems)
    return config


def _across_sections(config: Config) -> list[str]:
    """The checks that need two sections, once each has been read on its own."""
    problems = sep2_problems(config.sep2, config.tls) + clock_problems(config)
    if config.plc.interface == PLC_MOCK and config.board.backend != "mock":
        problems.append('plc.interface: "mock" needs hal.backend = "mock" (its rig drives it)')
    if len(os.fsencode(config.control_socket)) > MAX_SOCKET_PATH_BYTES:
        problems.append(
            f"control.socket: longer than {MAX_SOCKET_PATH_BYTES} bytes, too long for a unix socket"
        )
    return problems
