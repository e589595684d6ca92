"""Hardware abstraction layer: the board-support contract and its backends.

``open_board`` picks a backend by name and imports it lazily, so a laptop never imports the
Raspberry Pi libraries (``RPi.GPIO`` raises at import off a Pi).
"""

from __future__ import annotations

import importlib

from hal.contract import (
    SAFE_PILOT,
    Board,
    Capabilities,
    Contacts,
    FeedbackKind,
    MeterReading,
    PilotDrive,
    PilotOutput,
    PilotSample,
    RcdState,
    Relay,
)
from hal.errors import HalError
from hal.settings import AdcChip, BoardSettings, MockSettings, RpiSettings

# name -> "module:factory"; the factory takes BoardSettings and returns an open Board.
BACKENDS: dict[str, str] = {
    "mock": "hal.mock.board:open_mock_board",
    "rpi": "hal.rpi.board:open_rpi_board",
}


def open_board(settings: BoardSettings) -> Board:
    """Open the board named by ``settings.backend``, already in its safe state."""
    target = BACKENDS.get(settings.backend)
    if target is None:
        valid = ", ".join(sorted(BACKENDS))
        raise HalError(f"unknown board backend {settings.backend!r} (valid: {valid})")
    module_name, factory_name = target.split(":")
    module = importlib.import_module(module_name)
    board: Board = getattr(module, factory_name)(settings)
    return board


__all__ = [
    "BACKENDS",
    "SAFE_PILOT",
    "AdcChip",
    "Board",
    "BoardSettings",
    "Capabilities",
    "Contacts",
    "FeedbackKind",
    "HalError",
    "MeterReading",
    "MockSettings",
    "PilotDrive",
    "PilotOutput",
    "PilotSample",
    "RcdState",
    "Relay",
    "RpiSettings",
    "open_board",
]
