"""A running daemon uses a newly installed approval list without a restart: it verifies the
installed list at start, and a new one installed by the CLI is verified and in use within a
second. Each install is in the journal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from firmware.journal.store import Journal
from hil.utility import new_key, public_pem, signed_list
from tests.integration.conftest import StartDaemon

pytestmark = pytest.mark.integration

AREA = "TEST-AREA-NORTH"


def install(config: Path, jws_file: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "firmware", "approvals", "install", str(jws_file),
               "--config", str(config)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_a_new_list_is_in_use_without_a_restart(start_daemon: StartDaemon, tmp_path: Path) -> None:
    key = new_key()
    (tmp_path / "utility.pem").write_bytes(public_pem(key))
    state = tmp_path / "approvals-state"
    running = start_daemon(
        approvals={"utility_keys": [str(tmp_path / "utility.pem")]},
        site={"service_area": AREA},
        paths={"state_dir": str(state)},
    )
    daemon = running.daemon
    assert any("approvals.none" in line for line in daemon.lines), "no list yet: default deny"
    config = tmp_path / "config0.toml"  # the daemon's own config (see conftest)
    for version in (1, 2):
        jws = tmp_path / f"list{version}.jws"
        jws.write_text(signed_list(key, service_area=AREA, version=version,
                                   approve={"ISM-2025-0001": 5000}))  # fmt: skip
        done = install(config, jws)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", "journaled"
        daemon.wait_for(f"approvals.loaded version={version}", timeout_s=2.0)
    with Journal.in_state_dir(state) as journal:
        assert [row.version for row in journal.approval_installs(10)] == [2, 1]


def test_unusable_utility_keys_refuse_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "utility.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[approvals]\nutility_keys = ["{bad}"]\n[paths]\nstate_dir = "{tmp_path / "s"}"\n'
    )
    result = subprocess.run([sys.executable, "-m", "firmware", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 2
    assert "evse-gatekeeper: config: approvals.utility_keys:" in result.stderr
