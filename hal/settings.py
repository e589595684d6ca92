"""Board settings: the facts about the board that the composition root reads from the config.

The HAL does not parse TOML; ``firmware.daemon.config`` builds these values and hands them in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from hal.contract import FeedbackKind, PilotDrive, RcdState


@dataclass(frozen=True, slots=True)
class MockSettings:
    """The mock board's circuit model and its virtual rig."""

    rig_link: str | None = None  # path where the pty slave is linked; None = no virtual rig
    relay_delay_ms: float = 10.0  # mechanical delay of both relays
    deadman_timeout_ms: float = 100.0  # relay drive drops this long after the last toggle
    noise_mv: float = 15.0  # standard deviation of the ADC noise on each plateau
    seed: int | None = None  # fixes the noise for reproducible runs
    supports_rcd_self_test: bool = True
    # TEST ONLY, mock board only: "interlock-off" builds a firmware whose interlock never
    # trips, supervises nothing and refuses no closing, so that the HIL suite can show it
    # catches a broken build. The daemon logs it loudly; no other backend has the key.
    sabotage: str = "none"
    # not from the config: the firmware's version, filled in by the gatekeeper for the rig's
    # *IDN?, so that the safety process need not load importlib.metadata (about 2 MB locked)
    firmware_version: str = "unknown"


class AdcChip(enum.Enum):
    """The SPI ADC that reads the peak detectors and PP. Both are 12-bit, single-ended here."""

    MCP3202 = "mcp3202"
    MCP3208 = "mcp3208"

    @property
    def channels(self) -> int:
        return 2 if self is AdcChip.MCP3202 else 8


SAFE_PILOT_DRIVES = (PilotDrive.STEADY_POSITIVE, PilotDrive.STEADY_NEGATIVE)


@dataclass(frozen=True, slots=True)
class RpiSettings:
    """The reference board (Raspberry Pi 4/5 + EVSE HAT): pins in BCM numbers, ADC channels and
    calibration. docs/hardware.md has the circuit and the header pin of each."""

    # pilot generator: GPIO18 hardware PWM, whose sysfs chip is found by its device name
    pwm_sysfs_root: str = "/sys/class/pwm"
    pwm_device: str = "fe20c000.pwm"  # Pi 4's PWM0; Pi 5: "1f00098000.pwm" (RP1 PWM0)
    pwm_channel: int = 0  # GPIO18 is channel 0 on Pi 4, channel 2 on Pi 5
    pilot_inverted: bool = False  # True when the HAT's +/-12 V stage inverts the PWM
    pilot_zero_pin: int | None = None  # clamps the pilot to 0 V (state E); None = not fitted
    safe_pilot: PilotDrive = PilotDrive.STEADY_POSITIVE  # on open, close and errors; or F
    # ADC on SPI0: CE1, because the qca7000 overlay takes CE0 for the PLC modem
    spi_bus: int = 0
    spi_device: int = 1
    spi_max_speed_hz: int = 500_000
    adc_chip: AdcChip = AdcChip.MCP3208
    adc_vref_mv: float = 3300.0
    pilot_high_channel: int = 0  # positive peak detector
    pilot_low_channel: int = 1  # negative peak detector
    pp_channel: int | None = 2  # None = PP not wired to the ADC
    # pilot mV = (ADC mV - offset) x gain, per peak detector
    pilot_high_offset_mv: float = 1650.0
    pilot_high_gain: float = 10.0
    pilot_low_offset_mv: float = 1650.0
    pilot_low_gain: float = 10.0
    # PP: a pull-up resistor from pp_pullup_mv to the PP pin, the cable's resistor to PE
    pp_pullup_ohm: float = 1000.0
    pp_pullup_mv: float = 3300.0
    pp_open_ohm: float = 10_000.0  # above this the PP circuit reads open
    peak_reset_pin: int = 25  # discharges both peak detectors after each read
    peak_reset_us: int = 50
    main_relay_pin: int = 17
    discharge_relay_pin: int = 27
    main_feedback_pin: int = 22
    discharge_feedback_pin: int = 5
    feedback_active_high: bool = False  # the closed aux contact pulls its input low
    rcd_fault_pin: int = 6
    rcd_fault_active_high: bool = True  # high = tripped; an open wire reads tripped too
    rcd_fault: RcdState = RcdState.DC  # what a trip of the module reports
    rcd_test_pin: int = 13
    deadman_pin: int = 24  # relay power needs it toggling (docs/j1772.md "Raspberry Pi notes")
    max_current_a: float = 32.0  # the HAT's contactor rating

    def __post_init__(self) -> None:
        if self.safe_pilot not in SAFE_PILOT_DRIVES:
            raise ValueError(f"safe_pilot must be steady +12 V or F, not {self.safe_pilot}")

    @property
    def supports_state_e(self) -> bool:
        return self.pilot_zero_pin is not None

    def output_pins(self) -> dict[str, int]:
        """Every output, by setting name (the relay drives first: they go low first)."""
        pins = {
            "main_relay_pin": self.main_relay_pin,
            "discharge_relay_pin": self.discharge_relay_pin,
            "deadman_pin": self.deadman_pin,
            "rcd_test_pin": self.rcd_test_pin,
            "peak_reset_pin": self.peak_reset_pin,
        }
        if self.pilot_zero_pin is not None:
            pins["pilot_zero_pin"] = self.pilot_zero_pin
        return pins

    def input_pins(self) -> dict[str, int]:
        return {
            "main_feedback_pin": self.main_feedback_pin,
            "discharge_feedback_pin": self.discharge_feedback_pin,
            "rcd_fault_pin": self.rcd_fault_pin,
        }

    def adc_channels(self) -> dict[str, int]:
        channels = {
            "pilot_high_channel": self.pilot_high_channel,
            "pilot_low_channel": self.pilot_low_channel,
        }
        if self.pp_channel is not None:
            channels["pp_channel"] = self.pp_channel
        return channels


@dataclass(frozen=True, slots=True)
class BoardSettings:
    backend: str = "mock"
    main_feedback: FeedbackKind = FeedbackKind.NORMALLY_OPEN
    discharge_feedback: FeedbackKind = FeedbackKind.NORMALLY_OPEN
    mock: MockSettings = field(default_factory=MockSettings)
    rpi: RpiSettings = field(default_factory=RpiSettings)
