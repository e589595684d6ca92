"""A permanent fault survives a restart until a technician clears it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hil.daemon import toml_dumps
from hil.rig import RigError
from tests.integration.conftest import BASE_CONFIG, StartDaemon, merged

pytestmark = pytest.mark.integration


def faults(action: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware", "faults", action, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def offers_power(start: StartDaemon, state_dir: Path) -> bool:
    running = start(paths={"state_dir": str(state_dir)})
    try:
        running.rig.command("EV:STATE B")
        running.rig.wait_duty(1, 99, 600)
        return True
    except RigError:
        return False
    finally:
        assert running.stop() == 0


def test_failed_to_close_stays_inoperative_across_restarts(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    state_dir = tmp_path / "shared-state"
    config = tmp_path / "faults.toml"
    config.write_text(toml_dumps(merged(BASE_CONFIG, {"paths": {"state_dir": str(state_dir)}})))

    first = start_daemon(paths={"state_dir": str(state_dir)})
    first.rig.command("FB:MAIN STUCK_OPEN")
    first.rig.command("EV:STATE B")
    first.rig.command("EV:STATE C")
    first.daemon.wait_for("kind=main_failed_to_close", timeout_s=3)
    assert first.stop() == 0

    shown = faults("show", config)
    assert shown.returncode == 0 and shown.stdout.startswith("main_failed_to_close at=")
    assert not offers_power(start_daemon, state_dir), "a restart must not clear it"

    cleared = faults("clear", config)
    assert cleared.returncode == 0 and "cleared main_failed_to_close" in cleared.stdout
    assert faults("show", config).stdout.strip() == "none"
    assert offers_power(start_daemon, state_dir), "cleared after repair: power again"


def test_a_damaged_record_counts_as_a_fault(start_daemon: StartDaemon, tmp_path: Path) -> None:
    state_dir = tmp_path / "damaged"
    state_dir.mkdir()
    (state_dir / "inoperative.json").write_text("{not json")
    assert not offers_power(start_daemon, state_dir), "default deny"
    config = tmp_path / "c.toml"
    config.write_text(toml_dumps(merged(BASE_CONFIG, {"paths": {"state_dir": str(state_dir)}})))
    shown = faults("show", config)
    assert shown.returncode == 1 and "not a fault record" in shown.stderr
    assert faults("clear", config).returncode == 0
    assert offers_power(start_daemon, state_dir)
