"""The reference-board backend (hal/rpi/board.py, pwm.py, adc.py) on the fakes of
tests/fakes_rpi.py: pin mapping, the order things happen in, the divider maths, the SPI frames
of both ADCs, the safe state when anything fails, and the lazy import of the Pi libraries.

Time comes from an injected fake clock and the peak-reset pulse from an injected sleep, so no
test waits.
"""

from __future__ import annotations

import errno
import importlib
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from hal.contract import (
    Contacts,
    FeedbackKind,
    PilotDrive,
    PilotOutput,
    RcdState,
    Relay,
)
from hal.errors import HalError
from hal.mock.circuit import VehicleSide, VehicleState, plateaus_v
from hal.rpi.adc import code_to_mv, pilot_mv, pp_ohm, reply_code, request_frame
from hal.rpi.board import RpiBoard, open_rpi_board
from hal.settings import AdcChip, BoardSettings
from tests.fakes import FakeClock
from tests.fakes_rpi import FakeGpio, FakePwmSysfs, FakeRpiRig, rig_settings

LSB_AT_PILOT_MV = 10  # one ADC step (3.3 V / 4096 = 0.8 mV) times the divider gain of 10
PWM_50 = PilotOutput(PilotDrive.PWM, 500)


def rig_for(tmp_path: Path, **rpi: Any) -> FakeRpiRig:
    return FakeRpiRig(tmp_path, rig_settings(tmp_path, **rpi), clock=FakeClock())


@pytest.fixture
def rig(tmp_path: Path) -> FakeRpiRig:
    return rig_for(tmp_path)


def opened(rig: FakeRpiRig) -> RpiBoard:
    board = rig.open()
    rig.events.clear()
    return board


def relay_levels(rig: FakeRpiRig) -> tuple[int, int]:
    s = rig.rpi
    return rig.gpio.level(s.main_relay_pin), rig.gpio.level(s.discharge_relay_pin)


def kick(rig: FakeRpiRig, board: RpiBoard) -> None:
    board.kick_deadman()
    assert isinstance(rig.clock, FakeClock)
    rig.clock.advance_ms(5)


# --- lazy import ---------------------------------------------------------------------------


def _without_pi_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RPi", "RPi.GPIO", "spidev"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: import fails


def test_importing_the_backend_does_not_import_the_pi_libraries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without_pi_libraries(monkeypatch)
    for name in ("hal.rpi.board", "hal.rpi.adc", "hal.rpi.libs", "hal.rpi.pwm"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("hal.rpi.board")
    assert callable(module.open_rpi_board)


def test_opening_without_the_pi_libraries_is_a_one_line_board_error(
    monkeypatch: pytest.MonkeyPatch, rig: FakeRpiRig
) -> None:
    _without_pi_libraries(monkeypatch)
    with pytest.raises(HalError, match=r"^cannot import RPi\.GPIO") as missing_gpio:
        open_rpi_board(rig.settings)
    with pytest.raises(HalError, match=r"^cannot import spidev") as missing_spidev:
        open_rpi_board(rig.settings, gpio=rig.gpio)
    for refused in (missing_gpio, missing_spidev):
        assert "\n" not in str(refused.value)
    assert rig.events == [], "nothing was touched"


# --- pin mapping ---------------------------------------------------------------------------

CUSTOM_PINS = {
    "main_relay_pin": 4,
    "discharge_relay_pin": 12,
    "main_feedback_pin": 14,
    "discharge_feedback_pin": 15,
    "rcd_fault_pin": 16,
    "rcd_test_pin": 19,
    "deadman_pin": 20,
    "peak_reset_pin": 21,
}


def test_every_pin_is_set_up_as_configured(tmp_path: Path) -> None:
    rig = rig_for(tmp_path, **CUSTOM_PINS)
    rig.open()
    gpio, p = rig.gpio, CUSTOM_PINS
    assert gpio.mode == FakeGpio.BCM
    outputs = {pin for pin, way in gpio.directions.items() if way == FakeGpio.OUT}
    inputs = {pin for pin, way in gpio.directions.items() if way == FakeGpio.IN}
    assert outputs == {p["main_relay_pin"], p["discharge_relay_pin"], p["rcd_test_pin"]} | {
        p["deadman_pin"],
        p["peak_reset_pin"],
    }
    assert inputs == {p["main_feedback_pin"], p["discharge_feedback_pin"], p["rcd_fault_pin"]}
    # the aux contacts pull low when closed: pulled up; the RCD trips high: an open wire trips
    assert gpio.pulls[p["main_feedback_pin"]] == FakeGpio.PUD_UP
    assert gpio.pulls[p["rcd_fault_pin"]] == FakeGpio.PUD_UP


@pytest.mark.parametrize("relay", list(Relay))
def test_each_relay_drives_its_own_pin(tmp_path: Path, relay: Relay) -> None:
    rig = rig_for(tmp_path, **CUSTOM_PINS)
    board = opened(rig)
    board.set_relay(relay, True)
    pin = CUSTOM_PINS[f"{relay.value}_relay_pin"]
    other = CUSTOM_PINS[f"{'discharge' if relay is Relay.MAIN else 'main'}_relay_pin"]
    assert rig.events == [("gpio.output", pin, FakeGpio.HIGH)]
    assert rig.gpio.level(other) == FakeGpio.LOW
    board.set_relay(relay, False)
    assert rig.gpio.level(pin) == FakeGpio.LOW


def test_rcd_test_and_dead_man_drive_their_pins(tmp_path: Path) -> None:
    rig = rig_for(tmp_path, **CUSTOM_PINS)
    board = opened(rig)
    board.set_rcd_test(True)
    board.kick_deadman()
    board.kick_deadman()
    board.set_rcd_test(False)
    rcd_test, deadman = CUSTOM_PINS["rcd_test_pin"], CUSTOM_PINS["deadman_pin"]
    assert rig.events == [
        ("gpio.output", rcd_test, FakeGpio.HIGH),
        ("gpio.output", deadman, FakeGpio.HIGH),  # each kick toggles
        ("gpio.output", deadman, FakeGpio.LOW),
        ("gpio.output", rcd_test, FakeGpio.LOW),
    ]


@pytest.mark.parametrize(
    ("kind", "active_high", "level", "expected"),
    [
        (FeedbackKind.NORMALLY_OPEN, False, FakeGpio.LOW, Contacts.CLOSED),
        (FeedbackKind.NORMALLY_OPEN, False, FakeGpio.HIGH, Contacts.OPEN),
        (FeedbackKind.NORMALLY_CLOSED, False, FakeGpio.LOW, Contacts.OPEN),
        (FeedbackKind.NORMALLY_CLOSED, False, FakeGpio.HIGH, Contacts.CLOSED),
        (FeedbackKind.NORMALLY_OPEN, True, FakeGpio.HIGH, Contacts.CLOSED),
        (FeedbackKind.NORMALLY_CLOSED, True, FakeGpio.HIGH, Contacts.OPEN),
    ],
)
def test_feedback_follows_the_aux_wiring_and_active_level(
    tmp_path: Path, kind: FeedbackKind, active_high: bool, level: int, expected: Contacts
) -> None:
    settings = rig_settings(tmp_path, feedback_active_high=active_high)
    settings = BoardSettings(backend="rpi", main_feedback=kind, rpi=settings.rpi)
    rig = FakeRpiRig(tmp_path, settings, clock=FakeClock())
    board = rig.open()
    rig.gpio.inputs[rig.rpi.main_feedback_pin] = lambda: level
    assert board.read_feedback(Relay.MAIN) is expected


def test_feedback_none_leaves_the_input_alone_and_reads_unknown(tmp_path: Path) -> None:
    rpi = rig_settings(tmp_path).rpi
    settings = BoardSettings(backend="rpi", discharge_feedback=FeedbackKind.NONE, rpi=rpi)
    rig = FakeRpiRig(tmp_path, settings, clock=FakeClock())
    board = rig.open()
    assert rpi.discharge_feedback_pin not in rig.gpio.directions
    assert board.read_feedback(Relay.DISCHARGE) is Contacts.UNKNOWN
    assert board.capabilities.discharge_feedback is FeedbackKind.NONE


def test_relays_close_only_while_the_dead_man_toggles(rig: FakeRpiRig) -> None:
    board = rig.open()
    board.set_relay(Relay.MAIN, True)
    assert board.read_feedback(Relay.MAIN) is Contacts.OPEN
    for _ in range(3):
        kick(rig, board)
    assert board.read_feedback(Relay.MAIN) is Contacts.CLOSED
    assert isinstance(rig.clock, FakeClock)
    rig.clock.advance_ms(150)
    assert board.read_feedback(Relay.MAIN) is Contacts.OPEN


@pytest.mark.parametrize(("fault", "active_high"), [(RcdState.DC, True), (RcdState.AC, False)])
def test_rcd_trip_and_self_test(tmp_path: Path, fault: RcdState, active_high: bool) -> None:
    rig = rig_for(tmp_path, rcd_fault=fault, rcd_fault_active_high=active_high)
    board = rig.open()
    assert board.read_rcd() is RcdState.CLEAR
    board.set_rcd_test(True)  # the test winding trips the module
    assert board.read_rcd() is fault
    board.set_rcd_test(False)
    rig.rcd_tripped = True
    assert board.read_rcd() is fault


def test_capabilities(tmp_path: Path) -> None:
    caps = rig_for(tmp_path, max_current_a=16.0).open().capabilities
    assert caps.max_current_a == 16.0
    assert caps.supports_state_e is False
    assert caps.supports_rcd_self_test is True
    assert caps.supports_ventilation is True
    assert caps.main_feedback is FeedbackKind.NORMALLY_OPEN
    assert rig_for(tmp_path / "e", pilot_zero_pin=26).open().capabilities.supports_state_e


def test_there_is_no_meter(rig: FakeRpiRig) -> None:
    reading = rig.open().read_meter()
    assert (reading.power_w, reading.voltage_v, reading.frequency_hz) == (0.0, 240.0, 60.0)


# --- sequencing ----------------------------------------------------------------------------


def test_open_drives_the_relays_low_before_anything_else(rig: FakeRpiRig) -> None:
    rig.open()
    s = rig.rpi
    events = [e for e in rig.events if e[0] != "gpio.setmode"]
    assert events[:2] == [
        ("gpio.setup", s.main_relay_pin, "out", FakeGpio.LOW),
        ("gpio.setup", s.discharge_relay_pin, "out", FakeGpio.LOW),
    ]
    for event in rig.events:
        if event[0] == "gpio.setup" and event[2] == "out":
            assert event[3] == FakeGpio.LOW, event
    assert relay_levels(rig) == (FakeGpio.LOW, FakeGpio.LOW)


def test_open_exports_and_starts_the_pwm_at_steady_plus_12v(rig: FakeRpiRig) -> None:
    rig.open()
    pwm_writes = [e[1:] for e in rig.events if e[0] == "pwm.write"]
    assert pwm_writes == [
        ("pwmchip2/export", "0"),
        ("pwmchip2/pwm0/period", "1000000"),  # 1 kHz
        ("pwmchip2/pwm0/duty_cycle", "1000000"),  # 100 %: steady +12 V
        ("pwmchip2/pwm0/enable", "1"),
    ]
    kinds = [e[0] for e in rig.events]
    assert kinds.index("spi.open") > max(i for i, k in enumerate(kinds) if k == "pwm.write")
    assert rig.pilot_output().drive is PilotDrive.STEADY_POSITIVE
    assert rig.adc.devices[0].opened == (0, 1)
    assert rig.adc.devices[0].mode == 0


@pytest.mark.parametrize(
    ("safe_pilot", "inverted", "duty"),
    [
        (PilotDrive.STEADY_NEGATIVE, False, "0"),
        (PilotDrive.STEADY_POSITIVE, True, "0"),  # an inverting stage: +12 V is PWM low
        (PilotDrive.STEADY_NEGATIVE, True, "1000000"),
    ],
)
def test_the_safe_pilot_and_polarity(
    tmp_path: Path, safe_pilot: PilotDrive, inverted: bool, duty: str
) -> None:
    rig = rig_for(tmp_path, safe_pilot=safe_pilot, pilot_inverted=inverted)
    board = rig.open()
    assert FakePwmSysfs.attributes(rig.pwm_dir())["duty_cycle"] == duty
    assert rig.pilot_output().drive is safe_pilot
    board.set_pilot(PWM_50)
    board.close()
    assert rig.pilot_output().drive is safe_pilot


def test_reopening_a_running_channel_does_not_glitch_the_pilot(rig: FakeRpiRig) -> None:
    rig.open().set_pilot(PWM_50)  # a crashed run: no close
    rig.events.clear()
    rig.open()
    assert [e[1:] for e in rig.events if e[0] == "pwm.write"] == [
        ("pwmchip2/pwm0/duty_cycle", "1000000")
    ]


def test_a_foreign_period_and_polarity_are_corrected_in_an_order_the_kernel_accepts(
    rig: FakeRpiRig,
) -> None:
    rig.sysfs.write(rig.chip / "export", "0")
    for name, value in (("period", "2000000"), ("duty_cycle", "1500000")):
        rig.sysfs.write(rig.pwm_dir() / name, value)
    rig.sysfs.write(rig.pwm_dir() / "polarity", "inversed")
    rig.sysfs.write(rig.pwm_dir() / "enable", "1")
    rig.events.clear()
    rig.open()  # the fake refuses what the kernel refuses
    assert [e[1:] for e in rig.events if e[0] == "pwm.write"] == [
        ("pwmchip2/pwm0/enable", "0"),
        ("pwmchip2/pwm0/polarity", "normal"),
        ("pwmchip2/pwm0/duty_cycle", "1000000"),
        ("pwmchip2/pwm0/period", "1000000"),
        ("pwmchip2/pwm0/enable", "1"),
    ]
    assert rig.pilot_output().drive is PilotDrive.STEADY_POSITIVE


@pytest.mark.parametrize(
    ("output", "duty"),
    [
        (PilotOutput(PilotDrive.PWM, 533), "533000"),
        (PilotOutput(PilotDrive.PWM, 50), "50000"),
        (PilotOutput(PilotDrive.STEADY_NEGATIVE, 0), "0"),
        (PilotOutput(PilotDrive.STEADY_POSITIVE), "1000000"),
    ],
)
def test_set_pilot_writes_the_duty(rig: FakeRpiRig, output: PilotOutput, duty: str) -> None:
    board = opened(rig)
    board.set_pilot(output)
    assert rig.events == [("pwm.write", "pwmchip2/pwm0/duty_cycle", duty)]
    assert rig.pilot_output() == output


def test_state_e_clamps_the_pilot_where_fitted(tmp_path: Path) -> None:
    rig = rig_for(tmp_path, pilot_zero_pin=26)
    board = opened(rig)
    board.set_pilot(PilotOutput(PilotDrive.ZERO))
    assert rig.events == [  # the generator idles at the safe level under the clamp
        ("pwm.write", "pwmchip2/pwm0/duty_cycle", "1000000"),
        ("gpio.output", 26, FakeGpio.HIGH),
    ]
    sample = board.read_pilot()
    assert abs(sample.high_mv) <= LSB_AT_PILOT_MV and abs(sample.low_mv) <= LSB_AT_PILOT_MV
    board.set_pilot(PWM_50)
    assert rig.gpio.level(26) == FakeGpio.LOW
    assert rig.pilot_output() == PWM_50


def test_state_e_is_refused_where_not_fitted(rig: FakeRpiRig) -> None:
    board = opened(rig)
    board.set_relay(Relay.MAIN, True)
    with pytest.raises(HalError, match="state E") as refused:
        board.set_pilot(PilotOutput(PilotDrive.ZERO))
    assert "\n" not in str(refused.value)
    assert relay_levels(rig) == (FakeGpio.LOW, FakeGpio.LOW)


def test_each_pilot_read_resets_the_peak_detectors_after_reading_them(rig: FakeRpiRig) -> None:
    board = opened(rig)
    for _ in range(2):
        board.read_pilot()
    reset = rig.rpi.peak_reset_pin
    one_read = [
        ("spi.xfer", rig.rpi.pilot_high_channel),
        ("spi.xfer", rig.rpi.pilot_low_channel),
        ("gpio.output", reset, FakeGpio.HIGH),
        ("sleep", 50e-6),
        ("gpio.output", reset, FakeGpio.LOW),
    ]
    assert rig.events == one_read * 2


def test_the_sample_time_comes_from_the_clock(rig: FakeRpiRig) -> None:
    board = rig.open()
    assert isinstance(rig.clock, FakeClock)
    first = board.read_pilot().t_ns
    rig.clock.advance_ms(5)
    assert board.read_pilot().t_ns == first + 5_000_000


# --- divider maths and SPI frames ------------------------------------------------------------


@pytest.mark.parametrize(
    ("chip", "channel", "frame"),
    [
        (AdcChip.MCP3208, 0, [0x06, 0x00, 0x00]),  # start, SGL, D2..D0 = 000
        (AdcChip.MCP3208, 2, [0x06, 0x80, 0x00]),
        (AdcChip.MCP3208, 5, [0x07, 0x40, 0x00]),
        (AdcChip.MCP3208, 7, [0x07, 0xC0, 0x00]),
        (AdcChip.MCP3202, 0, [0x01, 0xA0, 0x00]),  # start, SGL, ODD = 0, MSBF
        (AdcChip.MCP3202, 1, [0x01, 0xE0, 0x00]),
    ],
)
def test_request_frames(chip: AdcChip, channel: int, frame: list[int]) -> None:
    assert request_frame(chip, channel) == frame


def test_a_channel_the_chip_lacks_is_refused() -> None:
    with pytest.raises(HalError, match="mcp3202 has no channel 2"):
        request_frame(AdcChip.MCP3202, 2)


def test_the_reply_keeps_only_the_twelve_data_bits() -> None:
    assert reply_code([0xFF, 0xEA, 0xBC]) == 0xABC  # Hi-Z bits read high, null bit low
    assert code_to_mv(4096, 3300.0) == 3300.0
    assert code_to_mv(2048, 3300.0) == 1650.0


@pytest.mark.parametrize(
    ("adc_mv", "offset_mv", "gain", "expected_mv"),
    [
        (2850.0, 1650.0, 10.0, 12_000),
        (450.0, 1650.0, 10.0, -12_000),
        (1650.0, 1650.0, 10.0, 0),
        (2548.0, 1650.0, 10.0, 8_980),  # state B
        (450.0, 1650.0, -10.0, 12_000),  # an inverting stage
    ],
)
def test_pilot_divider(adc_mv: float, offset_mv: float, gain: float, expected_mv: int) -> None:
    assert pilot_mv(adc_mv, offset_mv, gain) == expected_mv


@pytest.mark.parametrize(
    ("adc_mv", "expected_ohm"),
    [(1650.0, 1000.0), (300.0, 100.0), (1980.0, 1500.0), (3300.0, None), (3100.0, None)],
)
def test_pp_divider(adc_mv: float, expected_ohm: float | None) -> None:
    ohm = pp_ohm(adc_mv, pullup_ohm=1000.0, pullup_mv=3300.0, open_ohm=10_000.0)
    assert ohm == (None if expected_ohm is None else pytest.approx(expected_ohm))


@pytest.mark.parametrize("chip", list(AdcChip))
def test_known_codes_become_millivolts_at_the_pilot(tmp_path: Path, chip: AdcChip) -> None:
    # a 4.096 V reference makes one code one millivolt
    rig = rig_for(
        tmp_path,
        adc_chip=chip,
        pp_channel=None if chip is AdcChip.MCP3202 else 2,
        adc_vref_mv=4096.0,
        pilot_high_offset_mv=2048.0,
        pilot_low_offset_mv=2048.0,
    )
    board = rig.open()
    rig.adc.mv.update({0: 3248.0, 1: 848.0})
    sample = board.read_pilot()
    assert (sample.high_mv, sample.low_mv) == (12_000, -12_000)
    frames = rig.adc.devices[0].frames
    assert frames == [request_frame(chip, 0), request_frame(chip, 1)]


@pytest.mark.parametrize("chip", list(AdcChip))
@pytest.mark.parametrize("state", [VehicleState.A, VehicleState.B, VehicleState.C])
def test_the_pilot_reads_back_through_the_divider(
    tmp_path: Path, chip: AdcChip, state: VehicleState
) -> None:
    pp = None if chip is AdcChip.MCP3202 else 2
    rig = rig_for(tmp_path, adc_chip=chip, pp_channel=pp)
    board = rig.open()
    rig.vehicle = VehicleSide(state)
    board.set_pilot(PWM_50)
    high_v, low_v = plateaus_v(PWM_50, rig.vehicle)
    sample = board.read_pilot()
    assert sample.high_mv == pytest.approx(high_v * 1000, abs=LSB_AT_PILOT_MV)
    assert sample.low_mv == pytest.approx(low_v * 1000, abs=LSB_AT_PILOT_MV)


def test_plus_9v_minus_12v_end_to_end(rig: FakeRpiRig) -> None:
    board = rig.open()
    rig.plateaus_override_v = (9.0, -12.0)
    sample = board.read_pilot()
    assert sample.high_mv == pytest.approx(9_000, abs=LSB_AT_PILOT_MV)
    assert sample.low_mv == pytest.approx(-12_000, abs=LSB_AT_PILOT_MV)


@pytest.mark.parametrize("ohm", [150.0, 480.0, 220.0, 1500.0])
def test_proximity_reads_the_plug_resistor(rig: FakeRpiRig, ohm: float) -> None:
    board = rig.open()
    rig.pp_ohm = ohm
    reading = board.read_proximity_ohm()
    assert reading == pytest.approx(ohm, rel=0.01)


def test_proximity_open(tmp_path: Path, rig: FakeRpiRig) -> None:
    board = rig.open()
    assert board.read_proximity_ohm() is None  # no plug: the pull-up's full voltage
    rig.pp_ohm = 50_000.0
    assert board.read_proximity_ohm() is None
    no_pp = rig_for(tmp_path / "no-pp", pp_channel=None).open()
    assert no_pp.read_proximity_ohm() is None


def test_a_channel_beyond_the_chip_is_refused_at_open(tmp_path: Path) -> None:
    rig = rig_for(tmp_path, adc_chip=AdcChip.MCP3202)  # PP on channel 2 by default
    with pytest.raises(HalError, match=r"pp_channel 2: mcp3202 has channels 0\.\.1"):
        rig.open()
    assert rig.events == []


# --- finding the PWM chip ------------------------------------------------------------------


def test_the_chip_is_found_by_the_uevent_too(rig: FakeRpiRig, tmp_path: Path) -> None:
    rig.sysfs.add_chip(5, "raspberrypi,test-pwm", via="uevent")
    rig.settings = rig_settings(tmp_path, pwm_device="raspberrypi,test-pwm")
    rig.open()
    assert ("pwm.write", "pwmchip5/export", "0") in rig.events


def test_a_missing_chip_is_named_in_one_line(rig: FakeRpiRig, tmp_path: Path) -> None:
    rig.settings = rig_settings(tmp_path, pwm_device="1f00098000.pwm")  # the tree has a Pi 4's
    root = rig.settings.rpi.pwm_sysfs_root
    with pytest.raises(HalError) as refused:
        rig.open()
    assert str(refused.value) == f"PWM chip for device '1f00098000.pwm' not found under {root}"


def test_a_missing_sysfs_root_is_the_same_error(tmp_path: Path) -> None:
    rig = rig_for(tmp_path)
    rig.settings = rig_settings(tmp_path / "elsewhere")
    with pytest.raises(HalError, match=r"^PWM chip for device 'fe20c000\.pwm' not found under"):
        rig.open()


def test_a_name_that_matches_two_chips_is_refused(rig: FakeRpiRig, tmp_path: Path) -> None:
    rig.sysfs.add_chip(5, "raspberrypi,test-pwm", via="uevent")
    rig.sysfs.add_chip(6, "raspberrypi,test-pwm", via="uevent")
    rig.settings = rig_settings(tmp_path, pwm_device="raspberrypi,test-pwm")
    with pytest.raises(HalError, match=r"matches several chips.*pwmchip5, pwmchip6"):
        rig.open()


# --- safe state when anything fails ----------------------------------------------------------


def _inject_open_fault(rig: FakeRpiRig, where: str) -> None:
    s = rig.rpi
    if where == "gpio":
        rig.gpio.fail("setup", s.rcd_fault_pin, RuntimeError("No access to /dev/mem"))
    elif where == "pwm":
        rig.sysfs.fail("enable", OSError(errno.EIO, "Input/output error"))
    elif where == "spi":
        rig.adc.faults["open"] = FileNotFoundError(errno.ENOENT, "No such file or directory")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("gpio", "cannot set up GPIO6 (rcd_fault_pin): RuntimeError: No access to /dev/mem"),
        ("pwm", "cannot write 1 to {root}/pwmchip2/pwm0/enable: Input/output error"),
        ("spi", "cannot open /dev/spidev0.1: No such file or directory"),
    ],
)
def test_a_failure_during_open_releases_everything_in_the_safe_state(
    rig: FakeRpiRig, where: str, message: str
) -> None:
    _inject_open_fault(rig, where)
    with pytest.raises(HalError) as refused:
        rig.open()
    assert str(refused.value) == message.format(root=rig.rpi.pwm_sysfs_root)
    assert relay_levels(rig) == (FakeGpio.LOW, FakeGpio.LOW)
    assert rig.gpio.directions == {}, "every pin it set up is released"
    assert rig.events[-1][0] == "gpio.cleanup"
    assert all(device.opened is None for device in rig.adc.devices)
    if where == "spi":
        assert rig.pilot_output().drive is PilotDrive.STEADY_POSITIVE


def _relay_closed(rig: FakeRpiRig) -> RpiBoard:
    board = rig.open()
    board.set_relay(Relay.MAIN, True)
    board.set_relay(Relay.DISCHARGE, True)
    kick(rig, board)
    assert relay_levels(rig) == (FakeGpio.HIGH, FakeGpio.HIGH)
    return board


@pytest.mark.parametrize("call", ["kick_deadman", "read_pilot", "set_pilot", "read_rcd"])
def test_a_failure_during_a_call_drops_the_relays(rig: FakeRpiRig, call: str) -> None:
    board = _relay_closed(rig)
    s = rig.rpi
    if call == "kick_deadman":
        rig.gpio.fail("output", s.deadman_pin, RuntimeError("lgpio error"))
    elif call == "read_pilot":
        rig.adc.faults["xfer2"] = OSError(errno.EIO, "Input/output error")
    elif call == "set_pilot":
        rig.sysfs.fail("duty_cycle", OSError(errno.ENODEV, "No such device"))
    else:
        rig.gpio.fail("input", s.rcd_fault_pin, RuntimeError("lgpio error"))
    act = {
        "kick_deadman": board.kick_deadman,
        "read_pilot": board.read_pilot,
        "set_pilot": lambda: board.set_pilot(PWM_50),
        "read_rcd": board.read_rcd,
    }[call]
    with pytest.raises(HalError, match=f"^{call}: ") as failed:
        act()
    assert "\n" not in str(failed.value)
    assert relay_levels(rig) == (FakeGpio.LOW, FakeGpio.LOW)
    board.close()  # still works
    assert rig.events[-1][0] == "gpio.cleanup"


def test_a_relay_that_cannot_be_driven_still_drops_the_other(rig: FakeRpiRig) -> None:
    board = _relay_closed(rig)
    rig.gpio.fail("output", rig.rpi.main_relay_pin, RuntimeError("lgpio error"))
    with pytest.raises(HalError, match=r"^set_relay: RuntimeError: lgpio error"):
        board.set_relay(Relay.MAIN, False)
    assert rig.gpio.level(rig.rpi.discharge_relay_pin) == FakeGpio.LOW
    assert rig.gpio.level(rig.rpi.main_relay_pin) == FakeGpio.LOW  # the best-effort retry


def test_close_drives_the_safe_state_then_releases(rig: FakeRpiRig) -> None:
    board = _relay_closed(rig)
    board.set_pilot(PWM_50)
    rig.events.clear()
    board.close()
    s = rig.rpi
    assert rig.events[:3] == [
        ("gpio.output", s.main_relay_pin, FakeGpio.LOW),
        ("gpio.output", s.discharge_relay_pin, FakeGpio.LOW),
        ("pwm.write", "pwmchip2/pwm0/duty_cycle", "1000000"),
    ]
    released = tuple(sorted({*s.output_pins().values(), *s.input_pins().values()}))
    assert rig.events[-2:] == [("spi.close",), ("gpio.cleanup", released)]
    assert rig.pilot_output().drive is PilotDrive.STEADY_POSITIVE, "the channel stays enabled"


def test_close_is_idempotent_and_the_closed_board_stays_safe(rig: FakeRpiRig) -> None:
    board = rig.open()
    board.close()
    rig.events.clear()
    board.close()
    board.set_relay(Relay.MAIN, True)
    board.kick_deadman()
    board.set_pilot(PWM_50)
    board.set_rcd_test(True)
    assert rig.events == []
    assert board.read_feedback(Relay.MAIN) is Contacts.UNKNOWN
    with pytest.raises(HalError, match="closed"):
        board.read_pilot()


def test_a_failing_step_in_close_skips_none_of_the_others(rig: FakeRpiRig) -> None:
    board = _relay_closed(rig)
    rig.sysfs.fail("duty_cycle", OSError(errno.EIO, "Input/output error"))
    with pytest.raises(HalError, match=r"^close: pilot: cannot write") as failed:
        board.close()
    assert "\n" not in str(failed.value)
    assert relay_levels(rig) == (FakeGpio.LOW, FakeGpio.LOW)
    assert rig.events[-1][0] == "gpio.cleanup"
    board.close()  # already closed: nothing more to do


# --- threads -------------------------------------------------------------------------------


def test_reads_and_writes_from_two_threads_do_not_interleave(rig: FakeRpiRig) -> None:
    board = opened(rig)

    def sample() -> None:
        for _ in range(200):
            board.read_pilot()

    def drive() -> None:
        for i in range(200):
            board.set_relay(Relay.MAIN, i % 2 == 0)

    threads = [threading.Thread(target=sample), threading.Thread(target=drive)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reads = [i for i, event in enumerate(rig.events) if event == ("spi.xfer", 0)]
    assert len(reads) == 200
    for i in reads:  # each read and its reset pulse happen as one piece
        assert [e[0] for e in rig.events[i : i + 5]] == [
            "spi.xfer",
            "spi.xfer",
            "gpio.output",
            "sleep",
            "gpio.output",
        ]
