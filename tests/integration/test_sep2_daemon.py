"""The 2030.5 server inside the running daemon: it listens once the board is safe, answers
a vehicle over TLS, and refuses to start (exit 2, one line naming the key) on credentials it
cannot use or a port it cannot have. Stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from firmware.sep2.pki import PkiLayout, init_pki
from firmware.sep2.tls import client_context
from hil.firmware_process import toml_dumps
from tests.integration.conftest import BASE_CONFIG, StartDaemon, merged

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki") / "pki")


def sep2(pki: PkiLayout, port: int = 0, **tls: str) -> dict[str, Any]:
    d = pki.directory
    files = {"ca_file": str(d / "serca.pem"), "cert_file": str(d / "evse.pem"),
             "key_file": str(d / "evse.key"), **tls}  # fmt: skip
    return {"tls": files, "sep2": {"enabled": True, "host": "::1", "port": port}}


def test_the_daemon_serves_a_vehicle_over_tls(start_daemon: StartDaemon, pki: PkiLayout) -> None:
    running = start_daemon(**sep2(pki))
    lines = running.daemon.lines
    listening = next(line for line in lines if "sep2.listening" in line)
    ready = next(i for i, line in enumerate(lines) if "gatekeeper.ready" in line)
    assert lines.index(listening) < ready, "ready only once the server listens"
    assert any("sep2.tls ciphers=ECDHE-ECDSA-AES128-CCM8" in line for line in lines)
    port = int(listening.rsplit("port=", 1)[1])
    d = pki.directory

    async def get_dcap() -> tuple[int, bytes]:
        context = client_context(d / "serca.pem", d / "pev-silent.pem", d / "pev-silent.key")
        connector = aiohttp.TCPConnector(ssl=context)
        async with (
            aiohttp.ClientSession(connector=connector) as s,
            s.get(f"https://[::1]:{port}/dcap") as reply,
        ):
            return reply.status, await reply.read()

    status, body = asyncio.run(get_dcap())
    assert status == 200 and body.startswith(b"<DeviceCapability")


def _refused(tmp_path: Path, overrides: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    config = merged(BASE_CONFIG, {"paths": {"state_dir": str(tmp_path / "state")}, **overrides})
    path = tmp_path / "config.toml"
    path.write_text(toml_dumps(config))
    command = [sys.executable, "-m", "firmware", "run", "--config", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_unusable_credentials_refuse_the_start(tmp_path: Path, pki: PkiLayout) -> None:
    d = pki.directory
    result = _refused(tmp_path, sep2(pki, cert_file=str(d / "bad" / "pev-rsa.pem"),
                                     key_file=str(d / "bad" / "pev-rsa.key")))  # fmt: skip
    assert result.returncode == 2
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("evse-gatekeeper:")]
    assert line.startswith("evse-gatekeeper: config: tls")
    assert "gatekeeper.safe_state" in result.stderr, "the relays were confirmed open first"


def test_a_taken_port_refuses_the_start(tmp_path: Path, pki: PkiLayout) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _refused(tmp_path, sep2(pki, port=port))
    assert result.returncode == 2
    assert f"evse-gatekeeper: config: sep2.port: cannot listen on [::1]:{port}" in result.stderr
