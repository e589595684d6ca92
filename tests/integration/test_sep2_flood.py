"""A flood on the 2030.5 port against the running daemon (mock board, virtual rig), on
loopback and bounded: 1,100 half-open TCP connections and 50 clients with valid certificates
that dribble their headers, all from one address. Meanwhile a vehicle at another address gets
its answer in under 500 ms, ``status`` and ``limit`` answer, an approval-list install
succeeds, the interlock opens on unplug within 100 ms, and the daemon's open files stay far
below its limit (this project once ran out of them at 1,000 half-open connections)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.sep2.pki import PkiLayout, init_pki
from firmware.sep2.tls import client_context
from hil.pev.profiles import APPROVED_ISM
from hil.utility import UtilityAuthority
from tests.integration.conftest import Running, StartDaemon

pytestmark = pytest.mark.integration

AREA = "TEST-AREA-NORTH"
VEHICLE_ADDRESS = "fd00:7e57::b"  # more loopback addresses: the vehicle is not the flood,
DRIBBLER_ADDRESS = "fd00:7e57::d"  # and the dribblers are a second attacker
HALF_OPEN = 1100
DRIBBLERS = 50


@pytest.fixture
def vehicle_address() -> Iterator[str]:
    for address in (VEHICLE_ADDRESS, DRIBBLER_ADDRESS):
        added = subprocess.run(["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo",
                                "nodad"], capture_output=True, text=True, check=False)  # fmt: skip
        if added.returncode != 0 and "File exists" not in added.stderr:
            pytest.skip(f"cannot add a loopback address: {added.stderr.strip()}")
    try:
        yield VEHICLE_ADDRESS
    finally:
        for address in (VEHICLE_ADDRESS, DRIBBLER_ADDRESS):
            subprocess.run(["ip", "-6", "addr", "del", f"{address}/128", "dev", "lo"],
                           capture_output=True, check=False)  # fmt: skip


def cli(config: Path, *words: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "firmware", *words, "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def open_files(pid: int) -> tuple[int, int]:
    """(open descriptors, the soft RLIMIT_NOFILE) of a process."""
    count = len(os.listdir(f"/proc/{pid}/fd"))
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return count, int(line.split()[3])
    raise AssertionError("no open-files limit")


class Flood:
    """The attackers: half-open connections from ::1, header dribblers with a valid
    certificate from another address, on a thread."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port, self.context = port, context
        self.half_open: list[socket.socket] = []
        self.dribbling = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._dribble()), daemon=True)

    def start(self) -> None:
        for _ in range(HALF_OPEN):
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("::1", self.port))
            self.half_open.append(s)
        self._thread.start()

    async def _dribble(self) -> None:
        async def one() -> None:
            while not self._stop.is_set():
                with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                    _, writer = await asyncio.wait_for(
                        asyncio.open_connection(DRIBBLER_ADDRESS, self.port, ssl=self.context), 5
                    )
                    self.dribbling += 1
                    try:
                        for byte in b"GET /dcap HTTP/1.1\r\nHost: evse\r\nX-Slow: ":
                            writer.write(bytes([byte]))
                            await writer.drain()
                            await asyncio.sleep(0.5)
                    finally:
                        writer.close()
                await asyncio.sleep(0.2)

        tasks = [asyncio.create_task(one()) for _ in range(DRIBBLERS)]
        while not self._stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in self.half_open:
            s.close()


async def timed_get(host: str, port: int, context: ssl.SSLContext) -> float:
    """A new vehicle's first request on a new connection: seconds to the whole answer."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    writer.write(b"GET /dcap HTTP/1.1\r\nHost: evse\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    return time.monotonic() - started


def test_a_flood_on_the_2030_5_port_starves_nothing(
    start_daemon: StartDaemon, tmp_path: Path, vehicle_address: str
) -> None:
    pki: PkiLayout = init_pki(tmp_path / "pki")
    utility = UtilityAuthority(tmp_path, AREA)
    state = tmp_path / "state"
    utility.install(state, approve={APPROVED_ISM: 5000})
    d = pki.directory
    running: Running = start_daemon(
        tls={"ca_file": str(d / "serca.pem"), "cert_file": str(d / "evse.pem"),
             "key_file": str(d / "evse.key")},
        sep2={"enabled": True, "host": "::", "port": 0},
        approvals=utility.config, site={"service_area": AREA},
        paths={"state_dir": str(state)},
    )  # fmt: skip
    config = tmp_path / "config0.toml"
    listening = next(line for line in running.daemon.lines if "sep2.listening" in line)
    port = int(listening.split("port=", 1)[1].split()[0])
    vehicle = client_context(
        d / "serca.pem", d / "pev-certified-4q.pem", d / "pev-certified-4q.key"
    )
    intruder = client_context(d / "serca.pem", d / "pev-silent.pem", d / "pev-silent.key")
    rig = running.rig
    rig.command("EV:STATE B")
    rig.wait_duty(1, 99, 1000)
    rig.command("EV:STATE C")
    rig.wait_relay("MAIN", "CLOSED", 3000)

    flood = Flood(port, intruder)
    flood.start()
    try:
        time.sleep(2.0)  # the flood settles in: every slot the attacker can get, it holds
        pid = running.daemon.proc.pid
        during, limit = open_files(pid)
        first = asyncio.run(timed_get(vehicle_address, port, vehicle))
        again = asyncio.run(timed_get(vehicle_address, port, vehicle))
        status = cli(config, "status", "--json")
        paused = cli(config, "limit", "0")
        restored = cli(config, "limit", "default")
        path = tmp_path / "list.jws"
        path.write_text(utility.sign(approve={APPROVED_ISM: 4000}))
        installed = cli(config, "approvals", "install", str(path))
        assert rig.relays()["main"] == "CLOSED", "charging goes on under the flood"
        rig.command("EV:STATE A")
        opened_us = rig.wait_relay("MAIN", "OPEN", 100)
        most, _ = open_files(pid)
    finally:
        flood.stop()
    print(
        f"flood: vehicle answered in {first * 1000:.0f} and {again * 1000:.0f} ms; "
        f"daemon fds {during}/{most} of {limit}; dribblers connected {flood.dribbling} times"
    )
    assert first < 0.5 and again < 0.5, (first, again)
    assert status.returncode == 0, status.stderr
    assert paused.returncode == 0 and restored.returncode == 0, (paused.stderr, restored.stderr)
    assert installed.returncode == 0, installed.stderr
    assert opened_us <= 100_000
    assert flood.dribbling >= 8, "the dribblers got their share of connections"
    assert max(during, most) < 200 < limit, (during, most, limit)
    assert running.daemon.proc.poll() is None, "the daemon is still running"
    assert not [ln for ln in running.daemon.lines if "Too many open files" in ln]
    assert any("sep2.tls_refused" in ln or "sep2.connection_closed" in ln
               for ln in running.daemon.lines), "the flood was seen"  # fmt: skip
