"""The running daemon writes the journal: a session from plug-in to plug-out with the EV MAC
SLAC learned, every main-contactor action with its reason, every latched fault. Read back
through ``evse-gatekeeper sessions --json`` and the journal itself after the daemon stops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.journal.store import Journal
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
