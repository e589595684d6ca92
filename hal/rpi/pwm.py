"""The pilot generator's PWM through the kernel's sysfs PWM interface.

It finds the PWM chip by the name of its device (chip numbers differ between kernels and
Pi models, docs/j1772.md "Raspberry Pi notes"), exports the channel and sets period,
duty and enable. Writes go through an injectable writer so tests can watch them. It does not
decide what the pilot should be, and never disables or unexports the channel: the kernel keeps
the last duty after the process exits, so the pilot stays at the level we left it at.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from hal.contract import PilotDrive, PilotOutput
from hal.errors import HalError

# docs/j1772.md "Circuit": 1 kHz PWM (980-1020 Hz)
PERIOD_NS = 1_000_000

SysfsWriter = Callable[[Path, str], None]


def write_sysfs(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as file:
        file.write(value)


def _device_names(chip: Path) -> set[str]:
    """Names the chip's parent device goes by: the ``device`` link's target directory
    (e.g. ``fe20c000.pwm``) and the values in its ``uevent`` (OF_FULLNAME, OF_COMPATIBLE_n)."""
    names: set[str] = set()
    device = chip / "device"
    if device.exists():
        names.add(os.path.basename(os.path.realpath(device)))
    try:
        lines = (device / "uevent").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    names.update(line.split("=", 1)[1] for line in lines if "=" in line)
    return names


def find_chip(root: Path, device: str) -> Path:
    chips = sorted(root.glob("pwmchip*")) if root.is_dir() else []
    found = [chip for chip in chips if device in _device_names(chip)]
    if not found:
        raise HalError(f"PWM chip for device {device!r} not found under {root}")
    if len(found) > 1:
        names = ", ".join(chip.name for chip in found)
        raise HalError(f"PWM device {device!r} matches several chips under {root}: {names}")
    return found[0]


def high_permille(output: PilotOutput) -> int:
    """How much of each period the pilot spends at +12 V (ZERO is the board's business)."""
    if output.drive is PilotDrive.PWM:
        return output.duty_permille
    return 1000 if output.drive is PilotDrive.STEADY_POSITIVE else 0


class SysfsPwm:
    """One exported PWM channel at 1 kHz.

    Polarity: the HAT's output stage is assumed non-inverting, PWM high = +12 V, so steady
    +12 V is 100 % duty and F (-12 V) is 0 %. The sysfs polarity is kept "normal" and an
    inverting stage is handled by ``inverted`` (duty = period - duty) rather than by the
    polarity file, which the kernel documentation long allowed changing only while disabled.
    """

    def __init__(
        self, root: Path, device: str, channel: int, inverted: bool, write: SysfsWriter
    ) -> None:
        self.chip = find_chip(root, device)
        self.path = self.chip / f"pwm{channel}"
        self._channel = channel
        self._inverted = inverted
        self._write = write

    def open(self, permille: int) -> None:
        """Export if needed and start at ``permille``, glitch-free when already running."""
        if not self.path.is_dir():
            self._set(self.chip / "export", str(self._channel))
            if not self.path.is_dir():
                raise HalError(f"exporting channel {self._channel} did not create {self.path}")
        enabled = self._read("enable") == "1"
        if enabled and (self._read("polarity") != "normal" or self._period() != PERIOD_NS):
            self._set_attr("enable", "0")
            enabled = False
        if self._read("polarity") != "normal":
            self._set_attr("polarity", "normal")
        duty = str(self._duty_ns(permille))
        # the kernel refuses a duty longer than the period: write them in an order that obeys it
        period = self._period()
        if period < PERIOD_NS:
            self._set_attr("period", str(PERIOD_NS))
        self._set_attr("duty_cycle", duty)
        if period > PERIOD_NS:
            self._set_attr("period", str(PERIOD_NS))
        if not enabled:
            self._set_attr("enable", "1")

    def set_permille(self, permille: int) -> None:
        self._set_attr("duty_cycle", str(self._duty_ns(permille)))

    def _duty_ns(self, permille: int) -> int:
        high_ns = PERIOD_NS * permille // 1000
        return PERIOD_NS - high_ns if self._inverted else high_ns

    def _period(self) -> int:
        text = self._read("period")
        return int(text) if text.isdigit() else 0

    def _read(self, name: str) -> str:
        try:
            return (self.path / name).read_text(encoding="ascii").strip()
        except OSError as err:
            raise HalError(f"cannot read {self.path / name}: {err.strerror or err}") from err

    def _set_attr(self, name: str, value: str) -> None:
        self._set(self.path / name, value)

    def _set(self, path: Path, value: str) -> None:
        try:
            self._write(path, value)
        except OSError as err:
            reason = err.strerror or errno.errorcode.get(err.errno or 0) or str(err)
            raise HalError(f"cannot write {value} to {path}: {reason}") from err
