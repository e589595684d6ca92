"""SLAC over real AF_PACKET sockets in network namespaces made by the test:
EVSE host <-veth-> mock modem pair <-veth-> PEV host. An IPv6 ping across the "PLC" link
works only once both sides are keyed, and stops when the EVSE re-keys after the vehicle
leaves. Skipped with the kernel's reason where namespaces or veth are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.integration

TAG = f"egk{os.getpid() % 100000}"
NS = {role: f"{TAG}-{role}" for role in ("evse", "modem", "pev")}
EVSE_LL, PEV_LL = "fe80::e5e", "fe80::ef"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=15)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
    return result


def in_ns(role: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", NS[role], *args]


@dataclass
class Role:
    proc: subprocess.Popen[str]
    lines: list[str]

    def wait_for(self, needle: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    self.lines.remove(line)
                    return line
            if self.proc.poll() is not None and not any(needle in ln for ln in self.lines):
                break
            time.sleep(0.02)
        raise TimeoutError(f"no {needle!r} (exit {self.proc.poll()}): {self.lines}")


def start(role: str, *args: str) -> Role:
    proc = subprocess.Popen(
        in_ns(role, sys.executable, "-m", "hil.plc.roles", role, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())

    threading.Thread(target=read, daemon=True).start()
    return Role(proc, lines)


@pytest.fixture
def topology() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    made = run("ip", "netns", "add", NS["evse"], check=False)
    if made.returncode != 0:
        pytest.skip(f"the kernel refuses network namespaces here: {made.stderr.strip()}")
    try:
        for role in ("modem", "pev"):
            run("ip", "netns", "add", NS[role])
        run("ip", "link", "add", "evse0", "netns", NS["evse"], "type", "veth",
            "peer", "name", "m-e", "netns", NS["modem"])  # fmt: skip
        run("ip", "link", "add", "pev0", "netns", NS["pev"], "type", "veth",
            "peer", "name", "m-p", "netns", NS["modem"])  # fmt: skip
        for role, dev in (("evse", "evse0"), ("modem", "m-e"), ("modem", "m-p"), ("pev", "pev0")):
            run(*in_ns(role, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"), check=False)
            run(*in_ns(role, "ip", "link", "set", dev, "up"))
        run(*in_ns("evse", "ip", "-6", "addr", "add", f"{EVSE_LL}/64", "dev", "evse0", "nodad"))
        run(*in_ns("pev", "ip", "-6", "addr", "add", f"{PEV_LL}/64", "dev", "pev0", "nodad"))
        yield
    finally:
        for name in NS.values():
            run("ip", "netns", "del", name, check=False)


def ping_works() -> bool:
    """One ICMPv6 echo from the PEV host to the EVSE host's link-local address."""
    ping = in_ns("pev", sys.executable, "-m", "hil.plc.ping6", f"{EVSE_LL}%pev0")
    return run(*ping, check=False).returncode == 0


def test_match_then_ipv6_then_rekey_isolates(topology: None) -> None:
    roles = [start("modem", "--evse-if", "m-e", "--pev-if", "m-p")]
    try:
        roles[0].wait_for("MODEM READY", 10)
        roles.append(start("evse", "--if", "evse0"))
        evse = roles[-1]
        evse.wait_for("EVSE READY", 10)
        assert not ping_works(), "no IPv6 across the PLC link before keying"
        pev = start("pev", "--if", "pev0")
        roles.append(pev)
        pev.wait_for("PEV MATCHED", 10)
        evse.wait_for("MATCHED", 5)
        assert pev.proc.wait(5) == 0
        assert ping_works(), "IPv6 link-local ping works once both sides are keyed"
        evse.proc.send_signal(signal.SIGUSR1)  # the vehicle unplugs: re-key
        evse.wait_for("REKEYED", 5)
        assert not ping_works(), "the re-key evicts the vehicle"
    finally:
        for role in roles:
            role.proc.kill()
            role.proc.wait(5)
