"""The ``[charger]`` and ``[contactor]`` config sections: the site's circuit as the charger
offers it, the sampler's rate, and the contactor's protection."""

from __future__ import annotations

from dataclasses import dataclass

from firmware.config.reader import SectionReader
from firmware.pilot.duty import MAX_CURRENT_A, MIN_CURRENT_A
from firmware.pilot.proximity import ProximityMode


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    max_current_a: float = 32.0  # the site's circuit rating, advertised by PWM
    ventilation: bool = False  # the site has ventilation: state D may charge
    sample_rate_hz: int = 400  # sampler / interlock rate: 2.5 ms keeps p99 <= 15 ms
    proximity: ProximityMode = ProximityMode.NONE  # what the PP circuit is wired to


@dataclass(frozen=True, slots=True)
class ContactorConfig:
    min_close_interval_ms: int = 10_000  # contact protection: at most one closing per interval
    # the discharge relay's own: a vehicle whose authorization flips cannot cycle it
    discharge_min_close_interval_ms: int = 10_000


def read_charger(section: SectionReader) -> ChargerConfig:
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


def read_contactor(section: SectionReader) -> ContactorConfig:
    # defaults come from an instance: on a slotted dataclass the class attribute is a slot
    default = ContactorConfig()
    config = ContactorConfig(
        min_close_interval_ms=section.integer(
            "min_close_interval_ms", default.min_close_interval_ms, 0, 3_600_000
        ),
        discharge_min_close_interval_ms=section.integer(
            "discharge_min_close_interval_ms",
            default.discharge_min_close_interval_ms,
            0,
            3_600_000,
        ),
    )
    section.finish()
    return config
