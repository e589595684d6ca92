"""The J3072 meter checks through the Modbus backend, against the running daemon: the mock
board with ``[meter] backend = "modbus-tcp"`` pointed at pymodbus's own server playing an
Eastron SDM630, whose registers the test sets (the rig's METER:W no longer counts). An
unhealthy meter revokes an authorized session and charging goes on; healthy again within
3 s, the session resumes; untrusted for 3 s after a revocation (a dead meter reading 0 V),
main opens; discharge over the limit is revoked within 1 s; discharge with nothing
authorized opens main, even while the meter is not yet trusted again. Each time is the
wall clock from the register change."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.sep2.pki import PkiLayout, init_pki
from hal.meter import load_map
from hil.meter.server import SimulatedMeter
from hil.pev.profiles import PROFILES
from hil.rig import RigError
from tests.integration.conftest import StartDaemon, charge
from tests.integration.test_j3072_daemon import (
    LIST_LIMIT_W,
    authorized_and_discharging,
    decisions,
    make_site,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki") / "pki")


@pytest.fixture
def sdm630() -> Iterator[tuple[SimulatedMeter, dict[str, Any]]]:
    sim = SimulatedMeter(load_map("sdm630"))
    port = sim.serve_tcp()
    config = {"backend": "modbus-tcp", "map": "sdm630", "host": "127.0.0.1", "tcp_port": port,
              "timeout_ms": 100, "stale_ms": 400, "recover_polls": 5}  # fmt: skip
    yield sim, config
    sim.stop()


def status(config: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "firmware", "status", "--json", "--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def seconds_until(relay: str, position: str, running: Any) -> float:
    start = time.monotonic()
    running.rig.wait_relay(relay, position, 5000)
    return time.monotonic() - start


def test_meter_failure_revokes_recovery_resumes_and_over_the_limit_revokes_within_1_s(
    start_daemon: StartDaemon,
    pki: PkiLayout,
    tmp_path: Path,
    sdm630: tuple[SimulatedMeter, dict[str, Any]],
) -> None:
    sim, meter = sdm630
    site = make_site(start_daemon, pki, tmp_path, meter=meter)
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    running, daemon = site.running, site.running.daemon
    sim.set(power_w=3000.0)  # discharging, within the 5,000 W authorized
    shown = site.status()
    assert shown["meter"]["healthy"] is True and shown["meter"]["bus"]["map"] == "Eastron SDM630"
    assert shown["meter"]["bus"]["rate"] == "fast", "main is closed: 10 Hz"

    # the meter falls silent for 1 s: the limits cannot be enforced, the session is revoked;
    # it answers again well within the vehicle's 3 s whatever the test's own pace (a meter
    # untrusted 3 s with main closed after an authorization would open main)
    sim.silent = True
    threading.Timer(1.0, lambda: setattr(sim, "silent", False)).start()
    start = time.monotonic()
    running.rig.wait_relay("DISCHARGE", "OPEN", 3000)
    after_s = time.monotonic() - start
    assert after_s <= 1.5, f"revoked {after_s:.2f} s after the meter fell silent"
    print(f"meter silent: discharge open {after_s * 1000:.0f} ms later")
    line = daemon.wait_for("j3072.revoked", timeout_s=1)
    assert "the meter is unhealthy: no good reading for" in line
    # it answered again: trusted after 5 good readings, charging by PWM alone went on, and
    # the session resumes after hold_s and 3 heartbeats
    daemon.wait_for("meter.healthy", timeout_s=5)
    assert running.rig.relays()["main"] == "CLOSED", "charging by PWM alone goes on"
    revoked = [r for granted, r in decisions(site.state) if not granted]
    assert revoked and revoked[-1][0].startswith("revoked: the meter is unhealthy: no good")
    daemon.wait_for("j3072.authorized", timeout_s=10)
    running.rig.wait_relay("DISCHARGE", "CLOSED", 2000)
    assert site.status()["meter"]["bus"]["bus_errors"]["timeout"] > 0

    # over the limit: revoked within 1 s (§4.8.1.2), main opened if it goes on 3 s
    sim.set(power_w=LIST_LIMIT_W + 800.0)
    start = time.monotonic()
    running.rig.wait_relay("DISCHARGE", "OPEN", 2000)
    revoked_s = time.monotonic() - start
    assert revoked_s <= 1.0, f"over the limit: revoked after {revoked_s:.2f} s"
    print(f"over the limit on the Modbus meter: discharge open {revoked_s * 1000:.0f} ms later")
    assert running.rig.relays()["main"] == "CLOSED", "the vehicle gets 3 s to stop"
    main_s = seconds_until("MAIN", "OPEN", running)
    assert 1.5 <= main_s + revoked_s <= 5.0, f"main open {main_s + revoked_s:.2f} s after"
    daemon.wait_for("kind=unauthorized_discharge", timeout_s=1)
    pev.stop()


def test_discharge_with_nothing_authorized_opens_main(
    start_daemon: StartDaemon, sdm630: tuple[SimulatedMeter, dict[str, Any]], tmp_path: Path
) -> None:
    sim, meter = sdm630
    running = start_daemon(meter=meter)
    running.daemon.wait_for("meter.healthy", timeout_s=10)
    assert status(tmp_path / "config0.toml")["meter"]["bus"]["rate"] == "idle"
    running.rig.command("EV:STATE B")
    running.rig.wait_duty(1, 99, 1000)
    bus = status(tmp_path / "config0.toml")["meter"]["bus"]
    assert bus["rate"] == "fast", "a plugged-in vehicle may be granted: the fast rate already"
    charge(running.rig)
    running.rig.command("METER:W 3000")  # the board's meter is not the one configured
    with pytest.raises(RigError, match="TIMEOUT"):
        running.rig.wait_relay("MAIN", "OPEN", 500)
    sim.set(power_w=1500.0)
    start = time.monotonic()
    running.rig.wait_relay("MAIN", "OPEN", 2000)
    after_s = time.monotonic() - start
    assert after_s <= 1.0, f"main opened {after_s:.2f} s after the meter showed discharge"
    running.daemon.wait_for("kind=unauthorized_discharge", timeout_s=1)


def test_a_meter_untrusted_3_s_after_a_revocation_opens_main(
    start_daemon: StartDaemon,
    pki: PkiLayout,
    tmp_path: Path,
    sdm630: tuple[SimulatedMeter, dict[str, Any]],
) -> None:
    """A dead meter (0 V) cannot show that the vehicle stopped within §4.8.1.2's 3 s."""
    sim, meter = sdm630
    site = make_site(start_daemon, pki, tmp_path, meter=meter)
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    running, daemon = site.running, site.running.daemon
    sim.set(power_w=3000.0, voltage_v=0.0)
    running.rig.wait_relay("DISCHARGE", "OPEN", 2000)
    assert "V outside 120..288 V" in daemon.wait_for("j3072.revoked", timeout_s=1)
    main_s = seconds_until("MAIN", "OPEN", running)
    assert main_s <= 5.0, f"main open {main_s:.2f} s after the revocation"
    daemon.wait_for("kind=meter_untrusted", timeout_s=1)
    opened = [line for line in daemon.lines if "j3072.open_main" in line]
    assert (
        opened and "the meter cannot show that discharge stopped: implausible: voltage" in opened[0]
    )
    pev.stop()


def test_discharge_with_nothing_authorized_opens_main_while_the_meter_is_untrusted(
    start_daemon: StartDaemon, sdm630: tuple[SimulatedMeter, dict[str, Any]]
) -> None:
    """A meter failing every third read is never trusted again (5 good readings in a row
    are needed), but each good reading between still counts against the vehicle."""
    sim, meter = sdm630
    running = start_daemon(meter=meter)
    running.daemon.wait_for("meter.healthy", timeout_s=10)
    sim.fail_every = 3
    running.daemon.wait_for("meter.unhealthy", timeout_s=5)
    charge(running.rig)
    sim.set(power_w=1500.0)
    running.rig.wait_relay("MAIN", "OPEN", 2000)
    running.daemon.wait_for("kind=unauthorized_discharge", timeout_s=1)
    violation = [line for line in running.daemon.lines if "j3072.violation " in line]
    assert violation and "discharge 1500 W with no J3072 session" in violation[0]
