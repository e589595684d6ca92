"""The ``[j3072]`` config section: ``[j3072.mapping]``, which DeviceInformation elements carry
the vehicle's ISM, certification and VIN."""

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


def read_j3072(section: SectionReader) -> MappingConfig:
    mapping = _read_mapping(
        SectionReader(f"{section.name}.mapping", section.table("mapping"), section.problems)
    )
    section.finish()
    return mapping
