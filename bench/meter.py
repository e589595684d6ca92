"""``make bench-meter``: the energy meter's poll loop, and its effect on the interlock.

1. The poll loop: the Modbus RTU backend polls pymodbus's own server playing an Eastron
   SDM630 across an RS-485 line between two pseudo-terminal pairs (``hil.meter.line``). A
   pty has no baud timing, so the line holds every frame for the time its characters take
   at the baud rate (10 bits a character, 8N1) plus the 3.5-character frame gap, on one
   half-duplex line. At 9600 and 19200 baud, at the fast rate (main closed, 100 ms), it
   reports the achieved poll interval and the time from a poll's start to the power's
   answer, p50/p99/max, and the bus errors.
2. The interlock: the real daemon on the mock board, its main contactor opened by C->B,
   unplug and fault stimuli on the virtual rig (``WAIT:RELAY MAIN,OPEN`` on the rig's
   clock, relay delay included), once with the board's meter and once with the Modbus meter
   polling at 10 Hz over the 9600-baud line. The poll must change nothing; those stimuli are
   the safety process's, so this shows that by construction. At the end of the polled run
   the daemon's own status must show the meter healthy, at the fast rate, without errors.
3. What the poll thread could delay, in the gatekeeper's process: the asyncio loop's lag
   (a 10 ms sleep's overshoot) with and without a meter polling at the fast rate beside it;
   and the meter-driven path, register change -> main contacts open (the real daemon, the
   simulated meter showing 1500 W of discharge with nothing authorized) at 9600 and 19200
   baud: the poll, the loop's check and the interlock in series.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.interlock import EVENTS, _charge, percentile
from hal.meter import Meter, MeterSettings, load_map, open_meter
from hil.firmware_process import Daemon, toml_dumps
from hil.meter.line import SerialLine
from hil.meter.server import SimulatedMeter
from hil.rig import Rig, wait_for_rig

BAUDRATES = (9600, 19200)
POLL_MS = 100.0


@contextlib.contextmanager
def polling_meter(baudrate: int) -> Iterator[Meter]:
    """The Modbus RTU meter polling at the fast rate, against pymodbus's server playing an
    SDM630 across the line at ``baudrate``; all three closed on the way out."""
    line = SerialLine(baudrate)
    sim = SimulatedMeter(load_map("sdm630"))
    try:
        sim.serve_rtu(line.server_device, baudrate)
        settings = MeterSettings(backend="modbus-rtu", map="sdm630", port=line.client_device,
                                 baudrate=baudrate, poll_ms=POLL_MS, max_current_a=32)  # fmt: skip
        meter = open_meter(settings, "mock", lambda: None)
        try:
            meter.start()
            meter.watch_closely(True)
            yield meter
        finally:
            meter.close()
    finally:
        sim.stop()
        line.close()


def poll_loop(baudrate: int, seconds: float) -> dict[str, Any]:
    """The fast poll over the line for ``seconds``; its stats at the end."""
    with polling_meter(baudrate) as meter:
        time.sleep(seconds)
        stats = meter.stats()
        stats["healthy"] = meter.health(time.monotonic_ns()).healthy
        return stats


def loop_lag(seconds: float, baudrate: int | None) -> list[float]:
    """The asyncio loop's lag (ms a 10 ms sleep overshoots) for ``seconds``, with a meter
    polling at the fast rate over the line at ``baudrate`` beside it (None: no meter)."""

    async def measure() -> list[float]:
        lags, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append((time.monotonic() - start - 0.01) * 1000)
        return lags

    if baudrate is None:
        return asyncio.run(measure())
    with polling_meter(baudrate) as meter:
        lags = asyncio.run(measure())
        if not meter.health(time.monotonic_ns()).healthy:
            raise SystemExit("bench-meter: the meter was not healthy during the loop-lag run")
        return lags


def daemon_status(config: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "firmware", "status", "--json", "--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def meter_opens_main(workdir: Path, baudrate: int, events: int) -> tuple[list[float], Any]:
    """Register change (1500 W of discharge, nothing authorized) -> main contacts open, in
    ms on the wall clock, ``events`` times; and the daemon's meter status at the end."""
    line, sim = SerialLine(baudrate), SimulatedMeter(load_map("sdm630"))
    sim.serve_rtu(line.server_device, baudrate)
    port = line.link(workdir / "ttyMETER")
    modbus = {"backend": "modbus-rtu", "map": "sdm630", "port": str(port), "baudrate": baudrate}
    config, daemon, rig = _start(workdir, modbus)
    try:
        latencies, shown = [], None
        for index in range(events):
            _charge(rig)
            if index == events - 1:
                time.sleep(1.0)  # a second at the fast rate, main closed
                shown = daemon_status(config)["meter"]
            start = time.monotonic()
            sim.set(power_w=1500.0)
            rig.wait_relay("MAIN", "OPEN", 3000)
            latencies.append((time.monotonic() - start) * 1000)
            sim.set(power_w=-3000.0)  # charging again; the latched fault clears at A
            rig.command("EV:STATE A")
            rig.wait_duty(100, 100, 2000)
            time.sleep(0.05)
        return latencies, shown
    finally:
        rig.close()
        daemon.stop()
        sim.stop()
        line.close()


def _start(workdir: Path, meter: dict[str, Any] | None) -> tuple[Path, Daemon, Rig]:
    config: dict[str, Any] = {
        "hal": {"backend": "mock", "mock": {"rig_link": str(workdir / "rig")}},
        "charger": {"max_current_a": 32, "sample_rate_hz": 400},
        "contactor": {"min_close_interval_ms": 100, "discharge_min_close_interval_ms": 100},
        "paths": {"state_dir": str(workdir / "state")},
        "log": {"level": "warning"},
    }
    if meter is not None:
        config["meter"] = meter
    path = workdir / "bench.toml"
    path.write_text(toml_dumps(config))
    daemon = Daemon(path)
    deadline = time.monotonic() + 20
    while not (workdir / "rig").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path, daemon, wait_for_rig(str(workdir / "rig"))


def interlock(workdir: Path, meter: dict[str, Any] | None, events: int) -> tuple[list[float], Any]:
    """Main-open latencies (ms, rig clock) of ``events`` stimuli with the daemon running,
    and the daemon's meter status at the end."""
    path, daemon, rig = _start(workdir, meter)
    try:
        latencies, shown = [], None
        for index in range(events):
            _name, stimulus, recovery = EVENTS[index % len(EVENTS)]
            _charge(rig)
            if index == events - 1 and meter is not None:
                time.sleep(1.0)  # a second at the fast rate, main closed
                shown = daemon_status(path)["meter"]
            for command in stimulus:
                rig.command(command)
            latencies.append(rig.wait_relay("MAIN", "OPEN", 1000) / 1000)
            for command in recovery:
                rig.command(command)
            if recovery:
                rig.wait_duty(100, 100, 2000)
                time.sleep(0.05)
        return latencies, shown
    finally:
        rig.close()
        daemon.stop()


def _row(name: str, values: list[float]) -> str:
    return (f"  {name:<34} {len(values):>5} {percentile(values, 50):>8.2f} "
            f"{percentile(values, 99):>8.2f} {max(values):>8.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.meter", description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="poll time per baud rate")
    parser.add_argument("--events", type=int, default=120, help="interlock events per run")
    args = parser.parse_args(argv)
    print(f"meter poll loop: Modbus RTU, SDM630 map, pymodbus server over a pty line with "
          f"bus timing, target {POLL_MS:g} ms (main closed), {args.seconds:g} s each")  # fmt: skip
    print(f"  {'baud':>6} {'polls':>6} {'interval p50':>13} {'p99':>7} {'max':>7}   "
          f"{'answer p50':>10} {'p99':>7} {'max':>7}   errors")  # fmt: skip
    ok = True
    for baudrate in BAUDRATES:
        s = poll_loop(baudrate, args.seconds)
        i, a = s["interval_ms"], s["power_answer_ms"]
        errors = sum(s["bus_errors"].values())
        print(f"  {baudrate:>6} {s['polls']:>6} {i['p50']:>13} {i['p99']:>7} {i['max']:>7}   "
              f"{a['p50']:>10} {a['p99']:>7} {a['max']:>7}   {errors}")  # fmt: skip
        ok = ok and s["healthy"] and i["p99"] is not None and i["p99"] <= POLL_MS * 1.2
    with tempfile.TemporaryDirectory(prefix="bench-meter-") as tmp:
        line = SerialLine(9600)
        sim = SimulatedMeter(load_map("sdm630"))
        sim.serve_rtu(line.server_device, 9600)
        port = line.link(Path(tmp) / "ttyMETER")
        modbus = {"backend": "modbus-rtu", "map": "sdm630", "port": str(port), "baudrate": 9600}
        try:
            base_dir, meter_dir = Path(tmp) / "board", Path(tmp) / "modbus"
            base_dir.mkdir()
            meter_dir.mkdir()
            without, _ = interlock(base_dir, None, args.events)
            polled_before = sim.reads
            with_poll, shown = interlock(meter_dir, modbus, args.events)
            reads = sim.reads - polled_before
        finally:
            sim.stop()
            line.close()
    print("\ninterlock latency: stimulus -> main contacts open (rig clock, relay delay included)")
    print(f"  {'run':<34} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(_row("board meter (no poll)", without))
    print(_row("Modbus RTU 9600 baud, polled", with_poll))
    print(f"  the simulated meter answered {reads} reads during the polled run")
    delta = percentile(with_poll, 99) - percentile(without, 99)
    print(f"  p99 with the poll minus without: {delta:+.2f} ms")
    ok = _meter_was_well(shown, "the polled interlock run") and ok
    print(f"\nevent-loop lag: a 10 ms asyncio sleep's overshoot, {args.seconds:g} s each")
    print(f"  {'run':<34} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(_row("no meter", loop_lag(args.seconds, None)))
    for baudrate in BAUDRATES:
        print(_row(f"Modbus RTU {baudrate} baud, fast poll", loop_lag(args.seconds, baudrate)))
    print("\nmeter-driven: register change (1500 W discharge, nothing authorized) -> main open")
    print(f"  {'run':<34} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for baudrate in BAUDRATES:
        with tempfile.TemporaryDirectory(prefix="bench-meter-") as tmp:
            opened, shown = meter_opens_main(Path(tmp), baudrate, max(args.events // 4, 5))
        print(_row(f"Modbus RTU {baudrate} baud", opened))
        ok = _meter_was_well(shown, f"the {baudrate}-baud meter-driven run") and ok
    return 0 if ok else 1


def _meter_was_well(shown: Any, run: str) -> bool:
    """The daemon's meter in the last event of a run, main closed: healthy, polled at its
    target (the fast rate), no bus errors in the whole run."""
    bus = shown["bus"]
    interval, errors = bus["interval_ms"], sum(bus["bus_errors"].values())
    print(
        f"  {run}: meter healthy={shown['healthy']}, rate {bus['rate']}, interval p50/p99 "
        f"{interval['p50']}/{interval['p99']} ms, {bus['polls']} polls, {errors} bus errors"
    )
    target = bus["target_ms"]
    on_rate = bus["rate"] == "fast" and interval["p50"] is not None
    on_rate = on_rate and interval["p50"] <= target * 1.2
    return bool(shown["healthy"]) and on_rate and errors == 0


if __name__ == "__main__":
    sys.exit(main())
