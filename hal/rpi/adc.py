"""The reference board's ADC: MCP3202/MCP3208 frames over spidev, and the maths that turn
ADC codes into volts at the pilot and ohms on PP.

It owns the SPI frames (single-ended, 12-bit, three bytes each) and the calibration. It does
not open the SPI device (the board does, through an injectable factory) and knows nothing
of J1772 states.
"""

from __future__ import annotations

from typing import Protocol

from hal.errors import HalError
from hal.settings import AdcChip, RpiSettings

FULL_SCALE = 4096  # both chips are 12-bit: code = Vin / Vref x 4096


class SpiDevice(Protocol):
    """What we use of ``spidev.SpiDev``."""

    max_speed_hz: int
    mode: int

    def open(self, bus: int, device: int) -> None: ...

    def close(self) -> None: ...

    def xfer2(self, data: list[int]) -> list[int]: ...


def request_frame(chip: AdcChip, channel: int) -> list[int]:
    """The three bytes that start a single-ended conversion of ``channel``.

    MCP3208 (datasheet figure 6-1): 00000 START SGL D2 | D1 D0 xxxxxx | xxxxxxxx.
    MCP3202 (datasheet figure 6-1): 0000000 START | SGL ODD MSBF xxxxx | xxxxxxxx.
    Either way the reply's second byte carries the null bit and B11..B8, the third B7..B0.
    """
    if not 0 <= channel < chip.channels:
        raise HalError(f"{chip.value} has no channel {channel}")
    if chip is AdcChip.MCP3208:
        return [0b0000_0110 | channel >> 2, (channel & 0b11) << 6, 0]
    return [0b0000_0001, 0b1010_0000 | channel << 6, 0]


def reply_code(reply: list[int]) -> int:
    if len(reply) != 3:
        raise HalError(f"ADC reply of {len(reply)} bytes, expected 3")
    return (reply[1] & 0x0F) << 8 | reply[2]


def code_to_mv(code: int, vref_mv: float) -> float:
    return code * vref_mv / FULL_SCALE


def pilot_mv(adc_mv: float, offset_mv: float, gain: float) -> int:
    """Undo the HAT's divider and level shift: pilot mV = (ADC mV - offset) x gain."""
    return round((adc_mv - offset_mv) * gain)


def pp_ohm(adc_mv: float, pullup_ohm: float, pullup_mv: float, open_ohm: float) -> float | None:
    """PP to PE from the divider it forms with the pull-up; None when the circuit is open."""
    if adc_mv >= pullup_mv:
        return None
    ohm = pullup_ohm * adc_mv / (pullup_mv - adc_mv)
    return None if ohm > open_ohm else ohm


def check_channels(settings: RpiSettings) -> None:
    chip = settings.adc_chip
    for name, channel in settings.adc_channels().items():
        if not 0 <= channel < chip.channels:
            raise HalError(f"{name} {channel}: {chip.value} has channels 0..{chip.channels - 1}")


class PeakAdc:
    """Reads the two peak detectors and PP through one open SPI device."""

    def __init__(self, spi: SpiDevice, settings: RpiSettings) -> None:
        check_channels(settings)
        self._spi = spi
        self._s = settings

    def read_mv(self, channel: int) -> float:
        reply = self._spi.xfer2(request_frame(self._s.adc_chip, channel))
        return code_to_mv(reply_code(list(reply)), self._s.adc_vref_mv)

    def pilot_mv(self) -> tuple[int, int]:
        """(high, low) plateaus at the pilot, in mV."""
        s = self._s
        high = pilot_mv(
            self.read_mv(s.pilot_high_channel), s.pilot_high_offset_mv, s.pilot_high_gain
        )
        low = pilot_mv(self.read_mv(s.pilot_low_channel), s.pilot_low_offset_mv, s.pilot_low_gain)
        return high, low

    def pp_ohm(self) -> float | None:
        s = self._s
        if s.pp_channel is None:
            return None
        return pp_ohm(self.read_mv(s.pp_channel), s.pp_pullup_ohm, s.pp_pullup_mv, s.pp_open_ohm)
