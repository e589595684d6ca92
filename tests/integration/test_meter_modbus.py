"""The Modbus meter backends against a real Modbus server: pymodbus's own server (its
SimDevice datastore) serving each register map, over loopback TCP and over Modbus RTU on a
pseudo-terminal pair with an RS-485 line between (``hil.meter.line``) that takes the baud
rate's time and can garble or drop answers. Timeouts, exception responses, CRC errors, a
server that stops answering, and a map that does not fit the meter."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from hal.meter import Meter, MeterSettings, load_map, open_meter
from hil.meter.line import SerialLine
from hil.meter.server import SimulatedMeter

pytestmark = pytest.mark.integration

MAPS = ("sdm630", "sdm230", "abb-b23")
FAST: dict[str, Any] = {"timeout_ms": 100.0, "poll_ms": 50.0, "stale_ms": 400.0, "recover_polls": 3,
        "max_current_a": 32.0}  # fmt: skip


def eventually(check: Callable[[], bool], within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@dataclass
class Bench:
    meter: Meter
    sim: SimulatedMeter
    line: SerialLine | None

    def health(self) -> tuple[bool, str]:
        health = self.meter.health(time.monotonic_ns())
        return health.healthy, health.reason

    def errors(self) -> dict[str, int]:
        result: dict[str, int] = self.meter.stats()["bus_errors"]
        return result


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Callable[..., Bench]]:
    made: list[Bench] = []

    def make(transport: str, map_name: str, server_map: str | None = None,
             baudrate: int | None = 19200, echo: bool = False) -> Bench:  # fmt: skip
        sim = SimulatedMeter(load_map(server_map or map_name))
        line = None
        if transport == "tcp":
            port = sim.serve_tcp()
            settings = MeterSettings(
                backend="modbus-tcp", map=map_name, host="127.0.0.1", tcp_port=port, **FAST
            )
        else:
            line = SerialLine(baudrate, echo=echo)
            sim.serve_rtu(line.server_device, baudrate or 19200)
            port_path = line.link(tmp_path / f"ttyMETER{len(made)}")
            settings = MeterSettings(
                backend=f"modbus-{transport}",
                map=map_name,
                port=str(port_path),
                baudrate=baudrate or 19200,
                local_echo=echo,
                **FAST,
            )
        meter = open_meter(settings, "mock", lambda: None)
        meter.start()
        meter.watch_closely(True)
        made.append(Bench(meter, sim, line))
        return made[-1]

    yield make
    for b in made:
        b.meter.close()
        b.sim.stop()
        if b.line is not None:
            b.line.close()


@pytest.mark.parametrize("transport", ["rtu", "tcp"])
@pytest.mark.parametrize("map_name", MAPS)
def test_each_map_reads_every_quantity_in_our_units_and_sign(
    bench: Callable[..., Bench], transport: str, map_name: str
) -> None:
    b = bench(transport, map_name)
    b.sim.set(power_w=-3250.0, import_wh=12_345_670.0, export_wh=456_780.0,
              frequency_hz=59.98, voltage_v=238.5)  # fmt: skip
    assert eventually(lambda: b.health()[0]), b.health()
    assert eventually(lambda: (r := b.meter.latest()) is not None and r.power_w < -3000)
    reading = b.meter.latest()
    assert reading is not None
    assert reading.power_w == pytest.approx(-3250.0, abs=0.01), "charging: import, negative"
    assert reading.voltage_v == pytest.approx(238.5, abs=0.11)
    assert reading.frequency_hz == pytest.approx(59.98, abs=0.01)
    # float32 kWh holds 7 digits: 12,345.67 kWh to within 1 Wh; ABB's 0.01 kWh exactly
    assert reading.import_wh == pytest.approx(12_345_670.0, abs=1.0)
    assert reading.export_wh == pytest.approx(456_780.0, abs=1.0)
    b.sim.set(power_w=4000.0)  # discharge: export, positive
    assert eventually(lambda: (r := b.meter.latest()) is not None and r.power_w > 3999)
    stats = b.meter.stats()
    assert stats["rate"] == "fast" and 40 <= stats["interval_ms"]["p50"] <= 100
    assert stats["bus_errors"] == dict.fromkeys(stats["bus_errors"], 0)


@pytest.mark.parametrize("transport", ["rtu", "tcp"])
def test_exception_responses_are_unhealthy_at_once_and_good_answers_recover(
    bench: Callable[..., Bench], transport: str
) -> None:
    b = bench(transport, "sdm630")
    assert eventually(lambda: b.health()[0])
    b.sim.exception = ExcCodes.DEVICE_FAILURE
    assert eventually(lambda: not b.health()[0], 2)
    assert "exception 4 (server device failure)" in b.health()[1]
    assert b.errors()["exception"] >= 1
    b.sim.exception = None
    assert eventually(lambda: b.health()[0], 3), "three good readings in a row"


@pytest.mark.parametrize("transport", ["rtu", "tcp"])
def test_a_map_that_does_not_fit_the_meter_is_unhealthy_with_illegal_address(
    bench: Callable[..., Bench], transport: str
) -> None:
    """An ABB map against an Eastron meter: the server refuses registers it does not have."""
    b = bench(transport, "abb-b23", server_map="sdm630")
    assert eventually(lambda: "exception 2 (illegal data address)" in b.health()[1], 3)
    assert b.meter.latest() is None


@pytest.mark.parametrize("transport", ["rtu", "tcp"])
def test_a_server_that_stops_answering_goes_stale_then_recovers(
    bench: Callable[..., Bench], transport: str
) -> None:
    b = bench(transport, "sdm230")
    assert eventually(lambda: b.health()[0])
    b.sim.silent = True
    silent_at = time.monotonic()
    assert eventually(lambda: not b.health()[0], 3)
    after_s = time.monotonic() - silent_at
    assert 0.25 <= after_s <= 1.5, f"unhealthy {after_s:.2f} s after the meter fell silent"
    assert "no good reading for" in b.health()[1] and "timeout: no answer" in b.health()[1]
    assert b.errors()["timeout"] >= 2
    b.sim.silent = False
    assert eventually(lambda: b.health()[0], 5)


def test_rtu_crc_errors_are_counted_and_only_a_run_of_them_is_unhealthy(
    bench: Callable[..., Bench],
) -> None:
    b = bench("rtu", "sdm630")
    assert b.line is not None
    assert eventually(lambda: b.health()[0])
    b.line.garble(1)
    assert eventually(lambda: b.errors()["crc"] == 1, 2)
    time.sleep(0.3)
    assert b.health()[0], "one garbled answer is noise on the bus, not a dead meter"
    b.line.garble(20)  # 1 s of polls, over the 400 ms allowed
    assert eventually(lambda: not b.health()[0], 3)
    assert "crc: a garbled answer" in b.health()[1]
    assert eventually(lambda: b.health()[0], 6), "answers good again"


def test_rtu_a_cut_line_is_a_timeout(bench: Callable[..., Bench]) -> None:
    b = bench("rtu", "abb-b23")
    assert b.line is not None
    assert eventually(lambda: b.health()[0])
    b.line.drop = True
    assert eventually(lambda: not b.health()[0], 3)
    assert b.errors()["timeout"] >= 1 and b.errors()["crc"] == 0
    b.line.drop = False
    assert eventually(lambda: b.health()[0], 5)


def test_rtu_local_echo_is_dropped_before_the_answer(bench: Callable[..., Bench]) -> None:
    """The reference HAT's transceiver echoes each request back to the Pi (docs/hardware.md):
    with ``local_echo`` the echo is neither an answer nor a garbled one. A cut line beyond
    the transceiver still echoes, and is a timeout, not a CRC error."""
    b = bench("rtu", "sdm630", baudrate=9600, echo=True)
    assert b.line is not None
    b.sim.set(power_w=2500.0)
    assert eventually(lambda: b.health()[0]), b.health()
    assert eventually(lambda: (r := b.meter.latest()) is not None and r.power_w > 2499)
    assert b.errors() == dict.fromkeys(b.errors(), 0)
    b.line.drop = True
    assert eventually(lambda: not b.health()[0], 3)
    assert b.errors()["timeout"] >= 1 and b.errors()["crc"] == 0, b.errors()
    b.line.drop = False
    b.line.garble(1)
    assert eventually(lambda: b.errors()["crc"] == 1, 3), b.errors()


def test_tcp_a_meter_that_is_gone_is_a_connection_error(bench: Callable[..., Bench]) -> None:
    b = bench("tcp", "sdm630")
    assert eventually(lambda: b.health()[0])
    b.sim.stop()
    assert eventually(lambda: not b.health()[0], 3)
    assert eventually(lambda: b.errors()["connection"] >= 1, 3), b.errors()


def test_an_implausible_power_is_refused_and_never_published(
    bench: Callable[..., Bench],
) -> None:
    b = bench("tcp", "sdm630")
    b.sim.set(power_w=2000.0)
    assert eventually(lambda: b.health()[0])
    b.sim.set(power_w=250_000.0)  # a 32 A, 240 V circuit cannot carry 250 kW
    assert eventually(lambda: not b.health()[0], 2)
    assert "power 250000 W beyond the circuit's 9600 W" in b.health()[1]
    latest = b.meter.latest()
    assert latest is not None and latest.power_w == pytest.approx(2000.0)
    assert b.errors()["implausible"] >= 1


def test_a_failure_no_rule_foresaw_is_counted_and_the_poll_thread_goes_on(
    bench: Callable[..., Bench],
) -> None:
    """Whatever the library raises, the poll thread outlives it: counted as ``failed``,
    logged once, and the meter trusted again once the answers are good."""
    b = bench("tcp", "sdm630")
    assert eventually(lambda: b.health()[0])
    bus: Any = b.meter._bus  # type: ignore[attr-defined]
    real_read, failures = bus.read, [0]

    def read(function: int, address: int, count: int) -> list[int]:
        if failures[0] < 20:
            failures[0] += 1
            raise struct.error("unpack requires a buffer of 4 bytes")
        result: list[int] = real_read(function, address, count)
        return result

    bus.read = read
    assert eventually(lambda: not b.health()[0], 3)
    assert "failed: error: unpack requires" in b.health()[1]
    assert eventually(lambda: b.health()[0], 5), "the thread polled on"
    assert b.errors()["failed"] == 20


class ClockSteppedBack:
    """Stands in for the ``time`` module where pymodbus reads the system clock: the first
    reading is true, every later one is ``step_s`` behind (NTP stepped the clock back during
    the read). ``sleep`` and ``monotonic`` are the real ones."""

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.calls = 0
        self.sleep, self.monotonic = time.sleep, time.monotonic

    def time(self) -> float:
        self.calls += 1
        return time.time() - (self.step_s if self.calls > 1 else 0.0)


@pytest.mark.parametrize("transport", ["rtu", "tcp"])
def test_a_clock_stepped_back_during_a_read_does_not_lengthen_it(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A silent meter, a 200 ms timeout, the system clock stepped back 10 s during the wait:
    the read still ends after about 200 ms (pymodbus's serial wait alone took 10.2 s)."""
    import pymodbus.client.serial
    import pymodbus.client.tcp

    from hal.meter.modbus import ModbusBus
    from hal.meter.poller import BusFault

    sim, line = SimulatedMeter(load_map("sdm630")), None
    if transport == "rtu":
        line = SerialLine(9600)
        line.drop = True
        settings = MeterSettings(backend="modbus-rtu", port=line.client_device, timeout_ms=200)
    else:
        sim.silent = True
        settings = MeterSettings(backend="modbus-tcp", host="127.0.0.1",
                                 tcp_port=sim.serve_tcp(), timeout_ms=200)  # fmt: skip
    bus = ModbusBus(settings)
    assert bus.client.connect(), "connected before the step"
    stepped = ClockSteppedBack(10.0)
    module = pymodbus.client.serial if transport == "rtu" else pymodbus.client.tcp
    monkeypatch.setattr(module, "time", stepped)
    start = time.monotonic()
    with pytest.raises(BusFault) as fault:
        bus.read(4, 0x34, 2)
    took_s = time.monotonic() - start
    bus.close()
    sim.stop()
    if line is not None:
        line.close()
    assert fault.value.kind.value == "timeout"
    assert took_s < 2.0, f"the read took {took_s:.2f} s with the clock stepped back 10 s"


# Raw register words written by hand from the vendors' tables (IEEE 754 float32 big-endian
# for Eastron, fixed-resolution integers for ABB), served as they are: a map with a wrong
# address, type, scale, word order or sign reads something else.
SDM_WORDS = {0x0000: 0x4366, 0x0001: 0x199A,  # 230.1 V
             0x0046: 0x4248, 0x0047: 0x0000,  # 50.0 Hz
             0x0048: 0x4148, 0x0049: 0x0000,  # import 12.5 kWh
             0x004A: 0x4050, 0x004B: 0x0000}  # export 3.25 kWh  # fmt: skip
HAND_WRITTEN: dict[str, tuple[int, dict[int, int], float]] = {
    # map: (function, words, our power: export positive)
    "sdm630": (4, {**SDM_WORDS, 0x0034: 0x44BB, 0x0035: 0x8000}, -1500.0),  # 1500 W import
    "sdm230": (4, {**SDM_WORDS, 0x000C: 0x44BB, 0x000D: 0x8000}, -1500.0),
    "abb-b23": (3, {0x5B00: 0x0000, 0x5B01: 0x08FD,  # 2301 x 0.1 V
                    0x5B14: 0xFFFC, 0x5B15: 0xF2C0,  # -200000 x 0.01 W: 2000 W exported
                    0x5B2C: 0x1388,  # 5000 x 0.01 Hz
                    0x5000: 0, 0x5001: 0, 0x5002: 0, 0x5003: 0x04E2,  # 1250 x 0.01 kWh
                    0x5004: 0, 0x5005: 0, 0x5006: 0, 0x5007: 0x0145}, 2000.0),  # 325 x 0.01
}  # fmt: skip


@pytest.mark.parametrize("map_name", MAPS)
def test_each_map_reads_a_meter_s_hand_written_registers(map_name: str) -> None:
    function, words, power_w = HAND_WRITTEN[map_name]
    sim = SimulatedMeter(load_map(map_name), words=words, function=function)
    settings = MeterSettings(backend="modbus-tcp", map=map_name, host="127.0.0.1",
                             tcp_port=sim.serve_tcp(), **FAST)  # fmt: skip
    meter = open_meter(settings, "mock", lambda: None)
    meter.start()
    meter.watch_closely(True)
    try:
        assert eventually(lambda: meter.latest() is not None), meter.health(time.monotonic_ns())
        reading = meter.latest()
        assert reading is not None
        assert reading.power_w == pytest.approx(power_w)
        assert reading.voltage_v == pytest.approx(230.1, abs=1e-4)
        assert reading.frequency_hz == pytest.approx(50.0)
        assert (reading.import_wh, reading.export_wh) == pytest.approx((12_500.0, 3_250.0))
    finally:
        meter.close()
        sim.stop()
