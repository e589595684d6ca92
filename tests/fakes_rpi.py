"""Fakes of the reference board's hardware (docs/hardware.md): the RPi.GPIO module, a sysfs PWM tree
in a temp dir, spidev with an MCP3202/3208 behind it, and a rig that ties them together with a
simple physical model, so the rpi backend runs on a laptop.

Every fake appends what it is asked to do to one shared ``events`` list, so tests can check the
order across GPIO, PWM and SPI. Faults are injected one-shot: the next matching call raises.
The ADC decodes request frames bit by bit from the datasheets' timing, independently of
``hal.rpi.adc``, so the tests check the backend's frames rather than echo them.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hal.contract import FeedbackKind, PilotDrive, PilotOutput, Relay
from hal.mock.circuit import VehicleSide, plateaus_v
from hal.rpi.board import RpiBoard, open_rpi_board
from hal.settings import AdcChip, BoardSettings, RpiSettings

Event = tuple[Any, ...]
DEADMAN_TIMEOUT_MS = 100.0  # the HAT's watchdog: relay power drops this long after a toggle


class FakeGpio:
    """Stands in for the ``RPi.GPIO`` module: records outputs, serves inputs."""

    BCM = 11
    BOARD = 10
    OUT = 0
    IN = 1
    HIGH = 1
    LOW = 0
    PUD_OFF = 20
    PUD_DOWN = 21
    PUD_UP = 22

    def __init__(
        self, events: list[Event] | None = None, clock: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self.events: list[Event] = events if events is not None else []
        self.clock = clock
        self.mode: int | None = None
        self.warnings = True
        self.directions: dict[int, int] = {}
        self.pulls: dict[int, int] = {}
        self.levels: dict[int, int] = {}
        self.toggled_ns: dict[int, int] = {}  # when output() last changed each pin
        self.inputs: dict[int, Callable[[], int]] = {}  # what drives each input
        self.faults: dict[tuple[str, int], BaseException] = {}

    def fail(self, call: str, pin: int, error: BaseException) -> None:
        """The next ``call`` ("setup", "output", "input") on ``pin`` raises ``error``."""
        self.faults[(call, pin)] = error

    def _fault(self, call: str, pin: int) -> None:
        error = self.faults.pop((call, pin), None)
        if error is not None:
            raise error

    def setwarnings(self, flag: bool) -> None:
        self.warnings = flag

    def setmode(self, mode: int) -> None:
        self.events.append(("gpio.setmode", mode))
        self.mode = mode

    def setup(
        self, channel: int, direction: int, pull_up_down: int = PUD_OFF, initial: int = -1
    ) -> None:
        if self.mode != self.BCM:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode")
        self._fault("setup", channel)
        self.directions[channel] = direction
        if direction == self.OUT:
            self.levels[channel] = self.LOW if initial == -1 else initial
            self.events.append(("gpio.setup", channel, "out", self.levels[channel]))
        else:
            self.pulls[channel] = pull_up_down
            self.events.append(("gpio.setup", channel, "in", pull_up_down))

    def output(self, channel: int, state: int) -> None:
        self._fault("output", channel)
        if self.directions.get(channel) != self.OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        self.events.append(("gpio.output", channel, state))
        if self.levels.get(channel) != state:
            self.toggled_ns[channel] = self.clock()
        self.levels[channel] = state

    def input(self, channel: int) -> int:
        self._fault("input", channel)
        if channel not in self.directions:
            raise RuntimeError("You must setup() the GPIO channel first")
        if channel in self.inputs:
            return self.inputs[channel]()
        return self.HIGH if self.pulls.get(channel) == self.PUD_UP else self.LOW

    def cleanup(self, channel: int | list[int] | None = None) -> None:
        if channel is None:
            pins = list(self.directions)
        else:
            pins = [channel] if isinstance(channel, int) else list(channel)
        for pin in pins:
            self.directions.pop(pin, None)
            self.levels.pop(pin, None)
        self.events.append(("gpio.cleanup", tuple(sorted(pins))))

    def level(self, pin: int) -> int:
        """What the pin drives; a released pin reads low (the HAT pulls its drives down)."""
        return self.levels.get(pin, self.LOW) if self.directions.get(pin) == self.OUT else self.LOW


class FakePwmSysfs:
    """A ``/sys/class/pwm`` tree in a temp dir; ``write`` plays the kernel's part."""

    def __init__(self, root: Path, events: list[Event] | None = None) -> None:
        self.root = root
        self.events: list[Event] = events if events is not None else []
        self.faults: dict[str, OSError] = {}  # file name -> raised by its next write
        root.mkdir(parents=True, exist_ok=True)

    def add_chip(self, index: int, device: str, npwm: int = 4, via: str = "link") -> Path:
        """A chip whose parent device is named by a ``device`` link (``via="link"``) or only
        by an OF_COMPATIBLE value in ``device/uevent`` (``via="uevent"``)."""
        chip = self.root / f"pwmchip{index}"
        chip.mkdir()
        for name, text in (("export", ""), ("unexport", ""), ("npwm", f"{npwm}\n")):
            (chip / name).write_text(text)
        if via == "link":
            target = self.root.parent / "devices" / device
            target.mkdir(parents=True)
            (target / "uevent").write_text("DRIVER=fake-pwm\n")
            (chip / "device").symlink_to(target)
        else:
            (chip / "device").mkdir()
            (chip / "device" / "uevent").write_text(f"DRIVER=fake-pwm\nOF_COMPATIBLE_0={device}\n")
        return chip

    def fail(self, name: str, error: OSError) -> None:
        self.faults[name] = error

    def write(self, path: Path, value: str) -> None:
        self.events.append(("pwm.write", path.relative_to(self.root).as_posix(), value))
        error = self.faults.pop(path.name, None)
        if error is not None:
            raise error
        if path.name == "export":
            self._export(path.parent, int(value))
            return
        attrs = self.attributes(path.parent)
        if path.name == "duty_cycle" and int(value) > int(attrs["period"]):
            raise OSError(errno.EINVAL, "Invalid argument")
        if path.name == "period" and int(value) < int(attrs["duty_cycle"]):
            raise OSError(errno.EINVAL, "Invalid argument")
        if path.name == "polarity" and attrs["enable"] == "1":
            raise OSError(errno.EBUSY, "Device or resource busy")
        path.write_text(f"{value}\n")

    def _export(self, chip: Path, channel: int) -> None:
        if channel >= int((chip / "npwm").read_text()):
            raise OSError(errno.EINVAL, "Invalid argument")
        pwm = chip / f"pwm{channel}"
        if pwm.exists():
            raise OSError(errno.EBUSY, "Device or resource busy")
        pwm.mkdir()
        for name, text in (("period", "0"), ("duty_cycle", "0"), ("enable", "0")):
            (pwm / name).write_text(f"{text}\n")
        (pwm / "polarity").write_text("normal\n")

    @staticmethod
    def attributes(pwm: Path) -> dict[str, str]:
        names = ("period", "duty_cycle", "enable", "polarity")
        return {name: (pwm / name).read_text().strip() for name in names}


def _bits(frame: list[int]) -> list[int]:
    return [(byte >> (7 - i)) & 1 for byte in frame for i in range(8)]


class FakeAdc:
    """An MCP3202 or MCP3208 on the bus: answers from per-channel voltages in mV, taken from
    ``mv`` if set there, else from ``source``."""

    def __init__(
        self,
        chip: AdcChip,
        vref_mv: float,
        events: list[Event] | None = None,
        source: Callable[[int], float] | None = None,
    ) -> None:
        self.chip = chip
        self.vref_mv = vref_mv
        self.events: list[Event] = events if events is not None else []
        self.source = source
        self.mv: dict[int, float] = {}
        self.faults: dict[str, OSError] = {}  # "open" or "xfer2" -> raised by the next call
        self.devices: list[FakeSpiDev] = []

    def spi_factory(self) -> FakeSpiDev:
        device = FakeSpiDev(self)
        self.devices.append(device)
        return device

    def fault(self, call: str) -> None:
        error = self.faults.pop(call, None)
        if error is not None:
            raise error

    def code(self, channel: int) -> int:
        mv = self.mv[channel] if channel in self.mv else (self.source or (lambda _: 0.0))(channel)
        return max(0, min(4095, round(mv / self.vref_mv * 4096)))

    def answer(self, frame: list[int]) -> list[int]:
        """Datasheet timing, one bit per clock: the start bit is the first 1 on DIN. MCP3208:
        SGL, D2, D1, D0, a sample clock, then the null bit. MCP3202: SGL, ODD, MSBF, and the
        null bit on the clock after MSBF. Then B11..B0; DOUT is Hi-Z (read as 1) before."""
        din = _bits(frame)
        start = din.index(1)
        assert din[start + 1] == 1, "the fakes model single-ended conversions only"
        if self.chip is AdcChip.MCP3208:
            channel = din[start + 2] << 2 | din[start + 3] << 1 | din[start + 4]
            null = start + 6
        else:
            channel = din[start + 2]
            assert din[start + 3] == 1, "MSB-first (MSBF = 1) expected"
            null = start + 4
        self.events.append(("spi.xfer", channel))
        code = self.code(channel)
        dout = [1] * null + [0] + [(code >> (11 - i)) & 1 for i in range(12)]
        dout = (dout + [0] * len(din))[: len(din)]
        return [int("".join(map(str, dout[i : i + 8])), 2) for i in range(0, len(dout), 8)]


class FakeSpiDev:
    """Stands in for ``spidev.SpiDev``."""

    def __init__(self, adc: FakeAdc) -> None:
        self.adc = adc
        self.max_speed_hz = 0
        self.mode = 3
        self.opened: tuple[int, int] | None = None
        self.frames: list[list[int]] = []

    def open(self, bus: int, device: int) -> None:
        self.adc.fault("open")
        self.adc.events.append(("spi.open", bus, device))
        self.opened = (bus, device)

    def xfer2(self, data: list[int]) -> list[int]:
        if self.opened is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        self.adc.fault("xfer2")
        self.frames.append(list(data))
        return self.adc.answer(list(data))

    def close(self) -> None:
        self.adc.events.append(("spi.close",))
        self.opened = None


def rig_settings(root: Path, **rpi: Any) -> BoardSettings:
    """Reference-board settings with the sysfs tree under ``root``."""
    return BoardSettings(
        backend="rpi", rpi=RpiSettings(pwm_sysfs_root=str(root / "sys/class/pwm"), **rpi)
    )


class FakeRpiRig:
    """The HAT around the fakes: relay coils powered only while the dead-man toggles, aux
    contacts that follow the coils, the RCD module (its test winding trips it), PP, and the
    pilot the PWM drives, seen through the peak detectors and the HAT's divider."""

    def __init__(
        self,
        root: Path,
        settings: BoardSettings | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.settings = settings or rig_settings(root)
        s = self.rpi = self.settings.rpi
        self.clock = clock
        self.events: list[Event] = []
        self.gpio = FakeGpio(self.events, clock)
        self.sysfs = FakePwmSysfs(Path(s.pwm_sysfs_root), self.events)
        self.sysfs.add_chip(0, "1f0009c000.pwm")  # another PWM block, listed first
        self.chip = self.sysfs.add_chip(2, s.pwm_device)
        self.adc = FakeAdc(s.adc_chip, s.adc_vref_mv, self.events, self.channel_mv)
        self.vehicle = VehicleSide()
        self.plateaus_override_v: tuple[float, float] | None = None
        self.pp_ohm: float | None = None
        self.rcd_tripped = False
        self.gpio.inputs[s.main_feedback_pin] = lambda: self._aux_level(Relay.MAIN)
        self.gpio.inputs[s.discharge_feedback_pin] = lambda: self._aux_level(Relay.DISCHARGE)
        self.gpio.inputs[s.rcd_fault_pin] = self._rcd_level

    def open(self) -> RpiBoard:
        return open_rpi_board(
            self.settings,
            gpio=self.gpio,
            spi_factory=self.adc.spi_factory,
            sysfs_write=self.sysfs.write,
            sleep=self.sleep,
            clock=self.clock,
        )

    def sleep(self, seconds: float) -> None:
        self.events.append(("sleep", seconds))

    # --- the physical model -------------------------------------------------------------

    def deadman_alive(self) -> bool:
        last = self.gpio.toggled_ns.get(self.rpi.deadman_pin)
        return last is not None and self.clock() - last < DEADMAN_TIMEOUT_MS * 1e6

    def coil_energized(self, relay: Relay) -> bool:
        pin = self.rpi.main_relay_pin if relay is Relay.MAIN else self.rpi.discharge_relay_pin
        return self.gpio.level(pin) == FakeGpio.HIGH and self.deadman_alive()

    def _aux_level(self, relay: Relay) -> int:
        kind = (
            self.settings.main_feedback if relay is Relay.MAIN else self.settings.discharge_feedback
        )
        contacts_closed = self.coil_energized(relay)
        aux_closed = contacts_closed if kind is FeedbackKind.NORMALLY_OPEN else not contacts_closed
        return FakeGpio.HIGH if aux_closed == self.rpi.feedback_active_high else FakeGpio.LOW

    def _rcd_level(self) -> int:
        tripped = self.rcd_tripped or self.gpio.level(self.rpi.rcd_test_pin) == FakeGpio.HIGH
        return FakeGpio.HIGH if tripped == self.rpi.rcd_fault_active_high else FakeGpio.LOW

    def pwm_dir(self) -> Path:
        return self.chip / f"pwm{self.rpi.pwm_channel}"

    def pilot_output(self) -> PilotOutput:
        """What the HAT drives, judged from the PWM channel and the 0 V clamp."""
        zero = self.rpi.pilot_zero_pin
        if zero is not None and self.gpio.level(zero) == FakeGpio.HIGH:
            return PilotOutput(PilotDrive.ZERO)
        if not self.pwm_dir().is_dir():
            return PilotOutput(PilotDrive.STEADY_NEGATIVE, 0)
        attrs = FakePwmSysfs.attributes(self.pwm_dir())
        period, duty = int(attrs["period"]), int(attrs["duty_cycle"])
        high = duty * 1000 // period if attrs["enable"] == "1" and period else 0
        if attrs["polarity"] == "inversed" or self.rpi.pilot_inverted:
            high = 1000 - high
        if high >= 1000:
            return PilotOutput(PilotDrive.STEADY_POSITIVE)
        if high <= 0:
            return PilotOutput(PilotDrive.STEADY_NEGATIVE, 0)
        return PilotOutput(PilotDrive.PWM, high)

    def plateaus_v(self) -> tuple[float, float]:
        if self.plateaus_override_v is not None:
            return self.plateaus_override_v
        return plateaus_v(self.pilot_output(), self.vehicle)

    def channel_mv(self, channel: int) -> float:
        """The ADC input: the pilot through the HAT's divider, or PP's divider."""
        s = self.rpi
        high_v, low_v = self.plateaus_v()
        if channel == s.pilot_high_channel:
            return high_v * 1000 / s.pilot_high_gain + s.pilot_high_offset_mv
        if channel == s.pilot_low_channel:
            return low_v * 1000 / s.pilot_low_gain + s.pilot_low_offset_mv
        if channel == s.pp_channel:
            if self.pp_ohm is None:
                return s.pp_pullup_mv
            return s.pp_pullup_mv * self.pp_ohm / (self.pp_ohm + s.pp_pullup_ohm)
        return 0.0
