"""The ``[meter]`` section: its defaults, a Modbus meter read whole, and each bad value one
``meter.key: why`` line that refuses the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware.daemon.config import load_config, parse_config
from firmware.errors import ConfigError
from hal.meter import MeterSettings

REPO_ROOT = Path(__file__).resolve().parents[2]


def problems_of(meter: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config({"meter": meter})
    return info.value.problems


def test_the_default_is_the_board_s_own_meter() -> None:
    assert parse_config({}).meter == MeterSettings()
    assert MeterSettings().backend == "board"


def test_a_modbus_rtu_meter_read_whole() -> None:
    meter = parse_config({"meter": {
        "backend": "modbus-rtu", "map": "abb-b23", "device_id": 7, "port": "/dev/ttyUSB0",
        "baudrate": 19200, "parity": "E", "stopbits": 2, "timeout_ms": 150, "poll_ms": 50,
        "idle_poll_ms": 2000, "stale_ms": 300, "recover_polls": 5, "frozen_s": 0,
        "phases": 3, "nominal_voltage_v": 230, "local_echo": True}}).meter  # fmt: skip
    assert meter == MeterSettings(backend="modbus-rtu", map="abb-b23", device_id=7,
                                  port="/dev/ttyUSB0", baudrate=19200, parity="E", stopbits=2,
                                  timeout_ms=150, poll_ms=50, idle_poll_ms=2000, stale_ms=300,
                                  recover_polls=5, frozen_s=0, phases=3,
                                  nominal_voltage_v=230, local_echo=True)  # fmt: skip
    assert meter.max_power_w == 80 * 230 * 3 * 1.25  # before the charger's rating is set


def test_the_reference_board_enables_an_sdm630_on_uart0() -> None:
    meter = load_config(REPO_ROOT / "config" / "reference-board.toml").meter
    assert (meter.backend, meter.map, meter.port) == ("modbus-rtu", "sdm630", "/dev/ttyAMA0")
    assert meter.local_echo, "the HAT's auto-direction transceiver hears its own request"


@pytest.mark.parametrize(
    ("meter", "problem"),
    [
        ({"backend": "dlms"}, "meter.backend: must be one of board, modbus-rtu, modbus-tcp"),
        ({"backend": "modbus-tcp"}, 'meter.host: needed with backend = "modbus-tcp"'),
        ({"backend": "modbus-rtu", "map": "sdm9999"}, "meter.map: "),
        ({"baudrate": 14400}, "meter.baudrate: must be one of 1200, 2400"),
        ({"parity": "M"}, "meter.parity: must be one of N, E, O"),
        ({"poll_ms": 250}, "meter.poll_ms: must be between 10 and 100"),
        ({"backend": "modbus-rtu", "poll_ms": 100, "stale_ms": 150},
         "meter.stale_ms: must be at least twice poll_ms"),
        ({"stale_ms": 5000}, "meter.stale_ms: must be between 100 and 1000"),
        ({"device_id": 0}, "meter.device_id: must be between 1 and 247"),
        ({"backend": "modbus-rtu", "baudrate": 4800},
         "meter.baudrate: at 4800 baud one poll of Eastron SDM630 takes 117 ms on the wire, "
         "more than poll_ms 100; set the meter faster"),
        ({"backend": "modbus-rtu", "baudrate": 1200, "poll_ms": 100, "timeout_ms": 150},
         "meter.timeout_ms: 150 ms is less than one read's 267 ms on the wire at 1200 baud"),
        ({"backend": "modbus-rtu", "map": "abb-b23", "baudrate": 9600, "parity": "E",
          "stopbits": 2, "poll_ms": 60, "stale_ms": 200},
         "meter.baudrate: at 9600 baud one poll of ABB B23/B24 takes 75 ms"),
        ({"backend": "modbus-tcp", "host": "m", "recover_polls": 30, "stale_ms": 600},
         "meter.recover_polls: one lost answer would leave the meter untrusted for 3600 ms "
         "(stale_ms + recover_polls x poll_ms); at most 2000 ms"),
        ({"local_echo": "yes"}, "meter.local_echo: "),
        ({"speed": 9600}, "meter.speed: unknown key"),
    ],
)  # fmt: skip
def test_a_bad_meter_value_is_one_line(meter: dict[str, Any], problem: str) -> None:
    found = problems_of(meter)
    assert any(p.startswith(problem) for p in found), found
    assert all("\n" not in p for p in found)


def test_a_lab_map_that_is_broken_is_refused_with_its_file_and_key(tmp_path: Path) -> None:
    lab = tmp_path / "lab.toml"
    lab.write_text('name = "Lab"\nfunction = "coils"\n')
    (problem,) = problems_of({"backend": "modbus-rtu", "map": str(lab)})
    assert problem == (f"meter.map: {lab}: function: must be one of input, holding; "
                       "got 'coils'")  # fmt: skip
