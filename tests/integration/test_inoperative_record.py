"""A permanent fault survives a restart until a technician clears it."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.firmware_process import toml_dumps
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


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (root only; skips with the kernel's reason)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write until the filesystem refuses (ENOSPC); the filler's path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    probe = directory / "probe"
    with pytest.raises(OSError, match="No space left"):
        probe.write_bytes(b"\0" * 65536)
    return filler


def test_a_weld_on_a_full_disk_with_no_free_fd_stays_inoperative_after_a_restart(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    with small_filesystem(tmp_path / "state", "4m") as state_dir:
        config = tmp_path / "c.toml"
        config.write_text(toml_dumps(merged(BASE_CONFIG, {"paths": {"state_dir": str(state_dir)}})))
        first = start_daemon(paths={"state_dir": str(state_dir)})
        first.rig.command("EV:STATE B")
        first.rig.wait_duty(1, 99, 1000)
        first.rig.command("EV:STATE C")
        first.rig.wait_relay("MAIN", "CLOSED", 3000)
        status = [sys.executable, "-m", "firmware", "status", "--json", "--config", str(config)]
        done = subprocess.run(status, capture_output=True, text=True, timeout=30)
        pid = json.loads(done.stdout)["processes"]["safety"]["pid"]
        filler = fill(state_dir)
        open_fds = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (open_fds, open_fds))  # no fd left
        first.rig.command("FB:MAIN STUCK_CLOSED")  # the contacts stay closed: a weld
        first.rig.command("EV:STATE B")  # main commanded open
        first.daemon.wait_for("kind=main_welded", timeout_s=3)
        recorded = first.daemon.wait_for("fault.record_written", timeout_s=3)
        assert "recorded=true" in recorded, recorded
        first.stop()
        filler.unlink()
        shown = faults("show", config)
        assert shown.returncode == 0 and shown.stdout.startswith("main_welded at="), shown
        assert not offers_power(start_daemon, state_dir), "a restart must not clear it"
