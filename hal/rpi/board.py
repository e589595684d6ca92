"""Reference-board backend (Raspberry Pi 4/5 + EVSE HAT): the Board contract on real pins.

It drives the relays, the dead-man, the RCD test winding, the peak-detector reset and the
optional state-E clamp through the RPi.GPIO API (``RPi.GPIO`` on Pi 4 and earlier,
``rpi-lgpio`` on Pi 5: same module name), the pilot through kernel sysfs PWM
(``hal.rpi.pwm``) and reads the peak detectors and PP through spidev (``hal.rpi.adc``).
``RPi.GPIO`` and ``spidev`` are imported only when a board is opened, and can be injected.
It has no energy meter and knows nothing of J1772 states. docs/hardware.md shows the wiring.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from hal.contract import (
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
from hal.rpi.adc import PeakAdc, SpiDevice, check_channels
from hal.rpi.libs import GpioModule, import_gpio, import_spidev, reason
from hal.rpi.pwm import SysfsPwm, SysfsWriter, high_permille, write_sysfs
from hal.settings import BoardSettings

logger = logging.getLogger(__name__)

# The HAT has no meter: read_meter() reports no power at nominal mains values.
NOMINAL_VOLTAGE_V = 240.0
NOMINAL_FREQUENCY_HZ = 60.0
SPI_MODE = 0  # MCP3202/3208 accept SPI mode 0,0 (or 1,1)


class RpiBoard:
    """The open reference board. Thread-safe: every hardware access holds one lock."""

    def __init__(
        self,
        settings: BoardSettings,
        gpio: GpioModule,
        sleep: Callable[[float], None],
        clock: Callable[[], int],
    ) -> None:
        s = self._s = settings.rpi
        self._gpio = gpio
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.RLock()
        self._relay_pins = {Relay.MAIN: s.main_relay_pin, Relay.DISCHARGE: s.discharge_relay_pin}
        self._feedback_pins = {
            Relay.MAIN: s.main_feedback_pin,
            Relay.DISCHARGE: s.discharge_feedback_pin,
        }
        self._safe_pilot = PilotOutput(
            s.safe_pilot, 1000 if s.safe_pilot is PilotDrive.STEADY_POSITIVE else 0
        )
        self._set_up: list[int] = []
        self._pwm: SysfsPwm | None = None
        self._spi: SpiDevice | None = None
        self._adc: PeakAdc | None = None
        self._deadman_high = False
        self._closed = False
        self._caps = Capabilities(
            max_current_a=s.max_current_a,
            supports_state_e=s.supports_state_e,
            supports_ventilation=True,  # ventilation is a site fact, not the board's
            supports_rcd_self_test=True,
            main_feedback=settings.main_feedback,
            discharge_feedback=settings.discharge_feedback,
        )

    # --- opening and releasing ------------------------------------------------------------

    def open(self, spi_factory: Callable[[], SpiDevice], write: SysfsWriter) -> None:
        """Relays low before anything else, then the pilot at its safe level, then the ADC."""
        s, gpio = self._s, self._gpio
        spi_path = f"/dev/spidev{s.spi_bus}.{s.spi_device}"
        check_channels(s)
        gpio.setwarnings(False)  # a crashed run leaves its pins claimed: we take them over
        gpio.setmode(gpio.BCM)
        for name, pin in s.output_pins().items():
            self._setup(name, pin, gpio.OUT, initial=gpio.LOW)
        # pulls keep an open aux contact inactive, and make an open RCD wire read as a trip
        feedback_pull = gpio.PUD_DOWN if s.feedback_active_high else gpio.PUD_UP
        for relay, pin in self._feedback_pins.items():
            if self._caps.feedback(relay) is not FeedbackKind.NONE:
                self._setup(f"{relay.value}_feedback_pin", pin, gpio.IN, pull_up_down=feedback_pull)
        rcd_pull = gpio.PUD_UP if s.rcd_fault_active_high else gpio.PUD_DOWN
        self._setup("rcd_fault_pin", s.rcd_fault_pin, gpio.IN, pull_up_down=rcd_pull)
        self._pwm = SysfsPwm(
            Path(s.pwm_sysfs_root), s.pwm_device, s.pwm_channel, s.pilot_inverted, write
        )
        self._pwm.open(high_permille(self._safe_pilot))
        spi = spi_factory()
        try:
            spi.open(s.spi_bus, s.spi_device)
        except OSError as err:
            raise HalError(f"cannot open {spi_path}: {reason(err)}") from err
        self._spi = spi
        spi.max_speed_hz = s.spi_max_speed_hz
        spi.mode = SPI_MODE
        self._adc = PeakAdc(spi, s)
        logger.info("rpi.opened pwm=%s spi=%s adc=%s", self._pwm.path, spi_path, s.adc_chip.value)

    def _setup(self, name: str, pin: int, direction: int, **options: int) -> None:
        try:
            self._gpio.setup(pin, direction, **options)
        except Exception as err:
            raise HalError(f"cannot set up GPIO{pin} ({name}): {reason(err)}") from err
        self._set_up.append(pin)

    def _release(self) -> list[str]:
        """The safe state, then let go; each step in its own try so none is skipped."""
        failures: list[str] = []
        for name, step in (
            ("relays", self._relays_low),
            ("pilot", self._pilot_safe),
            ("outputs", self._outputs_low),
            ("spi", self._close_spi),
            ("gpio", self._cleanup_gpio),
        ):
            try:
                step()
            except Exception as err:
                logger.error("rpi.release_failed step=%s error=%s", name, reason(err))
                failures.append(f"{name}: {reason(err)}")
        return failures

    def _relays_low(self) -> None:
        failed: list[str] = []
        for relay, pin in self._relay_pins.items():
            if pin in self._set_up:
                try:
                    self._gpio.output(pin, self._gpio.LOW)
                except Exception as err:
                    failed.append(f"{relay.value} relay GPIO{pin}: {reason(err)}")
        if failed:
            raise HalError("; ".join(failed))

    def _pilot_safe(self) -> None:
        if self._pwm is not None:
            self._apply_pilot(self._safe_pilot)

    def _outputs_low(self) -> None:
        s = self._s
        for pin in (s.deadman_pin, s.rcd_test_pin, s.peak_reset_pin):
            if pin in self._set_up:
                self._gpio.output(pin, self._gpio.LOW)

    def _close_spi(self) -> None:
        spi, self._spi, self._adc = self._spi, None, None
        if spi is not None:
            spi.close()

    def _cleanup_gpio(self) -> None:
        pins, self._set_up = self._set_up, []
        if pins:
            self._gpio.cleanup(pins)

    @contextmanager
    def _guarded(self, what: str) -> Iterator[None]:
        """One hardware access at a time (the sampler thread reads while the loop drives);
        any failure leaves the relays low and surfaces as a one-line HalError."""
        with self._lock:
            try:
                yield
            except Exception as err:
                if not self._closed:
                    try:
                        self._relays_low()
                    except HalError as also:
                        logger.error("rpi.relays_low_failed error=%s", also)
                raise HalError(f"{what}: {reason(err)}") from err

    def _open_adc(self) -> PeakAdc:
        self._check_open()
        assert self._adc is not None
        return self._adc

    def _check_open(self) -> None:
        if self._closed:
            raise HalError("the board is closed")

    def _apply_pilot(self, output: PilotOutput) -> None:
        assert self._pwm is not None
        zero = output.drive is PilotDrive.ZERO
        # under the 0 V clamp the generator idles at the safe level, in case the clamp lets go
        self._pwm.set_permille(high_permille(self._safe_pilot if zero else output))
        if self._s.pilot_zero_pin is not None:
            self._gpio.output(self._s.pilot_zero_pin, self._gpio.HIGH if zero else self._gpio.LOW)

    def _level(self, pin: int) -> bool:
        return self._gpio.input(pin) == self._gpio.HIGH

    # --- the Board contract -------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def set_pilot(self, output: PilotOutput) -> None:
        with self._guarded("set_pilot"):
            if self._closed:
                return  # closing left the pilot at its safe level
            if output.drive is PilotDrive.ZERO and not self._s.supports_state_e:
                raise HalError("state E (0 V) is not fitted: hal.rpi.pilot_zero_pin is unset")
            self._apply_pilot(output)

    def read_pilot(self) -> PilotSample:
        with self._guarded("read_pilot"):
            high_mv, low_mv = self._open_adc().pilot_mv()
            t_ns = self._clock()
            self._reset_peaks()
        return PilotSample(high_mv, low_mv, t_ns)

    def _reset_peaks(self) -> None:
        """The detectors hold the extremes since their last reset (docs/j1772.md
        "Circuit"): discharge them so the next read covers only the time after this one. The
        sampler reads again no sooner than one PWM period later, enough to recapture both."""
        pin, gpio = self._s.peak_reset_pin, self._gpio
        gpio.output(pin, gpio.HIGH)
        self._sleep(self._s.peak_reset_us / 1e6)
        gpio.output(pin, gpio.LOW)

    def read_proximity_ohm(self) -> float | None:
        with self._guarded("read_proximity_ohm"):
            return self._open_adc().pp_ohm()

    def read_rcd(self) -> RcdState:
        with self._guarded("read_rcd"):
            self._check_open()
            tripped = self._level(self._s.rcd_fault_pin) == self._s.rcd_fault_active_high
        return self._s.rcd_fault if tripped else RcdState.CLEAR

    def set_rcd_test(self, active: bool) -> None:
        with self._guarded("set_rcd_test"):
            if not self._closed:
                self._gpio.output(
                    self._s.rcd_test_pin, self._gpio.HIGH if active else self._gpio.LOW
                )

    def read_meter(self) -> MeterReading:
        """No meter on the HAT: no power, at nominal voltage and frequency."""
        return MeterReading(0.0, NOMINAL_VOLTAGE_V, NOMINAL_FREQUENCY_HZ)

    def set_relay(self, relay: Relay, closed: bool) -> None:
        with self._guarded("set_relay"):
            if not self._closed:
                level = self._gpio.HIGH if closed else self._gpio.LOW
                self._gpio.output(self._relay_pins[relay], level)

    def read_feedback(self, relay: Relay) -> Contacts:
        kind = self._caps.feedback(relay)
        with self._guarded("read_feedback"):
            if kind is FeedbackKind.NONE or self._closed:
                return Contacts.UNKNOWN  # nothing wired, or the input is released
            aux_closed = self._level(self._feedback_pins[relay]) == self._s.feedback_active_high
        closed = aux_closed if kind is FeedbackKind.NORMALLY_OPEN else not aux_closed
        return Contacts.CLOSED if closed else Contacts.OPEN

    def kick_deadman(self) -> None:
        with self._guarded("kick_deadman"):
            if not self._closed:
                self._deadman_high = not self._deadman_high
                level = self._gpio.HIGH if self._deadman_high else self._gpio.LOW
                self._gpio.output(self._s.deadman_pin, level)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            failures = self._release()
        if failures:
            raise HalError("close: " + "; ".join(failures))


def open_rpi_board(
    settings: BoardSettings,
    gpio: GpioModule | None = None,
    spi_factory: Callable[[], SpiDevice] | None = None,
    sysfs_write: SysfsWriter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], int] = time.monotonic_ns,
) -> RpiBoard:
    """Open the reference board in its safe state. ``None`` means the real ``RPi.GPIO``,
    ``spidev.SpiDev`` and sysfs; tests pass fakes. If opening fails part-way, what was
    opened is put back in the safe state and released, and HalError says why in one line."""
    gpio = gpio if gpio is not None else import_gpio()
    spi_factory = spi_factory if spi_factory is not None else import_spidev()
    board = RpiBoard(settings, gpio, sleep, clock)
    try:
        board.open(spi_factory, sysfs_write or write_sysfs)
    except Exception as err:
        with suppress(HalError):  # each failed step is logged; the open failure is the news
            board.close()
        raise HalError(reason(err)) from err
    return board
