"""The configuration file (firmware/daemon/config.py): defaults, every key, and every problem
at once.

A config with any problem is refused whole; ``ConfigError.problems`` lists each problem as
``section.key: reason`` (or ``section: reason`` for a whole section), so an operator can fix
them all in one pass.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from firmware.daemon.config import Config, load_config, parse_config
from firmware.errors import ConfigError
from hal import AdcChip, FeedbackKind, PilotDrive, RcdState, RpiSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBLEM = re.compile(
    r"^(?P<where>[a-z_0-9]+(?:\[\d+\])?(?:\.[a-z_0-9]+(?:\[\d+\])?)*): (?P<reason>\S.*)$"
)


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.problems, "a ConfigError must carry at least one problem"
    for problem in info.value.problems:
        assert PROBLEM.match(problem), problem
    return info.value.problems


def where(problems: list[str]) -> list[str]:
    return [problem.split(": ", 1)[0] for problem in problems]


# --- defaults and accepted values ------------------------------------------------------------


def test_defaults_of_an_empty_file() -> None:
    config = parse_config({})
    assert config.board.backend == "mock"
    assert config.board.main_feedback is FeedbackKind.NORMALLY_OPEN
    assert config.board.discharge_feedback is FeedbackKind.NORMALLY_OPEN
    mock = config.board.mock
    assert mock.rig_link is None
    assert mock.relay_delay_ms == 10.0  # docs/rig-protocol.md "The virtual rig": 10 ms
    assert mock.deadman_timeout_ms == 100.0
    assert mock.noise_mv == 15.0
    assert mock.seed is None
    assert mock.supports_rcd_self_test is True
    assert config.charger.max_current_a == 32.0
    assert config.charger.ventilation is False
    assert config.charger.sample_rate_hz == 400
    assert config.contactor.min_close_interval_ms == 10_000  # reference: ~10 s per closing
    assert config.paths.state_dir == Path("/var/lib/evse-gatekeeper")
    assert config.log.level == "info"
    assert config.source is None


def test_empty_sections_are_the_defaults() -> None:
    empty = {name: {} for name in ("hal", "charger", "contactor", "paths", "log")}
    assert parse_config(empty) == parse_config({})


@pytest.mark.parametrize("backend", ["mock", "rpi"])
def test_hal_backend(backend: str) -> None:
    assert parse_config({"hal": {"backend": backend}}).board.backend == backend


@pytest.mark.parametrize("kind", list(FeedbackKind))
def test_hal_feedback_kinds(kind: FeedbackKind) -> None:
    config = parse_config({"hal": {"main_feedback": kind.value, "discharge_feedback": kind.value}})
    assert config.board.main_feedback is kind
    assert config.board.discharge_feedback is kind


def test_hal_mock_keys() -> None:
    table = {
        "rig_link": ".state/rig",
        "relay_delay_ms": 25,
        "deadman_timeout_ms": 50.5,
        "noise_mv": 0,
        "seed": 1234,
        "rcd_self_test": False,
    }
    mock = parse_config({"hal": {"mock": table}}).board.mock
    assert mock.rig_link == ".state/rig"
    assert mock.relay_delay_ms == 25.0
    assert mock.deadman_timeout_ms == 50.5
    assert mock.noise_mv == 0.0
    assert mock.seed == 1234
    assert mock.supports_rcd_self_test is False


def test_charger_keys() -> None:
    data = {"charger": {"max_current_a": 16, "ventilation": True, "sample_rate_hz": 100}}
    charger = parse_config(data).charger
    assert charger.max_current_a == 16.0
    assert charger.ventilation is True
    assert charger.sample_rate_hz == 100


def test_max_current_accepts_a_float() -> None:
    assert parse_config({"charger": {"max_current_a": 13.5}}).charger.max_current_a == 13.5


def test_contactor_paths_and_log_keys() -> None:
    data = {
        "contactor": {"min_close_interval_ms": 5000},
        "paths": {"state_dir": "/tmp/evse"},
        "log": {"level": "debug"},
    }
    config = parse_config(data)
    assert config.contactor.min_close_interval_ms == 5000
    assert config.paths.state_dir == Path("/tmp/evse")
    assert config.log.level == "debug"


def test_control_socket() -> None:
    assert parse_config({}).control_socket == Path("/var/lib/evse-gatekeeper/control.sock")
    assert parse_config({"control": {}}).control_socket == Path(
        "/var/lib/evse-gatekeeper/control.sock"
    )
    in_state = parse_config({"paths": {"state_dir": "/srv/evse"}})
    assert in_state.control_socket == Path("/srv/evse/control.sock"), "follows the state dir"
    config = parse_config({"control": {"socket": ".state/control.sock"}})
    assert config.control_socket == Path(".state/control.sock")  # relative: used as written
    assert problems_of({"control": {"socket": "/run/x.sock", "mode": "0666"}}) == [
        "control.mode: unknown key"
    ]


def test_a_control_socket_path_too_long_for_a_unix_socket() -> None:
    parse_config({"control": {"socket": "/" + "s" * 106}})  # 107 bytes: the most that fits
    (problem,) = problems_of({"control": {"socket": "/" + "s" * 107}})
    assert problem.startswith("control.socket: longer than 107 bytes")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("charger", "max_current_a", 6),  # J1772 minimum
        ("charger", "max_current_a", 80),  # J1772 maximum
        ("charger", "sample_rate_hz", 50),
        ("charger", "sample_rate_hz", 1000),
        ("contactor", "min_close_interval_ms", 0),
        ("hal.mock", "relay_delay_ms", 0),
        ("hal.mock", "relay_delay_ms", 1000),
        ("hal.mock", "deadman_timeout_ms", 10),
        ("hal.mock", "deadman_timeout_ms", 5000),
        ("hal.mock", "noise_mv", 300),
    ],
)
def test_range_limits_are_inclusive(section: str, key: str, value: float) -> None:
    parse_config(_nest(section, {key: value}))


# --- single problems -------------------------------------------------------------------------


def _nest(section: str, table: dict[str, Any]) -> dict[str, Any]:
    if section == "hal.mock":
        return {"hal": {"mock": table}}
    return {section: table}


def test_unknown_section() -> None:
    assert problems_of({"bogus": {"x": 1}}) == ["bogus: unknown section"]


@pytest.mark.parametrize(
    "section", ["hal", "hal.mock", "charger", "contactor", "plc", "paths", "log", "control"]
)
def test_unknown_key_in_each_section(section: str) -> None:
    assert problems_of(_nest(section, {"colour": "blue"})) == [f"{section}.colour: unknown key"]


@pytest.mark.parametrize(
    "section", ["hal", "charger", "contactor", "plc", "paths", "log", "control"]
)
def test_a_section_that_is_not_a_table(section: str) -> None:
    assert where(problems_of({section: 5})) == [section]


def test_hal_mock_that_is_not_a_table() -> None:
    assert where(problems_of({"hal": {"mock": "yes"}})) == ["hal.mock"]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        # bool where an integer or number is expected: TOML true is not 1
        ("charger", "sample_rate_hz", True),
        ("charger", "max_current_a", True),
        ("contactor", "min_close_interval_ms", False),
        ("hal.mock", "relay_delay_ms", True),
        ("hal.mock", "deadman_timeout_ms", True),
        ("hal.mock", "noise_mv", False),
        ("hal.mock", "seed", True),
        # string where a number is expected
        ("charger", "max_current_a", "32"),
        ("charger", "sample_rate_hz", "200"),
        ("contactor", "min_close_interval_ms", "10000"),
        ("hal.mock", "relay_delay_ms", "10"),
        # float where an integer is expected
        ("charger", "sample_rate_hz", 200.5),
        # NaN is not a number of amps
        ("charger", "max_current_a", float("nan")),
        # non-bool where a bool is expected
        ("charger", "ventilation", 1),
        ("charger", "ventilation", "yes"),
        ("hal.mock", "rcd_self_test", "true"),
        # non-string where a string is expected
        ("hal", "backend", 1),
        ("hal", "main_feedback", True),
        ("hal.mock", "rig_link", 5),
        ("paths", "state_dir", 5),
        ("log", "level", 3),
        ("control", "socket", 5),
    ],
)
def test_wrong_types_are_refused(section: str, key: str, value: Any) -> None:
    assert where(problems_of(_nest(section, {key: value}))) == [f"{section}.{key}"]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("charger", "max_current_a", 5.9),  # below J1772's 6 A
        ("charger", "max_current_a", 80.5),  # above J1772's 80 A
        ("charger", "max_current_a", 0),
        ("charger", "sample_rate_hz", 49),  # too slow for the 50 ms detection budget
        ("charger", "sample_rate_hz", 1001),
        ("contactor", "min_close_interval_ms", -1),
        ("contactor", "min_close_interval_ms", 3_600_001),
        ("hal.mock", "relay_delay_ms", -1),
        ("hal.mock", "relay_delay_ms", 1001),
        ("hal.mock", "deadman_timeout_ms", 9),
        ("hal.mock", "deadman_timeout_ms", 5001),
        ("hal.mock", "noise_mv", -0.5),
        ("hal.mock", "noise_mv", 301),
        ("hal.mock", "seed", -1),
    ],
)
def test_out_of_range_values_are_refused(section: str, key: str, value: float) -> None:
    (problem,) = problems_of(_nest(section, {key: value}))
    assert problem.startswith(f"{section}.{key}: must be between")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("hal", "backend", "arduino"),
        ("hal", "main_feedback", "sometimes"),
        ("hal", "discharge_feedback", "NORMALLY-OPEN"),
        ("log", "level", "loud"),
        ("paths", "state_dir", ""),
        ("paths", "state_dir", "   "),
        ("control", "socket", ""),
        ("hal.mock", "rig_link", ""),
        ("plc", "duty", "10%"),
        ("plc", "fallback", "maybe"),
        ("plc", "interface", "eth0/1"),
        ("plc", "interface", "a-very-long-ifname"),
        ("plc", "interface", "eth 1"),
        ("plc", "interface", ""),
    ],
)
def test_bad_string_values_are_refused(section: str, key: str, value: str) -> None:
    assert where(problems_of(_nest(section, {key: value}))) == [f"{section}.{key}"]


def test_backend_problem_names_the_choices() -> None:
    (problem,) = problems_of({"hal": {"backend": "arduino"}})
    assert "mock" in problem
    assert "rpi" in problem
    assert "arduino" in problem


# --- every problem at once -------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "hal": {
            "backend": "arduino",
            "led": True,
            "mock": {"relay_delay_ms": True, "noise_mv": 999, "warp": 9},
        },
        "charger": {"max_current_a": 100, "sample_rate_hz": "fast", "ventilation": 1},
        "contactor": {"min_close_interval_ms": -5},
        "paths": {"state_dir": ""},
        "log": {"level": "loud", "colour": "blue"},
        "extras": {},
        "zzz": 1,
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    problems = info.value.problems
    for problem in problems:
        assert PROBLEM.match(problem), problem
    assert sorted(where(problems)) == sorted(
        [
            "extras",
            "zzz",
            "hal.backend",
            "hal.led",
            "hal.mock.relay_delay_ms",
            "hal.mock.noise_mv",
            "hal.mock.warp",
            "charger.max_current_a",
            "charger.sample_rate_hz",
            "charger.ventilation",
            "contactor.min_close_interval_ms",
            "paths.state_dir",
            "log.level",
            "log.colour",
        ]
    )
    reasons = dict(problem.split(": ", 1) for problem in problems)
    assert reasons["extras"] == "unknown section"
    assert reasons["hal.led"] == "unknown key"
    assert reasons["hal.mock.warp"] == "unknown key"
    assert reasons["log.colour"] == "unknown key"
    assert reasons["hal.mock.noise_mv"].startswith("must be between")
    assert reasons["charger.max_current_a"].startswith("must be between")
    assert reasons["contactor.min_close_interval_ms"].startswith("must be between")
    # the exception's message carries them all too
    for problem in problems:
        assert problem in str(info.value)


# --- files -----------------------------------------------------------------------------------


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        '[hal]\nbackend = "rpi"\n\n[charger]\nmax_current_a = 16\nventilation = true\n',
        encoding="utf-8",
    )
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.board.backend == "rpi"
    assert config.charger.max_current_a == 16.0
    assert config.charger.ventilation is True
    assert config.source == path


def test_load_config_reports_problems_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[charger]\nmax_current_a = 100\nsample_rate_hz = true\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert sorted(where(info.value.problems)) == ["charger.max_current_a", "charger.sample_rate_hz"]


def _single_line_problem(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert "\n" not in problem
    assert str(path) in problem
    return problem


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read" in _single_line_problem(tmp_path / "nowhere.toml")


def test_a_directory_is_not_readable(tmp_path: Path) -> None:
    assert "cannot read" in _single_line_problem(tmp_path)


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[paths]\nstate_dir = "/tmp/\xe9t\xe9"\n')
    assert "cannot read" in _single_line_problem(path)


@pytest.mark.parametrize(
    "text",
    [
        "[charger\nmax_current_a = 16\n",
        "max_current_a 16\n",
        '[hal]\nbackend = "mock"\n[hal]\nbackend = "rpi"\n',  # duplicate table
        '[log]\nlevel = "info\n',  # unterminated string
    ],
)
def test_invalid_toml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    assert "not valid TOML" in _single_line_problem(path)


def test_plc_keys() -> None:
    from firmware.plc.config import PlcDuty, PlcFallback

    assert not parse_config({}).plc.enabled
    plc = parse_config(
        {
            "plc": {
                "interface": "eth1",
                "slac_init_timeout_s": 20,
                "duty": "5%",
                "fallback": "no-charging",
            }
        }
    ).plc
    assert plc.enabled and plc.interface == "eth1" and plc.slac_init_timeout_s == 20.0
    assert plc.duty is PlcDuty.FIVE_PCT and plc.fallback is PlcFallback.NO_CHARGING
    for bad in (0.1, 51):
        assert where(problems_of({"plc": {"slac_init_timeout_s": bad}})) == [
            "plc.slac_init_timeout_s"
        ]


def test_the_mock_plc_needs_the_mock_board() -> None:
    (problem,) = problems_of({"hal": {"backend": "rpi"}, "plc": {"interface": "mock"}})
    assert problem.startswith("plc.interface:") and "mock" in problem


def test_the_shipped_mock_config_loads() -> None:
    path = REPO_ROOT / "config" / "mock.toml"
    config = load_config(path)
    assert config.board.backend == "mock"
    assert config.board.mock.rig_link == ".state/rig"
    assert config.board.mock.relay_delay_ms == 10.0
    assert config.charger.max_current_a == 32.0
    assert config.plc.interface == "mock", "make run shows SLAC in its timeline"
    assert config.control_socket == Path(".state/control.sock")
    assert config.source == path


# --- [hal.rpi]: the reference board's wiring ---------------------------------------------------


def _rpi(table: Any) -> dict[str, Any]:
    return {"hal": {"rpi": table}}


def test_hal_rpi_defaults_are_the_reference_board() -> None:
    rpi = parse_config({}).board.rpi
    assert rpi == RpiSettings()
    assert parse_config(_rpi({})).board.rpi == rpi
    assert rpi.pwm_sysfs_root == "/sys/class/pwm"
    assert (rpi.pwm_device, rpi.pwm_channel) == ("fe20c000.pwm", 0)  # GPIO18 on a Pi 4
    assert (rpi.spi_bus, rpi.spi_device) == (0, 1), "CE1: the qca7000 overlay takes CE0"
    assert rpi.adc_chip is AdcChip.MCP3208
    assert (rpi.pilot_high_channel, rpi.pilot_low_channel, rpi.pp_channel) == (0, 1, 2)
    assert rpi.pilot_zero_pin is None and not rpi.supports_state_e
    assert rpi.safe_pilot is PilotDrive.STEADY_POSITIVE
    assert rpi.rcd_fault is RcdState.DC


RPI_TABLE: dict[str, Any] = {
    "pwm_sysfs_root": "/tmp/sys/class/pwm",
    "pwm_device": "1f00098000.pwm",
    "pwm_channel": 2,
    "pilot_inverted": True,
    "pilot_zero_pin": 26,
    "safe_pilot": "F",
    "spi_bus": 1,
    "spi_device": 0,
    "spi_max_speed_hz": 1_000_000,
    "adc_chip": "mcp3202",
    "adc_vref_mv": 5000,
    "pilot_high_channel": 1,
    "pilot_low_channel": 0,
    "pp_channel": "none",
    "pilot_high_offset_mv": 2500,
    "pilot_high_gain": 15.5,
    "pilot_low_offset_mv": 0,
    "pilot_low_gain": -4,
    "pp_pullup_ohm": 330,
    "pp_pullup_mv": 5000,
    "pp_open_ohm": 5000,
    "peak_reset_pin": 16,
    "peak_reset_us": 20,
    "main_relay_pin": 4,
    "discharge_relay_pin": 12,
    "main_feedback_pin": 19,
    "discharge_feedback_pin": 20,
    "feedback_active_high": True,
    "rcd_fault_pin": 21,
    "rcd_fault_active_high": False,
    "rcd_fault": "ac",
    "rcd_test_pin": 2,
    "deadman_pin": 3,
    "max_current_a": 16,
}


def test_hal_rpi_keys() -> None:
    rpi = parse_config(_rpi(RPI_TABLE)).board.rpi
    assert rpi == RpiSettings(
        pwm_sysfs_root="/tmp/sys/class/pwm",
        pwm_device="1f00098000.pwm",
        pwm_channel=2,
        pilot_inverted=True,
        pilot_zero_pin=26,
        safe_pilot=PilotDrive.STEADY_NEGATIVE,
        spi_bus=1,
        spi_device=0,
        spi_max_speed_hz=1_000_000,
        adc_chip=AdcChip.MCP3202,
        adc_vref_mv=5000.0,
        pilot_high_channel=1,
        pilot_low_channel=0,
        pp_channel=None,
        pilot_high_offset_mv=2500.0,
        pilot_high_gain=15.5,
        pilot_low_offset_mv=0.0,
        pilot_low_gain=-4.0,
        pp_pullup_ohm=330.0,
        pp_pullup_mv=5000.0,
        pp_open_ohm=5000.0,
        peak_reset_pin=16,
        peak_reset_us=20,
        main_relay_pin=4,
        discharge_relay_pin=12,
        main_feedback_pin=19,
        discharge_feedback_pin=20,
        feedback_active_high=True,
        rcd_fault_pin=21,
        rcd_fault_active_high=False,
        rcd_fault=RcdState.AC,
        rcd_test_pin=2,
        deadman_pin=3,
        max_current_a=16.0,
    )
    assert rpi.supports_state_e


@pytest.mark.parametrize(
    "table",
    [
        {"pwm_channel": 0},
        {"pwm_channel": 15},
        {"spi_max_speed_hz": 10_000},
        {"spi_max_speed_hz": 2_000_000},
        {"peak_reset_us": 1},
        {"peak_reset_us": 1000},
        {"pilot_high_gain": -100},
        {"pilot_low_gain": 100},
        {"adc_vref_mv": 1000},
        {"adc_vref_mv": 5500},
        {"deadman_pin": 27, "discharge_relay_pin": 26},  # the header's last GPIO
        {"max_current_a": 6},
        {"max_current_a": 80},
    ],
)
def test_hal_rpi_range_limits_are_inclusive(table: dict[str, Any]) -> None:
    parse_config(_rpi(table))


def test_hal_rpi_unknown_key_and_not_a_table() -> None:
    assert problems_of(_rpi({"colour": "blue"})) == ["hal.rpi.colour: unknown key"]
    assert where(problems_of(_rpi("yes"))) == ["hal.rpi"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("main_relay_pin", True),
        ("main_relay_pin", "17"),
        ("main_relay_pin", 17.0),
        ("pp_channel", 2.0),
        ("pp_channel", "two"),
        ("pilot_zero_pin", False),
        ("pilot_inverted", 1),
        ("feedback_active_high", "no"),
        ("pwm_device", 5),
        ("pilot_high_gain", "10"),
        ("adc_vref_mv", True),
    ],
)
def test_hal_rpi_wrong_types_are_refused(key: str, value: Any) -> None:
    assert where(problems_of(_rpi({key: value}))) == [f"hal.rpi.{key}"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("main_relay_pin", 28),  # the 40-pin header ends at GPIO27
        ("main_relay_pin", -1),
        ("pilot_zero_pin", 28),
        ("pwm_channel", 16),
        ("spi_device", 3),
        ("spi_max_speed_hz", 2_000_001),
        ("pilot_low_channel", 8),
        ("pp_channel", 8),
        ("peak_reset_us", 0),
        ("adc_vref_mv", 999),
        ("pilot_high_gain", 100.5),
        ("pp_pullup_ohm", 99),
        ("max_current_a", 80.5),
    ],
)
def test_hal_rpi_out_of_range_values_are_refused(key: str, value: float) -> None:
    (problem,) = problems_of(_rpi({key: value}))
    assert problem.startswith(f"hal.rpi.{key}: must be between")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("safe_pilot", "-12V"),
        ("safe_pilot", "x1"),
        ("adc_chip", "mcp3008"),
        ("rcd_fault", "none"),
        ("pwm_device", ""),
        ("pwm_sysfs_root", "  "),
    ],
)
def test_hal_rpi_bad_strings_are_refused(key: str, value: str) -> None:
    assert where(problems_of(_rpi({key: value}))) == [f"hal.rpi.{key}"]


def test_hal_rpi_a_gain_of_zero_is_refused() -> None:
    assert problems_of(_rpi({"pilot_low_gain": 0})) == ["hal.rpi.pilot_low_gain: must not be 0"]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            {"discharge_relay_pin": 17},
            "hal.rpi.discharge_relay_pin: GPIO17 is already main_relay_pin",
        ),
        ({"pilot_zero_pin": 25}, "hal.rpi.pilot_zero_pin: GPIO25 is already peak_reset_pin"),
        ({"rcd_fault_pin": 22}, "hal.rpi.rcd_fault_pin: GPIO22 is already main_feedback_pin"),
        ({"deadman_pin": 18}, "hal.rpi.deadman_pin: GPIO18 is the pilot PWM"),
        ({"rcd_test_pin": 8}, "hal.rpi.rcd_test_pin: GPIO8 is SPI0 CE0"),
        ({"main_feedback_pin": 0}, "hal.rpi.main_feedback_pin: GPIO0 is the HAT ID EEPROM"),
        ({"adc_chip": "mcp3202"}, "hal.rpi.pp_channel: mcp3202 has channels 0..1"),
        ({"pp_channel": 0}, "hal.rpi.pp_channel: channel 0 is already pilot_high_channel"),
    ],
)
def test_hal_rpi_wiring_conflicts(table: dict[str, Any], problem: str) -> None:
    assert problems_of(_rpi(table)) == [problem]


def test_hal_rpi_a_refused_value_is_not_echoed_as_a_conflict() -> None:
    # main_relay_pin falls back to its default 17, which discharge_relay_pin also names
    problems = problems_of(_rpi({"main_relay_pin": 40, "discharge_relay_pin": 17}))
    assert where(problems) == ["hal.rpi.main_relay_pin"]


def test_hal_rpi_every_problem_at_once() -> None:
    table = {"pwm_channel": -1, "safe_pilot": "E", "pp_channel": "two", "led_pin": 4}
    assert sorted(where(problems_of({"hal": {"backend": "rpi", "rpi": table}}))) == [
        "hal.rpi.led_pin",
        "hal.rpi.pp_channel",
        "hal.rpi.pwm_channel",
        "hal.rpi.safe_pilot",
    ]


def test_the_shipped_reference_board_config_loads() -> None:
    path = REPO_ROOT / "config" / "reference-board.toml"
    config = load_config(path)
    assert config.board.backend == "rpi"
    assert config.board.rpi == RpiSettings(), "the file spells out the reference board"
    assert config.source == path


def test_every_hal_rpi_key_in_the_shipped_config_says_what_it_is() -> None:
    text = (REPO_ROOT / "config" / "reference-board.toml").read_text(encoding="utf-8")
    section = text.split("[hal.rpi]", 1)[1].split("\n[", 1)[0]
    keys = [line for line in section.splitlines() if line and not line.startswith("#")]
    assert {line.split("=")[0].strip() for line in keys} | {"pilot_zero_pin"} == set(
        RpiSettings.__dataclass_fields__
    )
    for line in keys:
        assert "#" in line, f"no comment: {line}"


@pytest.mark.parametrize("name", ["eth'0", 'eth"0', "eth\\0", "eth\x7f"])
def test_plc_and_bridge_interfaces_share_one_name_rule(name: str) -> None:
    """[plc] interface once had a looser validator than [bridge]: a name the bridge would
    refuse to quote in its ruleset must be refused in both places."""
    with pytest.raises(ConfigError) as info:
        parse_config({"plc": {"interface": name}, "bridge": {"plc_interface": name}})
    assert sorted(p.split(":")[0] for p in info.value.problems) == [
        "bridge.plc_interface",
        "plc.interface",
    ]


def test_each_section_is_read_by_the_package_it_configures() -> None:
    from firmware.daemon.config import SECTIONS

    owners = {name: read.__module__ for name, (_field, read) in SECTIONS.items()}
    assert owners == {
        "hal": "firmware.safety.config",  # the safety side owns the board; hal imports no firmware
        "charger": "firmware.charger.config",
        "contactor": "firmware.charger.config",
        "plc": "firmware.plc.config",
        "tls": "firmware.sep2.config",
        "sep2": "firmware.sep2.config",
        "site": "firmware.sep2.config",
        "j3072": "firmware.j3072.config",
        "approvals": "firmware.approvals.config",
        "bridge": "firmware.net.config",
        "ocpp": "firmware.ocpp.config",
        "meter": "firmware.meter.config",
        "paths": "firmware.daemon.config",
        "log": "firmware.daemon.config",
        "control": "firmware.daemon.config",
        "clock": "firmware.clock.config",
    }
