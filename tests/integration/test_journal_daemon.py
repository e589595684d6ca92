"""The running daemon writes the journal: a session from plug-in to plug-out with the EV MAC
SLAC learned, every main-contactor action with its reason, every latched fault. Read back
through ``evse-gatekeeper sessions --json`` and the journal itself after the daemon stops."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware.journal.store import FILE_NAME, Journal
from tests.integration.conftest import StartDaemon, charge

pytestmark = pytest.mark.integration


def test_sessions_relays_and_faults_are_journaled(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    state = tmp_path / "journal-state"
    running = start_daemon(paths={"state_dir": str(state)}, plc={"interface": "mock"})
    rig, daemon = running.rig, running.daemon
    charge(rig)
    rig.command("EV:PLC ON")
    daemon.wait_for("plc.slac_matched", 10)
    rig.command("EV:DIODE SHORT")
    rig.wait_relay("MAIN", "OPEN", 100)
    rig.command("EV:STATE A")
    rig.command("EV:DIODE OK")
    daemon.wait_for("fault.cleared", 5)
    rig.command("EV:STATE B")  # a second session, still open when the daemon stops
    rig.wait_duty(1, 99, 2000)
    assert running.stop() == 0

    config = tmp_path / "read.toml"
    config.write_text(f'[paths]\nstate_dir = "{state}"\n')
    listed = subprocess.run(
        [sys.executable, "-m", "firmware", "sessions", "--json", "--config", str(config)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    sessions = json.loads(listed.stdout)
    assert len(sessions) == 2, sessions
    first = sessions[-1]  # newest first
    assert first["plugged_out_at"] is not None and first["ev_mac"] == "02:eb:5e:00:ee:01"
    assert sessions[0]["plugged_out_at"] is not None, "closed when the daemon stopped"

    with Journal.in_state_dir(state) as journal:
        actions = [(r.relay.value, r.closed, r.reason) for r in reversed(journal.relay_actions(50))]
        faults = [(f.kind, f.detail) for f in journal.faults(10)]
    assert ("main", True, "charger: charging") in actions
    assert any(
        not closed and reason.startswith("interlock: diode") for _, closed, reason in actions
    )
    assert ("diode", "clears_on=A") in faults


def test_a_session_open_when_the_daemon_was_killed_is_ended_at_the_next_start(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    state = tmp_path / "killed-state"
    first = start_daemon(paths={"state_dir": str(state)})
    first.rig.command("EV:STATE B")  # plugged in: a session opens
    first.rig.wait_duty(1, 99, 2000)
    first.daemon.proc.send_signal(signal.SIGKILL)
    first.daemon.proc.wait(timeout=10)
    first.rig.close()
    time.sleep(1.5)  # its safety process holds the safe state for 1 s, then exits
    with Journal(state / FILE_NAME, read_only=True) as journal:
        assert journal.sessions(5)[0].plugged_out_at is None, "the kill left it open"
    second = start_daemon(paths={"state_dir": str(state)})
    assert any("journal.sessions_ended" in line for line in second.daemon.lines)
    with Journal(state / FILE_NAME, read_only=True) as journal:
        killed = journal.sessions(5)[0]
    assert killed.plugged_out_at is not None and killed.ended_by == "restart"
