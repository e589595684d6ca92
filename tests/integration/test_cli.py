"""The ``evse-gatekeeper`` command as an operator meets it: exit codes, one-line refusals,
a bad config refused whole before anything starts, and the ``make run`` demo."""

from __future__ import annotations

import hashlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from firmware.sep2.identity import sfdi
from hil.firmware_process import toml_dumps
from tests.integration.conftest import BASE_CONFIG, merged

pytestmark = pytest.mark.integration


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_version_and_help() -> None:
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("evse-gatekeeper ")
    for args in (
        ["--help"],
        ["run", "--help"],
        ["faults", "--help"],
        ["faults", "clear", "--help"],
    ):
        shown = cli(*args)
        assert shown.returncode == 0 and "usage:" in shown.stdout


def test_bad_usage_exits_2() -> None:
    assert cli().returncode == 2
    assert cli("frobnicate").returncode == 2


def test_bad_config_lists_every_problem_and_starts_nothing(tmp_path: Path) -> None:
    rig_link = tmp_path / "rig"
    state_dir = tmp_path / "state"
    path = tmp_path / "bad.toml"
    path.write_text(
        f"""
[hal]
backend = "arduino"
colour = "blue"

[hal.mock]
rig_link = "{rig_link}"
relay_delay_ms = -5

[charger]
max_current_a = 100
ventilation = "yes"
sample_rate_hz = 200.5

[contactor]
min_close_interval_ms = true

[paths]
state_dir = "{state_dir}"

[extras]
x = 1
"""
    )
    result = cli("run", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    expected = [
        "hal.backend",
        "hal.colour: unknown key",
        "hal.mock.relay_delay_ms",
        "charger.max_current_a",
        "charger.ventilation",
        "charger.sample_rate_hz",
        "contactor.min_close_interval_ms",
        "extras: unknown section",
    ]
    for needle in expected:
        assert sum(needle in line for line in lines) == 1, f"{needle} not reported once"
    assert len(lines) == len(expected), "one line per problem, nothing else"
    assert all(line.startswith("evse-gatekeeper: config: ") for line in lines)
    assert not rig_link.exists() and not state_dir.exists(), "nothing may start"


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "cannot read"), ("[hal\nbackend=", "not valid TOML")],
)
def test_unreadable_config_is_one_line(tmp_path: Path, content: str | None, needle: str) -> None:
    path = tmp_path / "config.toml"
    if content is not None:
        path.write_text(content)
    result = cli("run", "--config", str(path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and needle in result.stderr


def test_check_validates_without_running(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(toml_dumps(merged(BASE_CONFIG, {"paths": {"state_dir": str(tmp_path / "s")}})))
    result = cli("run", "--config", str(path), "--check")
    assert result.returncode == 0 and "ok" in result.stdout
    assert not (tmp_path / "s").exists()


def test_unimplemented_backend_is_a_one_line_board_error(tmp_path: Path) -> None:
    path = tmp_path / "rpi.toml"
    path.write_text(toml_dumps({"hal": {"backend": "rpi"}, "paths": {"state_dir": str(tmp_path)}}))
    result = cli("run", "--config", str(path))
    assert result.returncode == 1
    refusals = [ln for ln in result.stderr.splitlines() if ln.startswith("evse-gatekeeper: ")]
    assert len(refusals) == 1 and refusals[0].startswith("evse-gatekeeper: board: ")
    assert "Traceback" not in result.stderr


def test_the_make_run_demo_passes(tmp_path: Path) -> None:
    """The scripted session of ``make run``, with contact protection lowered to keep it short."""
    config = merged(
        BASE_CONFIG,
        {
            "hal": {"mock": {"rig_link": str(tmp_path / "rig")}},
            "paths": {"state_dir": str(tmp_path / "state")},
        },
    )
    path = tmp_path / "demo.toml"
    path.write_text(toml_dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "session behaved as expected" in result.stdout
    assert "[FAIL]" not in result.stdout
    assert (tmp_path / "state" / "demo-daemon.log").stat().st_size > 0


def test_pki_help_and_bad_usage() -> None:
    for args in (["pki", "--help"], ["pki", "init", "--help"], ["pki", "lfdi", "--help"]):
        shown = cli(*args)
        assert shown.returncode == 0 and "usage:" in shown.stdout
    assert cli("pki").returncode == 2
    assert cli("pki", "init").returncode == 2


def test_pki_init_writes_test_credentials_and_never_overwrites(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    first = cli("pki", "init", str(directory))
    assert first.returncode == 0, first.stderr
    assert f"wrote {directory / 'serca.pem'}\n" in first.stdout
    assert f"wrote {directory / 'bad' / 'pev-rsa.key'}\n" in first.stdout
    assert "TEST" in first.stdout and first.stderr == ""
    key = directory / "evse.key"
    before = key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = cli("pki", "init", str(directory))
    assert again.returncode == 2 and again.stdout == ""
    assert len(again.stderr.splitlines()) == 1
    assert again.stderr.startswith("evse-gatekeeper: ") and "already holds" in again.stderr
    assert key.read_bytes() == before


def test_pki_lfdi_prints_the_identity_of_a_pem_or_der_certificate(tmp_path: Path) -> None:
    assert cli("pki", "init", str(tmp_path / "pki")).returncode == 0
    chain = tmp_path / "pki" / "pev-silent.pem"
    der = x509.load_pem_x509_certificates(chain.read_bytes())[0].public_bytes(Encoding.DER)
    (tmp_path / "silent.der").write_bytes(der)
    lfdi = hashlib.sha256(der).hexdigest()[:40].upper()
    expected = f"lfdi={lfdi} sfdi={sfdi(lfdi)}\n"
    for path in (chain, tmp_path / "silent.der"):
        shown = cli("pki", "lfdi", str(path))
        assert (shown.returncode, shown.stdout, shown.stderr) == (0, expected, "")


@pytest.mark.parametrize(("content", "needle"), [(None, "cannot read"), ("hello\n", "not a PEM")])
def test_pki_lfdi_of_a_bad_file_is_one_line(
    tmp_path: Path, content: str | None, needle: str
) -> None:
    path = tmp_path / "cert.pem"
    if content is not None:
        path.write_text(content)
    result = cli("pki", "lfdi", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"evse-gatekeeper: {path}: ") and needle in result.stderr


def test_sessions_and_approvals_are_reachable_from_the_entry_point(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n')
    listed = cli("sessions", "--json", "--config", str(config))
    assert listed.returncode == 0 and listed.stdout.strip() == "[]"
    shown = cli("approvals", "show", "--config", str(config))
    assert shown.returncode == 2
    assert (
        shown.stderr
        == "evse-gatekeeper: approvals: approvals.utility_keys: not set in the config\n"
    )
    help_text = cli("--help").stdout
    assert "sessions" in help_text and "approvals" in help_text
