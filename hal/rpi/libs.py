"""The slice of the Raspberry Pi libraries the reference board uses, imported only on demand.

``RPi.GPIO`` raises at import off a Pi, so it and ``spidev`` are imported inside these
functions, never at module level: a laptop can import the whole HAL. The Protocols let tests
pass fakes. Also the one-line wording of whatever those libraries raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hal.errors import HalError
from hal.rpi.adc import SpiDevice


class GpioModule(Protocol):
    """What we use of the ``RPi.GPIO`` module (also provided by ``rpi-lgpio``)."""

    BCM: int
    OUT: int
    IN: int
    HIGH: int
    LOW: int
    PUD_UP: int
    PUD_DOWN: int

    def setwarnings(self, flag: bool) -> None: ...

    def setmode(self, mode: int) -> None: ...

    def setup(
        self, channel: int, direction: int, pull_up_down: int = ..., initial: int = ...
    ) -> None: ...

    def output(self, channel: int, state: int) -> None: ...

    def input(self, channel: int) -> int: ...

    def cleanup(self, channel: list[int] = ...) -> None: ...


def reason(err: BaseException) -> str:
    """One line for the operator, whatever raised."""
    if isinstance(err, HalError):
        text = str(err)
    elif isinstance(err, OSError) and err.strerror:
        text = err.strerror + (f": {err.filename}" if err.filename else "")
    else:
        text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return " ".join(text.split())


def import_gpio() -> GpioModule:
    try:
        import RPi.GPIO as real_gpio  # RPi.GPIO on Pi <= 4, rpi-lgpio on Pi 5
    except (ImportError, RuntimeError) as err:
        raise HalError(
            f"cannot import RPi.GPIO ({reason(err)}); install the pi or pi5 extra"
        ) from err
    gpio: GpioModule = real_gpio
    return gpio


def import_spidev() -> Callable[[], SpiDevice]:
    try:
        import spidev
    except ImportError as err:
        raise HalError(
            f"cannot import spidev ({reason(err)}); install the pi or pi5 extra"
        ) from err
    factory: Callable[[], SpiDevice] = spidev.SpiDev
    return factory
