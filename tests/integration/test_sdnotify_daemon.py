"""The daemon speaks the systemd protocol to a real datagram socket: READY=1 only once the
board is in its safe state and the servers listen, WATCHDOG=1 while the sampler (the
interlock's thread) turns and never while it is stalled, STOPPING=1 after the relays open."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.daemon.app import Gatekeeper
from firmware.daemon.config import parse_config
from hal import BoardSettings, MockSettings, PilotSample, Relay
from hal.mock.board import MockBoard
from tests.integration.conftest import StartDaemon
from tests.safety_inprocess import launcher

pytestmark = pytest.mark.integration

WATCHDOG_USEC = 100_000  # a ping every 50 ms


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """Plays systemd's side: the notify socket, in the environment the daemon inherits."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


class StallableBoard(MockBoard):
    """The mock board whose pilot read can be made to hang (outside the board's lock, as
    a stuck SPI transfer would hang the sampler thread and nothing else)."""

    def __init__(self) -> None:
        super().__init__(BoardSettings(mock=MockSettings(noise_mv=0)))
        self.flowing = threading.Event()
        self.flowing.set()

    def read_pilot(self) -> PilotSample:
        self.flowing.wait()
        return super().read_pilot()


def test_watchdog_pings_follow_the_sampler_and_stop_while_it_stalls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manager: socket.socket
) -> None:
    board = StallableBoard()
    gatekeeper = Gatekeeper(
        parse_config({"paths": {"state_dir": str(tmp_path / "state")}}), launcher=launcher(board)
    )

    async def count_pings(seconds: float) -> int:
        drain(manager)
        await asyncio.sleep(seconds)
        return sum(m == "WATCHDOG=1" for m in drain(manager))

    async def scenario() -> tuple[int, int, int, list[str]]:
        task = asyncio.create_task(gatekeeper.run())
        while not gatekeeper.ready.is_set():
            assert not any(m.startswith("READY=1") for m in drain(manager)), "READY too early"
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        first = drain(manager)
        assert first and first[0].startswith("READY=1"), first
        healthy = await count_pings(0.5)
        board.flowing.clear()  # the sampler thread hangs in its next pilot read
        await asyncio.sleep(0.25)  # the last earned ping may still be on its way
        stalled = await count_pings(0.6)
        board.flowing.set()
        resumed = await count_pings(0.5)
        gatekeeper.request_stop()
        assert await task == 0
        return healthy, stalled, resumed, drain(manager)

    healthy, stalled, resumed, last = asyncio.run(asyncio.wait_for(scenario(), timeout=20))
    assert healthy >= 5, f"{healthy} pings in 0.5 s at a 50 ms interval"
    assert stalled == 0, f"{stalled} pings while the sampler was stalled"
    assert resumed >= 3, "pings resume once the sampler turns again"
    assert any(m.startswith("STOPPING=1") for m in last)
    assert not board.contacts(Relay.MAIN)[0] and not board.contacts(Relay.DISCHARGE)[0]


def test_ready_comes_after_the_safe_state_and_the_listening_servers(
    start_daemon: StartDaemon, manager: socket.socket, tmp_path: Path
) -> None:
    from firmware.sep2.pki import init_pki

    pki = init_pki(tmp_path / "pki").directory
    running = start_daemon(
        tls={
            "ca_file": str(pki / "serca.pem"),
            "cert_file": str(pki / "evse.pem"),
            "key_file": str(pki / "evse.key"),
        },
        sep2={"enabled": True, "host": "::1", "port": 0},
    )
    # start_daemon returned after the "gatekeeper.ready" line: READY=1 follows it
    messages: list[str] = []
    for _ in range(200):
        messages += drain(manager)
        if any(m.startswith("READY=1") for m in messages):
            break
        threading.Event().wait(0.01)
    assert messages and messages[0].startswith("READY=1"), messages
    lines = running.daemon.lines
    order = [next(i for i, ln in enumerate(lines) if key in ln)
             for key in ("board.opened", "sep2.listening", "gatekeeper.ready")]  # fmt: skip
    assert order == sorted(order)
    relays = running.rig.relays()
    assert relays == {"main": "OPEN", "discharge": "OPEN"}
    assert float(running.rig.measure_pilot()["duty_pct"]) == 100.0, "pilot at steady +12 V"
