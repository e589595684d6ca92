"""The two processes fail safe on their own: the gatekeeper killed or hung opens both relays
from the safety process within 100 ms (on the rig's clock), the safety process killed makes
the gatekeeper exit non-zero at once with no fault latched, and each shows in ``status``.

Latencies on the rig's clock: a no-op stimulus (the meter set to the value it has) marks the
instant just before the signal, so ``WAIT:RELAY`` measures from a moment before the signal:
an upper bound of the true latency.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.firmware_process import Daemon, toml_dumps
from tests.integration.conftest import BASE_CONFIG, StartDaemon, merged
from tests.integration.discharging import Discharging, cli, start_discharging

pytestmark = pytest.mark.integration

HEARTBEAT_LIMIT_MS = 100
TICK_AND_CONTACTS_MS = 20  # one 5 ms tick, the 10 ms relay model, margin


def safety_pid(session: Discharging) -> int:
    pid = session.status()["processes"]["safety"]["pid"]
    assert isinstance(pid, int) and pid != session.running.daemon.proc.pid
    return pid


def opened_after_mark(session: Discharging, act: object) -> tuple[int, int]:
    """Mark the rig's clock, run ``act``, then wait for both relays open: (main, discharge)
    in ms since the mark."""
    rig = session.running.rig
    rig.command("METER:W 3000")  # the mark: a stimulus that changes nothing
    act()  # type: ignore[operator]
    main = rig.wait_relay("MAIN", "OPEN", 2000) // 1000
    discharge = rig.wait_relay("DISCHARGE", "OPEN", 2000) // 1000
    return main, discharge


def exited(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def test_status_shows_both_processes_the_safety_one_real_time(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    session = start_discharging(start_daemon, tmp_path)
    processes = session.status()["processes"]
    safety = processes["safety"]
    assert processes["gatekeeper"]["pid"] == session.running.daemon.proc.pid
    assert safety["alive"] and safety["sampler"]["ticks"] > 0
    pid = safety["pid"]
    if os.geteuid() == 0:
        assert safety["realtime"] is True
        assert os.sched_getscheduler(pid) == os.SCHED_FIFO
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        locked = next(ln for ln in status if ln.startswith("VmLck"))
        assert int(locked.split()[1]) > 0, locked
    assert os.sched_getscheduler(session.running.daemon.proc.pid) == os.SCHED_OTHER
    session.pev.stop()


def test_kill_9_of_the_gatekeeper_opens_both_relays_within_100_ms(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    session = start_discharging(start_daemon, tmp_path)
    daemon = session.running.daemon
    pid = safety_pid(session)
    main, discharge = opened_after_mark(session, lambda: os.kill(daemon.proc.pid, signal.SIGKILL))
    print(f"SIGKILL of the gatekeeper: main open {main} ms, discharge open {discharge} ms")
    assert main <= HEARTBEAT_LIMIT_MS and discharge <= HEARTBEAT_LIMIT_MS
    duty = float(session.running.rig.measure_pilot()["duty_pct"])
    assert duty == 100.0, "the pilot no longer offers power"
    assert exited(pid, 3.0), "the orphaned safety process exits after its hold"
    assert daemon.proc.wait(5) == -signal.SIGKILL
    assert any("safety.gatekeeper_lost" in ln for ln in daemon.lines)
    session.pev.stop()


def test_a_hung_gatekeeper_loses_its_heartbeat_and_both_relays_open(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """SIGSTOP: alive but silent. 100 ms without a heartbeat, then both relays open."""
    session = start_discharging(start_daemon, tmp_path)
    daemon = session.running.daemon
    main, discharge = opened_after_mark(session, lambda: os.kill(daemon.proc.pid, signal.SIGSTOP))
    os.kill(daemon.proc.pid, signal.SIGCONT)
    print(f"SIGSTOP of the gatekeeper: main open {main} ms, discharge open {discharge} ms")
    assert HEARTBEAT_LIMIT_MS - 25 <= main <= HEARTBEAT_LIMIT_MS + TICK_AND_CONTACTS_MS + 10
    assert discharge <= main
    assert daemon.proc.wait(10) != 0, "the gatekeeper exits non-zero once it hears"
    assert any("no heartbeat" in ln for ln in daemon.lines)
    session.pev.stop()


def test_kill_9_of_the_safety_process_stops_the_gatekeeper_non_zero_and_latches_nothing(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    session = start_discharging(start_daemon, tmp_path)
    daemon = session.running.daemon
    pid = safety_pid(session)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    code = daemon.proc.wait(5)
    noticed_s = time.monotonic() - killed
    print(f"SIGKILL of the safety process: the gatekeeper exited {code} after {noticed_s:.3f} s")
    assert code == 1
    assert any("gatekeeper.safety_lost" in ln for ln in daemon.lines)
    assert not any("fault.latched" in ln for ln in daemon.lines)
    shown = cli("faults", "show", "--config", str(session.config))
    assert (shown.returncode, shown.stdout) == (0, "none\n"), shown
    session.pev.stop()


def test_the_safety_process_imports_no_protocol_code() -> None:
    """Neither by module (sys.modules after its imports) nor by shared object in a running
    safety process (its /proc maps: no _ssl, _sqlite3, lxml or cryptography)."""
    probe = (
        "import sys, firmware.safety.__main__, firmware.safety.process\n"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    modules = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    forbidden = ("aiohttp", "lxml", "sqlite3", "_sqlite3", "ssl", "_ssl", "cryptography",
                 "statemachine", "zeroconf", "pyroute2", "firmware.approvals", "firmware.sep2",
                 "firmware.j3072", "firmware.plc", "firmware.net", "firmware.charger.machine",
                 "firmware.daemon.config", "importlib.metadata", "hil")  # fmt: skip
    found = [
        m for m in modules if m in forbidden or m.startswith(tuple(f + "." for f in forbidden))
    ]
    assert found == []


def test_a_running_safety_process_maps_no_protocol_library(
    start_daemon: StartDaemon,
) -> None:
    running = start_daemon()
    done = cli("status", "--json", "--config", str(running.daemon.config_path), timeout_s=30)
    pid = json.loads(done.stdout)["processes"]["safety"]["pid"]
    maps = Path(f"/proc/{pid}/maps").read_text()
    for library in ("_ssl", "_sqlite3", "lxml", "cryptography", "_http_parser", "libssl"):
        assert library not in maps, f"{library} is mapped in the safety process"
    gatekeeper_maps = Path(f"/proc/{running.daemon.proc.pid}/maps").read_text()
    assert "_sqlite3" in gatekeeper_maps, "the probe sees what the gatekeeper maps"


def test_the_virtual_rig_names_the_firmware_version_the_gatekeeper_handed_over(
    start_daemon: StartDaemon,
) -> None:
    """*IDN? answers with the installed version, which the gatekeeper reads and hands over in
    the setup: the safety process itself never loads importlib.metadata (about 2 MB that
    mlockall would keep)."""
    from firmware import firmware_version

    running = start_daemon()
    assert running.rig.identify()["fw"] == firmware_version() != "unknown"


def _status(config: Path) -> dict[str, object]:
    done = cli("status", "--json", "--config", str(config), timeout_s=30)
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(("rtprio", "granted"), [(50, True), (0, False)])
def test_real_time_comes_from_the_units_limits_without_a_capability(
    tmp_path: Path, rtprio: int, granted: bool
) -> None:
    """As the unit runs it: no capability at all (bounding set empty), only LimitRTPRIO and
    LimitMEMLOCK. Refused (rtprio 0), the safety process says so and runs anyway."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("prlimit"):
        pytest.skip("needs root, setpriv and prlimit to drop every capability")
    memlock = 64 * 1024 * 1024 if granted else resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    limits = ["prlimit", f"--rtprio={rtprio}", f"--memlock={memlock}", "--"]
    probe = subprocess.run([*limits, "true"], capture_output=True, text=True)
    if probe.returncode != 0:  # raising a hard limit needs CAP_SYS_RESOURCE
        pytest.skip(f"the kernel refuses these limits here: {probe.stderr.strip()}")
    config = tmp_path / "c.toml"
    config.write_text(toml_dumps(merged(BASE_CONFIG, {
        "hal": {"mock": {"rig_link": str(tmp_path / "rig")}},
        "paths": {"state_dir": str(tmp_path / "state")},
    })))  # fmt: skip
    argv = [*limits, "setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs",
            sys.executable, "-m", "firmware", "run", "--config", str(config)]  # fmt: skip
    daemon = Daemon(config, argv=argv)
    try:
        daemon.wait_for("gatekeeper.ready", timeout_s=20)
        safety = _status(config)["processes"]["safety"]  # type: ignore[index]
        assert safety["realtime"] is granted  # type: ignore[index]
        assert safety["alive"]  # type: ignore[index]
        refused = any("safety.realtime_refused" in ln for ln in daemon.lines)
        assert refused is not granted
        caps = Path(f"/proc/{safety['pid']}/status").read_text()  # type: ignore[index]
        assert "CapEff:\t0000000000000000" in caps, "no capability in the safety process"
    finally:
        assert daemon.stop() == 0
