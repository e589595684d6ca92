"""What the safety process needs of the config, and its one JSON form for the ``Setup``
message.

The gatekeeper reads and validates the whole config file (every problem at once); the safety
process gets only these values, so that it never imports the config readers of the protocol
side (which pull in the TLS and approval-list code).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.pilot.proximity import ProximityMode
from hal.settings import BoardSettings

FORMAT = 1


@dataclass(frozen=True, slots=True)
class SafetySettings:
    board: BoardSettings
    ventilation: bool  # the site has ventilation: state D may charge
    sample_rate_hz: int
    proximity: ProximityMode
    state_dir: Path  # where the inoperative record lives
    log_level: str = "info"
    # SCHED_FIFO priority, where the system grants it; 0 asks for nothing (no real-time
    # scheduling, locked memory or GC changes: a safety process on a test's thread)
    realtime_priority: int = 50


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def to_json(settings: SafetySettings) -> bytes:
    return json.dumps({"format": FORMAT, **_plain(settings)}).encode()


def _typed(template: Any, value: Any) -> Any:
    """``value`` (from JSON) in the type of ``template`` (a default instance)."""
    if isinstance(template, enum.Enum):
        return type(template)(value)
    if isinstance(template, Path):
        return Path(value)
    if dataclasses.is_dataclass(template) and not isinstance(template, type):
        fields = {f.name: getattr(template, f.name) for f in dataclasses.fields(template)}
        unknown = set(value) - set(fields)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))}")
        return type(template)(**{k: _typed(fields[k], v) for k, v in value.items()})
    return value


def from_json(raw: bytes) -> SafetySettings:
    """ValueError (one line) when the JSON is not this format."""
    data = json.loads(raw)
    if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
        raise ValueError(f"safety settings are not format {FORMAT}")
    template = SafetySettings(BoardSettings(), False, 200, ProximityMode.NONE, Path("."))
    try:
        settings: SafetySettings = _typed(template, data)
    except (TypeError, KeyError) as err:
        raise ValueError(f"safety settings: {err}") from err
    return settings
