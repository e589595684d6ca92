"""The ``[j3072]`` config section: how long a denial or revocation holds (``hold_s``), how long
a vehicle has to follow a control changed at run time (``follow_s``), whether a V2G
authorization needs the clock synchronized since boot (``require_synchronized_clock``), and
``[j3072.mapping]``, which DeviceInformation elements carry the vehicle's ISM, certification
and VIN."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.config.reader import SectionReader
from firmware.sep2.config import DEVICE_INFORMATION_STRINGS


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """Which DeviceInformation elements carry what J3072 Table C4 assigns, which is not public
    (defaults: docs/v2g-ac-profile.md "Default field mapping")."""

    ism: str = "mfModel"
    certification: str = "mfInfo"
    vin: str = "mfSerNum"


def _read_mapping(section: SectionReader) -> MappingConfig:
    d = MappingConfig()
    config = MappingConfig(
        **{
            key: section.string(key, getattr(d, key), DEVICE_INFORMATION_STRINGS)
            for key in ("ism", "certification", "vin")
        }
    )
    section.finish()
    return config


@dataclass(frozen=True, slots=True)
class J3072Config:
    mapping: MappingConfig = MappingConfig()
    # after a denial or a revocation, a grant waits this long before it authorizes: a vehicle
    # changing its data (or its ISM) cannot cycle the discharge path faster
    hold_s: float = 10.0
    # after a control changes at run time, how long the vehicle has to reach the new values
    # before the meter holds it to them (IEEE 1547-2018 gives a limit of active power 30 s);
    # until then the looser of the old and the new counts
    follow_s: float = 30.0
    # no authorization starts before the clock was synchronized once since boot (the list's
    # dates mean nothing on a clock nobody set); None: on for a board, off for the mock
    # board (firmware.clock.config.clock_required)
    require_synchronized_clock: bool | None = None


def read_j3072(section: SectionReader) -> J3072Config:
    mapping = _read_mapping(
        SectionReader(f"{section.name}.mapping", section.table("mapping"), section.problems)
    )
    d = J3072Config()
    config = J3072Config(
        mapping,
        hold_s=section.number("hold_s", d.hold_s, 0, 3600),
        follow_s=section.number("follow_s", d.follow_s, 0, 300),
        require_synchronized_clock=(
            section.boolean("require_synchronized_clock", True)
            if section.has("require_synchronized_clock")
            else None
        ),
    )
    section.finish()
    return config
