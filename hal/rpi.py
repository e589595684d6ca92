"""Reference-board backend (Raspberry Pi + EVSE HAT): not built yet.

The pin map, sysfs PWM, spidev peak detectors and the systemd service arrive with the
reference-board issue (#7). Until then opening it fails with a clear reason instead of
pretending to drive hardware.
"""

from __future__ import annotations

from hal.contract import Board
from hal.errors import HalError
from hal.settings import BoardSettings


def open_rpi_board(settings: BoardSettings) -> Board:
    raise HalError(
        "the 'rpi' backend is not implemented yet (reference-board issue #7); use 'mock'"
    )
