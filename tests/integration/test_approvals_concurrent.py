"""Installs at once, as operators and scripts start them: ``evse-gatekeeper approvals install``
in many processes with increasing versions, some killed with SIGKILL part-way. The version
in force is never older than the newest one any command reported installed, each command
that lost says so in one line, and the leftovers of the killed ones are gone after the next
install (refused or not) and after the daemon's start."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware.approvals.install_lock import LOCK_NAME
from firmware.approvals.jws import load_utility_keys
from firmware.approvals.store import FILE_NAME, ApprovalStore
from hil.firmware_process import toml_dumps
from hil.utility import keygen, load_key, signed_list
from tests.integration.conftest import StartDaemon

pytestmark = pytest.mark.integration

AREA = "MOCK-UTILITY-NORTH"
ENTRIES = 4000  # an index build of some milliseconds: a wide window between check and rename
LEFTOVERS = ("approvals.jws.tmp", "approvals.jws.0123456789abcdef.tmp",
             "approvals-index-0011223344556677.tmp")  # fmt: skip


@dataclass
class Site:
    directory: Path
    config: Path
    state: Path
    public: Path
    key_path: Path

    def list_file(self, version: int) -> Path:
        path = self.directory / f"v{version}.jws"
        if not path.exists():
            approve: dict[str, int | None] = {f"ISM-{n:06d}": 7200 for n in range(ENTRIES)}
            approve[f"ISM-V{version}"] = None
            token = signed_list(
                load_key(self.key_path), service_area=AREA, version=version, approve=approve
            )
            path.write_text(token + "\n")
        return path

    def start_install(self, version: int) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "firmware", "approvals", "install",
                   str(self.list_file(version)), "--config", str(self.config)]  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)  # fmt: skip

    def in_force(self) -> int | None:
        store = ApprovalStore(self.state, load_utility_keys([self.public]), AREA)
        loaded = store.load_installed()
        assert store.problem is None, store.problem
        return None if loaded is None else loaded.version

    def temporaries(self) -> list[str]:
        return sorted(p.name for p in self.state.glob("*.tmp"))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    key, public = keygen(tmp_path / "keys")
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    settings = {"paths": {"state_dir": str(state)}, "site": {"service_area": AREA},
                "approvals": {"utility_keys": [str(public)]}}  # fmt: skip
    config.write_text(toml_dumps(settings))
    return Site(tmp_path, config, state, public, key)


def _outcome(version: int, process: subprocess.Popen[str], killed: bool) -> int | None:
    """The version this command reported installed; None if it was killed or refused (a
    refusal must be one line, exit non-zero)."""
    out, err = process.communicate(timeout=120)
    if killed and process.returncode == -signal.SIGKILL:
        return None
    if process.returncode == 0:
        assert out.startswith(f"installed version {version} "), (version, out, err)
        return version
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("evse-gatekeeper: approvals: "), (version, err)
    assert "older than the installed version" in lines[0], (version, err)
    return None


def test_concurrent_installs_never_roll_back(site: Site) -> None:
    chance = random.Random(18)
    first = 1
    for _ in range(3):
        versions = list(range(first, first + 10))
        first += 10
        for version in versions:
            site.list_file(version)  # signed before the race starts
        started = [(v, site.start_install(v)) for v in chance.sample(versions, len(versions))]
        doomed = set(chance.sample(versions, 3))
        time.sleep(chance.uniform(0.3, 0.9))  # some die mid-parse, some mid-write
        for version, process in started:
            if version in doomed:
                process.send_signal(signal.SIGKILL)
        reported = [_outcome(v, p, v in doomed) for v, p in started]
        newest = max((v for v in reported if v is not None), default=0)
        in_force = site.in_force()
        assert in_force is not None and in_force >= newest, (reported, in_force)
    after = site.start_install(first)
    assert _outcome(first, after, False) == first
    assert site.temporaries() == [], "the next install removes what the killed ones left"
    assert site.in_force() == first


def test_a_refused_install_still_removes_the_leftovers_of_killed_ones(site: Site) -> None:
    assert _outcome(5, site.start_install(5), False) == 5
    for name in LEFTOVERS:
        (site.state / name).write_bytes(b"\0" * 4096)  # a killed install's partial file
    refused = site.start_install(4)
    assert _outcome(4, refused, False) is None
    assert site.temporaries() == []
    assert site.in_force() == 5


def test_the_daemon_removes_leftovers_at_start(start_daemon: StartDaemon, tmp_path: Path) -> None:
    state = tmp_path / "leftover-state"
    state.mkdir()
    for name in LEFTOVERS:
        (state / name).write_bytes(b"\0" * 4096)
    running = start_daemon(paths={"state_dir": str(state)})
    assert sorted(p.name for p in state.glob("*.tmp")) == []
    assert (state / LOCK_NAME).exists() and not (state / FILE_NAME).exists()
    assert sum("approvals.leftover_removed" in line for line in running.daemon.lines) == 3
