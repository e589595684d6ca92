"""The site bridge gate in the running daemon, across network namespaces made by the test:
the EVSE (the daemon, with the PLC link on plc0 and the site port site0), the PEV (the
simulated vehicle over TLS, its address by SLAAC from the daemon's advertisements) and a site
host. SLAC runs on the mock PLC world behind the virtual rig, as in mock mode.

Before authorization the PEV reaches only the EVSE's 2030.5 server; after it, IPv6 crosses
both ways and nothing else does; a revocation and an unplug isolate it again within 1 s; a
daemon killed with SIGKILL while bridged isolates it again at its next start.
"""

from __future__ import annotations

import ipaddress
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from firmware.sep2.pki import init_pki
from hil.firmware_process import Daemon, toml_dumps
from hil.pev.profiles import APPROVED_ISM
from hil.plc.netns import run
from hil.rig import Rig, wait_for_rig
from hil.utility import UtilityAuthority
from tests.integration.conftest import BASE_CONFIG, merged
from tests.integration.test_bridge_netns import (
    CAPTURE,
    EVSE,
    PEV4,
    PREFIX,
    SEND_HOMEPLUG,
    SEND_MARKER,
    SEND_MDNS,
    SITE,
    SITE4,
    TCP_SERVER,
    Hosts,
    hosts,
)
from tests.integration.test_bridge_netns import PORT as TCP_PORT

pytestmark = pytest.mark.integration

AREA = "TEST-AREA-NORTH"
PORT = 8444  # the 2030.5 server in the EVSE namespace (and a stand-in on the site host)
# TCP_CLIENT's port (8443) is the site's other service: non-J3072 traffic, which may cross
CLOSED_PORT = 9  # nothing listens there on the EVSE
KNOCK = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5).close()
    sys.exit(0)
except ConnectionRefusedError:
    sys.exit(2)  # the host answered with a reset: the port was reachable, only closed
except OSError:
    sys.exit(3)  # no answer at all: dropped on the way
"""
__all__ = ["hosts"]
TLS_HELLO = """
import socket, ssl, sys
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2.0) as raw:
        with context.wrap_socket(raw) as tls:
            pass
except ssl.SSLError:
    sys.exit(0)  # the server answered TLS (and wants our certificate): it is reachable
except OSError:
    sys.exit(1)
sys.exit(0)
"""  # the namespaces fixture, shared with the gate's own netns tests


class Site:
    """The namespaces, the daemon in the EVSE's, its rig, and the vehicle's client."""

    def __init__(self, hosts: Hosts, tmp: Path) -> None:
        self.hosts, self.tmp = hosts, tmp
        self.pki = init_pki(tmp / "pki").directory
        self.utility = UtilityAuthority(tmp, AREA)
        self.state = tmp / "state"
        self.install(approved=True)
        self.config = tmp / "config.toml"
        self.config.write_text(toml_dumps(self._config()))
        self.daemon: Daemon | None = None
        self.rig: Rig | None = None
        self.pev: subprocess.Popen[str] | None = None

    def _config(self) -> dict[str, Any]:
        d = self.pki
        return merged(BASE_CONFIG, {
            "hal": {"mock": {"rig_link": str(self.tmp / "rig")}},
            "paths": {"state_dir": str(self.state)},
            "tls": {"ca_file": str(d / "serca.pem"), "cert_file": str(d / "evse.pem"),
                    "key_file": str(d / "evse.key")},
            "sep2": {"enabled": True, "host": "plc", "port": PORT},
            "approvals": self.utility.config,
            "site": {"service_area": AREA, "functions": [{"mode": "max-lim-w", "percent": 100}]},
            "plc": {"interface": "mock", "duty": "nominal", "fallback": "basic-charging"},
            "bridge": {"plc_interface": "plc0", "site_interface": "site0", "backend": "linux",
                       "prefix": str(PREFIX), "ra_interval_s": 1},
        })  # fmt: skip

    def install(self, approved: bool) -> float:
        """A new list approving or revoking the vehicle's ISM; the wall-clock time it landed."""
        which = {"approve": {APPROVED_ISM: 5000}} if approved else {"revoke": [APPROVED_ISM]}
        self.utility.install(self.state, **which)
        return time.time()

    def start(self) -> Daemon:
        argv = self.hosts.exec("evse", sys.executable, "-m", "firmware", "run",
                               "--config", str(self.config))  # fmt: skip
        self.daemon = Daemon(self.config, argv=argv)
        self.daemon.wait_for("gatekeeper.ready", timeout_s=20)
        self.rig = wait_for_rig(str(self.tmp / "rig"))
        return self.daemon

    def plug_in_and_authorize(self) -> None:
        assert self.rig is not None and self.daemon is not None
        self.rig.command("EV:STATE B")
        self.rig.wait_duty(1, 99, 1000)
        self.rig.command("EV:PLC ON")
        self.daemon.wait_for("plc.link state=up", timeout_s=10)
        self.start_pev()
        self.daemon.wait_for("bridge.opened", timeout_s=20)

    def start_pev(self) -> None:
        self.stop_pev()
        self.pev = self.client("pev", "certified-4q")

    def client(self, host: str, profile: str) -> subprocess.Popen[str]:
        """The simulated vehicle's 2030.5 client, run in ``host``'s namespace."""
        command = self.hosts.exec(host, sys.executable, "-m", "hil.pev", "run",
                                  "--server", f"https://[{EVSE}]:{PORT}", "--pki", str(self.pki),
                                  "--profile", profile, "--poll")  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True)  # fmt: skip

    def stop_pev(self) -> None:
        if self.pev is not None and self.pev.poll() is None:
            self.pev.send_signal(signal.SIGINT)
            try:
                self.pev.wait(10)
            except subprocess.TimeoutExpired:
                self.pev.kill()
                self.pev.wait(5)
        self.pev = None

    def stop(self, hard: bool = False) -> None:
        if self.rig is not None:
            self.rig.close()
            self.rig = None
        if self.daemon is not None:
            if hard:
                self.daemon.proc.send_signal(signal.SIGKILL)
                self.daemon.proc.wait(10)
            else:
                assert self.daemon.stop() == 0
            self.daemon = None

    def pev_address(self) -> str:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            found = [a for a in self.hosts.global_addresses("pev", "pev0")
                     if ipaddress.IPv6Address(a) in PREFIX and a != SITE]  # fmt: skip
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError("the PEV got no address in the prefix from the EVSE's RAs")


PEV_HOST_MAC = "02:eb:5e:00:ee:01"  # firmware.plc.mock.world.PEV_HOST_MAC


def line_time(line: str) -> float:
    """The wall-clock time of a daemon log line (its leading ISO timestamp, local time)."""
    return datetime.fromisoformat(line.split(" ", 1)[0]).timestamp()


@pytest.fixture
def site(hosts: Hosts, tmp_path: Path) -> Iterator[Site]:
    """The site host at a fixed address of the prefix (IPv6) and with IPv4 next to the PEV's,
    a TCP server on the site host and on the PEV, and the daemon started. The PEV's host has
    the MAC of the mock PLC world's vehicle, as a car's modem and its host share the cable:
    the gate binds only a client whose neighbour entry on plc0 carries the SLAC-matched MAC."""
    run(*hosts.exec("pev", "ip", "link", "set", "dev", "pev0", "address", PEV_HOST_MAC))
    run(*hosts.exec("site", "ip", "-6", "addr", "add", f"{SITE}/64", "dev", "lan0", "nodad"))
    pairs = (("pev", "pev0", PEV4, SITE4, ("site", "lan0")),
             ("site", "lan0", SITE4, PEV4, ("pev", "pev0")))  # fmt: skip
    for host, dev, own, other, other_dev in pairs:
        run(*hosts.exec(host, "ip", "addr", "add", f"{own}/24", "dev", dev))
        run(*hosts.exec(host, "ip", "neigh", "add", other, "lladdr", hosts.mac(*other_dev),
                        "dev", dev, "nud", "permanent"))  # fmt: skip
    for host in ("site", "pev"):
        hosts.start(host, TCP_SERVER, str(TCP_PORT))
    hosts.start("site", TCP_SERVER, str(PORT))  # a 2030.5 server on the site, say
    made = Site(hosts, tmp_path)
    made.start()
    try:
        yield made
    finally:
        made.stop_pev()
        made.stop(hard=made.daemon is not None and made.daemon.proc.poll() is not None)


def eventually(check: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def isolated(hosts: Hosts, pev: str) -> list[bool]:
    return hosts.reaches(("pev", "ping6", SITE), ("pev", "tcp", SITE), ("site", "ping6", pev),
                         ("site", "tcp", pev))  # fmt: skip


def test_the_site_bridge_follows_the_authorization_and_survives_a_crash(site: Site) -> None:
    hosts = site.hosts
    pev = site.pev_address()  # by SLAAC, from the daemon's router advertisements
    reached = subprocess.run(hosts.python("pev", TLS_HELLO, EVSE, str(PORT)), timeout=10)
    assert reached.returncode == 0, "the PEV reaches the 2030.5 server over the ULA"
    assert isolated(hosts, pev) == [False] * 4, "isolated before authorization"
    # the firmware's own input filter on the PLC link: the 2030.5 port, ND/RA and DNS-SD only
    knocked = subprocess.run(hosts.python("pev", KNOCK, EVSE, str(CLOSED_PORT)), timeout=10)
    assert knocked.returncode == 3, "another port on the EVSE is dropped, not even refused"
    assert hosts.reaches(("pev", "ping6", EVSE)) == [False], "no echo from the vehicle's side"
    table = run(*hosts.exec("evse", "nft", "list", "table", "inet", "evse_gatekeeper_plc"))
    assert f"tcp dport {PORT} accept" in table.stdout and "packets 0 " not in table.stdout

    site.plug_in_and_authorize()
    # the new bridge takes a moment to carry (its ports go forwarding, neighbours are found)
    crossing = eventually(lambda: isolated(hosts, pev) == [True] * 4, within_s=5)
    assert crossing, "IPv6 both ways once authorized"
    capture = hosts.start("site", CAPTURE, "lan0", "5")
    run(*hosts.python("pev", SEND_HOMEPLUG, "pev0", hosts.mac("site", "lan0").replace(":", "")))
    ipv4 = hosts.reaches(("pev", "ping4", SITE4))
    run(*hosts.python("pev", SEND_MDNS, SITE, "pev0"))
    run(*hosts.python("pev", SEND_MARKER, SITE))
    out, _ = capture.communicate(timeout=10)
    crossed = json.loads(out)
    assert crossed == {"homeplug": 0, "ipv4": 0, "mdns": 0, "marker": 1}, crossed
    assert ipv4 == [False], "IPv4 does not cross"
    # a valid certificate from the site side reaches the server through the open bridge, but
    # the plug-in's vehicle is bound: ignored and logged, never energized
    daemon = site.daemon
    assert daemon is not None
    intruder = site.client("site", "silent")
    try:
        ignored = daemon.wait_for("j3072.other_vehicle", timeout_s=15)
    finally:
        intruder.send_signal(signal.SIGINT)
        intruder.wait(10)
    intruder_lfdi = ignored.split(" lfdi=", 1)[1].split()[0]
    assert intruder_lfdi not in ignored.split("session_lfdi=", 1)[1]
    energized = [ln for ln in daemon.lines if f"sep2.energize lfdi={intruder_lfdi}" in ln]
    assert energized == [], "the intruder is never energized"
    # §4.2.4: J3072 traffic stays on the PLC link, the 2030.5 port included
    to_site = subprocess.run(hosts.python("pev", KNOCK, SITE, str(PORT)), timeout=10)
    assert to_site.returncode == 3, "2030.5 from the vehicle does not cross to the site"

    installed_at = site.install(approved=False)
    closed = daemon.wait_for("bridge.closed", timeout_s=3)
    assert line_time(closed) - installed_at <= 1.0, closed
    print(f"revoked: bridge closed {line_time(closed) - installed_at:.3f} s after the install")
    assert isolated(hosts, pev) == [False] * 4, "isolated again after the revocation"

    site.install(approved=True)  # the same session's decision grants again
    daemon.wait_for("bridge.opened", timeout_s=5)
    assert site.rig is not None
    unplugged_at = time.time()
    site.rig.command("EV:STATE A")
    closed = daemon.wait_for("bridge.closed", timeout_s=3)
    assert line_time(closed) - unplugged_at <= 1.0, closed
    print(f"unplugged: bridge closed {line_time(closed) - unplugged_at:.3f} s after EV:STATE A")
    assert isolated(hosts, pev) == [False] * 4, "isolated again after the unplug"

    site.plug_in_and_authorize()
    site.stop(hard=True)  # SIGKILL while bridged: the kernel keeps the bridge
    left_up = eventually(lambda: hosts.reaches(("pev", "ping6", SITE)) == [True], within_s=5)
    assert left_up, "the crash left the bridge up"
    restarted = site.start()
    assert any("bridge.isolated_at_start leftover_removed=true" in ln for ln in restarted.lines)
    assert isolated(hosts, pev) == [False] * 4, "isolated at the next start"
