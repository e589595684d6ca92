"""The ``[hal]`` config section and its boards' tables (``[hal.mock]``, ``[hal.rpi]``), read
into the settings the safety process opens its board with (``hal.open_board``).

Read here, on the safety side that owns the board, because ``hal`` sits below the firmware
and imports none of it. A new board adds its table here, its settings in ``hal.settings`` and
its backend in ``hal.BACKENDS``. The safety process itself never imports this module: it gets
the settings already read, in the channel's first message."""

from __future__ import annotations

from firmware.config.reader import SectionReader
from firmware.pilot.duty import MAX_CURRENT_A, MIN_CURRENT_A
from hal import (
    BACKENDS,
    AdcChip,
    BoardSettings,
    FeedbackKind,
    MockSettings,
    PilotDrive,
    RcdState,
    RpiSettings,
)

FEEDBACK_CHOICES = tuple(kind.value for kind in FeedbackKind)
# [hal.rpi]: BCM GPIOs on the 40-pin header, and those the reference board already uses
RPI_MAX_GPIO = 27
RPI_RESERVED_GPIOS = {
    0: "the HAT ID EEPROM",
    1: "the HAT ID EEPROM",
    7: "SPI0 CE1",
    8: "SPI0 CE0",
    9: "SPI0 MISO",
    10: "SPI0 MOSI",
    11: "SPI0 SCLK",
    18: "the pilot PWM",
}
RPI_SAFE_PILOTS = {"+12V": PilotDrive.STEADY_POSITIVE, "F": PilotDrive.STEADY_NEGATIVE}
SABOTAGES = ("none", "interlock-off")  # [hal.mock] sabotage: test-only broken builds


def read_board(hal: SectionReader) -> BoardSettings:
    problems = hal.problems
    backend = hal.string("backend", "mock", tuple(sorted(BACKENDS)))
    main_fb = hal.string("main_feedback", FeedbackKind.NORMALLY_OPEN.value, FEEDBACK_CHOICES)
    dis_fb = hal.string("discharge_feedback", FeedbackKind.NORMALLY_OPEN.value, FEEDBACK_CHOICES)
    mock = _mock(SectionReader("hal.mock", hal.table("mock"), problems))
    rpi = _rpi(SectionReader("hal.rpi", hal.table("rpi"), problems), problems)
    hal.finish()
    return BoardSettings(
        backend=backend,
        main_feedback=FeedbackKind(main_fb),
        discharge_feedback=FeedbackKind(dis_fb),
        mock=mock,
        rpi=rpi,
    )


def _mock(section: SectionReader) -> MockSettings:
    defaults = MockSettings()
    settings = MockSettings(
        rig_link=section.optional_string("rig_link"),
        relay_delay_ms=section.number("relay_delay_ms", defaults.relay_delay_ms, 0, 1000),
        deadman_timeout_ms=section.number(
            "deadman_timeout_ms", defaults.deadman_timeout_ms, 10, 5000
        ),
        noise_mv=section.number("noise_mv", defaults.noise_mv, 0, 300),
        seed=section.optional_integer("seed", 0, 2**63 - 1),
        supports_rcd_self_test=section.boolean("rcd_self_test", defaults.supports_rcd_self_test),
        sabotage=section.string("sabotage", defaults.sabotage, SABOTAGES),
    )
    section.finish()
    return settings


def _rpi(section: SectionReader, problems: list[str]) -> RpiSettings:
    """The reference board's wiring (docs/hardware.md); cross-checked once each key is valid."""
    d = RpiSettings()
    before = len(problems)

    def pin(key: str, default: int) -> int:
        return section.integer(key, default, 0, RPI_MAX_GPIO)

    def channel(key: str, default: int) -> int:
        return section.integer(key, default, 0, 7)

    def millivolts(key: str, default: float) -> float:
        return section.number(key, default, 0, 5500)

    def gain(key: str, default: float) -> float:
        value = section.number(key, default, -100, 100)
        if value == 0:
            problems.append(f"hal.rpi.{key}: must not be 0")
            return default
        return value

    safe_pilot = section.string("safe_pilot", "+12V", tuple(RPI_SAFE_PILOTS))
    settings = RpiSettings(
        pwm_sysfs_root=section.string("pwm_sysfs_root", d.pwm_sysfs_root),
        pwm_device=section.string("pwm_device", d.pwm_device),
        pwm_channel=section.integer("pwm_channel", d.pwm_channel, 0, 15),
        pilot_inverted=section.boolean("pilot_inverted", d.pilot_inverted),
        pilot_zero_pin=section.integer_or_none("pilot_zero_pin", d.pilot_zero_pin, 0, RPI_MAX_GPIO),
        safe_pilot=RPI_SAFE_PILOTS[safe_pilot],
        spi_bus=section.integer("spi_bus", d.spi_bus, 0, 6),
        spi_device=section.integer("spi_device", d.spi_device, 0, 2),
        # 2 MHz: the MCP320x's clock at its fastest rating (100 ksps at 5 V)
        spi_max_speed_hz=section.integer("spi_max_speed_hz", d.spi_max_speed_hz, 10_000, 2_000_000),
        adc_chip=AdcChip(
            section.string("adc_chip", d.adc_chip.value, tuple(c.value for c in AdcChip))
        ),
        adc_vref_mv=section.number("adc_vref_mv", d.adc_vref_mv, 1000, 5500),
        pilot_high_channel=channel("pilot_high_channel", d.pilot_high_channel),
        pilot_low_channel=channel("pilot_low_channel", d.pilot_low_channel),
        pp_channel=section.integer_or_none("pp_channel", d.pp_channel, 0, 7),
        pilot_high_offset_mv=millivolts("pilot_high_offset_mv", d.pilot_high_offset_mv),
        pilot_high_gain=gain("pilot_high_gain", d.pilot_high_gain),
        pilot_low_offset_mv=millivolts("pilot_low_offset_mv", d.pilot_low_offset_mv),
        pilot_low_gain=gain("pilot_low_gain", d.pilot_low_gain),
        pp_pullup_ohm=section.number("pp_pullup_ohm", d.pp_pullup_ohm, 100, 100_000),
        pp_pullup_mv=section.number("pp_pullup_mv", d.pp_pullup_mv, 1000, 5500),
        pp_open_ohm=section.number("pp_open_ohm", d.pp_open_ohm, 1000, 1_000_000),
        peak_reset_pin=pin("peak_reset_pin", d.peak_reset_pin),
        peak_reset_us=section.integer("peak_reset_us", d.peak_reset_us, 1, 1000),
        main_relay_pin=pin("main_relay_pin", d.main_relay_pin),
        discharge_relay_pin=pin("discharge_relay_pin", d.discharge_relay_pin),
        main_feedback_pin=pin("main_feedback_pin", d.main_feedback_pin),
        discharge_feedback_pin=pin("discharge_feedback_pin", d.discharge_feedback_pin),
        feedback_active_high=section.boolean("feedback_active_high", d.feedback_active_high),
        rcd_fault_pin=pin("rcd_fault_pin", d.rcd_fault_pin),
        rcd_fault_active_high=section.boolean("rcd_fault_active_high", d.rcd_fault_active_high),
        rcd_fault=RcdState(
            section.string("rcd_fault", d.rcd_fault.value, (RcdState.DC.value, RcdState.AC.value))
        ),
        rcd_test_pin=pin("rcd_test_pin", d.rcd_test_pin),
        deadman_pin=pin("deadman_pin", d.deadman_pin),
        max_current_a=section.number(
            "max_current_a", d.max_current_a, MIN_CURRENT_A, MAX_CURRENT_A
        ),
    )
    section.finish()
    if len(problems) == before:  # a value already refused would only echo here
        problems.extend(_rpi_wiring_problems(settings))
    return settings


def _rpi_wiring_problems(rpi: RpiSettings) -> list[str]:
    """Each GPIO used once and not one the board already uses; ADC channels likewise."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for key, gpio in (*rpi.output_pins().items(), *rpi.input_pins().items()):
        if gpio in RPI_RESERVED_GPIOS:
            problems.append(f"hal.rpi.{key}: GPIO{gpio} is {RPI_RESERVED_GPIOS[gpio]}")
        elif gpio in seen:
            problems.append(f"hal.rpi.{key}: GPIO{gpio} is already {seen[gpio]}")
        seen.setdefault(gpio, key)
    used: dict[int, str] = {}
    chip = rpi.adc_chip
    for key, channel in rpi.adc_channels().items():
        if channel >= chip.channels:
            problems.append(f"hal.rpi.{key}: {chip.value} has channels 0..{chip.channels - 1}")
        elif channel in used:
            problems.append(f"hal.rpi.{key}: channel {channel} is already {used[channel]}")
        used.setdefault(channel, key)
    return problems
