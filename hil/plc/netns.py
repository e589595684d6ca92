"""The PLC test topology in network namespaces: EVSE host <-veth-> mock modem pair <-veth->
PEV host, each party a process under ``ip netns exec`` (see ``hil.plc.roles``)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

EVSE_LL, PEV_LL = "fe80::e5e", "fe80::ef"


class NetnsUnavailable(Exception):
    """Raised when this machine cannot make the topology (no root, namespaces refused)."""


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=15)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass
class Role:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_for(self, needle: str, timeout_s: float) -> str:
        """The next output line containing ``needle`` (consumed), or TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    self.lines.remove(line)
                    return line
            if self.proc.poll() is not None and not any(needle in ln for ln in self.lines):
                break
            time.sleep(0.005)
        raise TimeoutError(f"no {needle!r} (exit {self.proc.poll()}): {self.lines[-5:]}")


class Topology:
    def __init__(self) -> None:
        tag = f"egk{os.getpid() % 100000}"
        self.ns = {role: f"{tag}-{role}" for role in ("evse", "modem", "pev")}
        self.roles: list[Role] = []

    def __enter__(self) -> Topology:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root")
        made = run("ip", "netns", "add", self.ns["evse"], check=False)
        if made.returncode != 0:
            raise NetnsUnavailable(f"the kernel refuses network namespaces: {made.stderr.strip()}")
        try:
            self._build()
        except BaseException:
            self._teardown()
            raise
        return self

    def _build(self) -> None:
        for role in ("modem", "pev"):
            run("ip", "netns", "add", self.ns[role])
        for host, dev, peer in (("evse", "evse0", "m-e"), ("pev", "pev0", "m-p")):
            run("ip", "link", "add", dev, "netns", self.ns[host], "type", "veth",
                "peer", "name", peer, "netns", self.ns["modem"])  # fmt: skip
        for role, dev in (("evse", "evse0"), ("modem", "m-e"), ("modem", "m-p"), ("pev", "pev0")):
            run(*self.in_ns(role, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"), check=False)
            run(*self.in_ns(role, "ip", "link", "set", dev, "up"))
        run(
            *self.in_ns("evse", "ip", "-6", "addr", "add", f"{EVSE_LL}/64", "dev", "evse0", "nodad")
        )
        run(*self.in_ns("pev", "ip", "-6", "addr", "add", f"{PEV_LL}/64", "dev", "pev0", "nodad"))

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._teardown()

    def _teardown(self) -> None:
        for role in self.roles:
            if role.proc.poll() is None:
                role.proc.kill()
            role.proc.wait(5)
        for name in self.ns.values():
            run("ip", "netns", "del", name, check=False)

    def in_ns(self, role: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role], *args]

    def start(self, role: str, *args: str) -> Role:
        """A party of the link (``hil.plc.roles``) in its namespace."""
        return self.spawn(role, "hil.plc.roles", role, *args)

    def spawn(self, ns_role: str, module: str, *args: str) -> Role:
        """``python -m module args`` in the namespace of ``ns_role``; its output collected."""
        command = self.in_ns(ns_role, sys.executable, "-m", module, *args)
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started = Role(proc)
        self.roles.append(started)

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                started.lines.append(line.rstrip())

        threading.Thread(target=read, daemon=True).start()
        return started

    def start_modem_and_evse(
        self, modem_args: tuple[str, ...] = (), evse_args: tuple[str, ...] = ()
    ) -> tuple[Role, Role]:
        modem = self.start("modem", "--evse-if", "m-e", "--pev-if", "m-p", *modem_args)
        modem.wait_for("MODEM READY", 10)
        evse = self.start("evse", "--if", "evse0", *evse_args)
        evse.wait_for("EVSE READY", 10)
        return modem, evse

    def mac(self, role: str, dev: str) -> str:
        """The interface's MAC as lowercase hex without separators (as the roles print it)."""
        shown = run("ip", "-n", self.ns[role], "-j", "link", "show", "dev", dev)
        return str(json.loads(shown.stdout)[0]["address"]).replace(":", "")

    def ping_works(self) -> bool:
        """One ICMPv6 echo from the PEV host to the EVSE host's link-local address."""
        ping = self.in_ns("pev", sys.executable, "-m", "hil.plc.ping6", f"{EVSE_LL}%pev0")
        return run(*ping, check=False).returncode == 0


_host_serial = itertools.count()


class ThreeHosts:
    """An EVSE host with two veths: ``plc0`` to a PEV host (the PLC side, ``pev0``) and
    ``site0`` to a site host (``lan0``), each host in its own namespace. ``build`` raises
    NetnsUnavailable with the kernel's reason; ``teardown`` kills what was started in them
    (``procs``) and deletes the namespaces."""

    LINKS = (("evse", "plc0"), ("evse", "site0"), ("pev", "pev0"), ("site", "lan0"))

    def __init__(self, prefix: str) -> None:
        tag = f"{prefix}{os.getpid() % 100000}x{next(_host_serial)}"
        self.ns = {name: f"{tag}-{name}" for name in ("evse", "pev", "site")}
        self.procs: list[subprocess.Popen[str]] = []

    def build(self) -> None:
        for name in self.ns.values():
            made = run("ip", "netns", "add", name, check=False)
            if made.returncode != 0:
                raise NetnsUnavailable(f"the kernel refuses network namespaces: {made.stderr}")
        for dev, peer, host in (("plc0", "pev0", "pev"), ("site0", "lan0", "site")):
            made = run("ip", "link", "add", dev, "netns", self.ns["evse"], "type", "veth",
                       "peer", "name", peer, "netns", self.ns[host], check=False)  # fmt: skip
            if made.returncode != 0:
                raise NetnsUnavailable(f"the kernel refuses veth pairs: {made.stderr.strip()}")
        for host, dev in self.LINKS:
            for scope in ("all", "default", dev):
                run(*self.exec(host, "sysctl", "-qw", f"net.ipv6.conf.{scope}.accept_dad=0"),
                    check=False)  # fmt: skip
            run(*self.exec(host, "ip", "link", "set", "lo", "up"))
            run(*self.exec(host, "ip", "link", "set", dev, "multicast", "on", "up"))

    def exec(self, host: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[host], *args]

    def teardown(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(5)
        for name in self.ns.values():
            run("ip", "netns", "del", name, check=False)
