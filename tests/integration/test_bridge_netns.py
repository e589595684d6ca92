"""The PLC link's addressing and the site bridge gate on real kernel parts: network namespaces
"evse" (``plc0`` towards "pev", ``site0`` towards "site"), "pev" and "site", made by the test
and always deleted; skipped with the kernel's reason where namespaces, veth, bridges or
nftables are refused. Traffic is real: ICMPv6 echo, TCP, raw frames caught with AF_PACKET."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from firmware.net.addressing import assign_evse_address
from firmware.net.bridge import BridgeError, LinuxBridge
from hil.plc.netns import NetnsUnavailable, ThreeHosts, run

pytestmark = pytest.mark.integration

PREFIX = ipaddress.IPv6Network("fd7e:57a9:e5e0:1::/64")
EVSE, PEV, SITE = (str(PREFIX[n]) for n in (1, 0xE7, 0x5173))
PEV4, SITE4 = "10.77.0.1", "10.77.0.2"
PORT = 8443

TCP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(8)
print("READY", flush=True)
while True:
    conn, _ = s.accept()
    with conn:
        conn.sendall(b"ok")
"""
TCP_CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0) as conn:
        sys.exit(0 if conn.recv(2) == b"ok" else 1)
except OSError:
    sys.exit(1)
"""
PING4 = """
import os, select, socket, struct, sys, time
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
ident = os.getpid() & 0xFFFF
echo = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"evgk-ping4"
echo = echo[:2] + struct.pack("!H", checksum(echo)) + echo[4:]
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.sendto(echo, (sys.argv[1], 0))
deadline = time.monotonic() + 1.0
while (left := deadline - time.monotonic()) > 0 and select.select([sock], [], [], left)[0]:
    packet, (source, _) = sock.recvfrom(1500)
    icmp = packet[(packet[0] & 0x0F) * 4:]
    if source == sys.argv[1] and icmp[0] == 0 and icmp[4:6] == struct.pack("!H", ident):
        sys.exit(0)
sys.exit(1)
"""
CAPTURE = """
import json, select, socket, sys, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
sock.bind((sys.argv[1], 0))
print("READY", flush=True)
counts = {"homeplug": 0, "ipv4": 0, "mdns": 0, "marker": 0}
# The marker is sent last: once it is seen (and a moment after), everything before it is in.
deadline = time.monotonic() + float(sys.argv[2])
while (left := deadline - time.monotonic()) > 0:
    if not select.select([sock], [], [], left)[0]:
        continue
    frame, address = sock.recvfrom(65535)
    if address[2] == socket.PACKET_OUTGOING:
        continue
    ethertype = int.from_bytes(frame[12:14], "big")
    counts["homeplug"] += ethertype in (0x88E1, 0x8912)
    counts["ipv4"] += ethertype == 0x0800
    counts["mdns"] += b"evgk-mdns" in frame
    if b"evgk-marker" in frame:
        counts["marker"] += 1
        deadline = min(deadline, time.monotonic() + 0.2)
print(json.dumps(counts), flush=True)
"""
SEND_HOMEPLUG = """
import socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((sys.argv[1], 0))
own = sock.getsockname()[4]
for dst in (b"\\xff" * 6, bytes.fromhex(sys.argv[2])) * 3:
    for ethertype in (b"\\x88\\xe1", b"\\x89\\x12"):
        # CM_SLAC_PARM.REQ (MMV 1, MMTYPE 0x6064 little-endian), padded to the minimum frame
        sock.send((dst + own + ethertype + b"\\x01\\x64\\x60").ljust(60, b"\\0"))
"""
SEND_MDNS = """
import socket, sys
with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
    index = socket.if_nametoindex(sys.argv[2])
    sock.sendto(b"evgk-mdns", ("ff02::fb", 5353, 0, index))
    sock.sendto(b"evgk-mdns", (sys.argv[1], 5353))
"""
SEND_MARKER = """
import socket, sys
with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
    sock.sendto(b"evgk-marker", (sys.argv[1], 9))
"""
RA_SENDER = """
import asyncio, ipaddress, sys
from firmware.net.ra import RaSender
async def main():
    sender = RaSender(sys.argv[1], ipaddress.IPv6Network(sys.argv[2]), float(sys.argv[3]))
    print("READY", flush=True)
    await sender.run()
asyncio.run(main())
"""
SOLICIT = """
import select, socket, sys, time
ifname, hop_limit, payload, wait_s = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hop_limit)
started = time.monotonic()
sock.sendto(bytes.fromhex(payload), ("ff02::2", 0, 0, socket.if_nametoindex(ifname)))
while (left := started + wait_s - time.monotonic()) > 0 and select.select([sock], [], [], left)[0]:
    packet = sock.recv(1500)
    if packet[0] == 134:
        print(f"{time.monotonic() - started:.3f} {packet.hex()}", flush=True)
        sys.exit(0)
sys.exit(1)
"""


class Hosts(ThreeHosts):
    """The three namespaces, with the bridge family of nftables probed in the EVSE's."""

    def __init__(self) -> None:
        super().__init__("egb")

    def build(self) -> None:
        super().build()
        self._probe_bridge_and_nft()

    def _probe_bridge_and_nft(self) -> None:
        made = run(
            *self.exec("evse", "ip", "link", "add", "probe-br", "type", "bridge"), check=False
        )
        if made.returncode != 0:
            raise NetnsUnavailable(f"the kernel refuses bridges: {made.stderr.strip()}")
        run(*self.exec("evse", "ip", "link", "del", "probe-br"))
        script = "table bridge probe {\n chain f { type filter hook forward priority 0; }\n}\n"
        for text in (script, "delete table bridge probe\n"):
            done = subprocess.run(
                self.exec("evse", "nft", "-f", "-"),
                input=text,
                capture_output=True,
                text=True,
                timeout=10,
            )
            if done.returncode != 0:
                reason = (done.stderr.strip().splitlines() or ["?"])[0]
                raise NetnsUnavailable(f"nftables bridge family refused: {reason}")

    def python(self, host: str, code: str, *args: str) -> list[str]:
        return self.exec(host, sys.executable, "-c", code, *args)

    def start(self, host: str, code: str, *args: str) -> subprocess.Popen[str]:
        """A snippet that prints READY once listening; returned after it did."""
        proc = subprocess.Popen(self.python(host, code, *args), stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        return proc

    def reaches(self, *checks: tuple[str, str, str]) -> list[bool]:
        """(from host, "ping6" | "tcp" | "ping4", address) checks, run in parallel."""
        procs = [
            subprocess.Popen(
                self._check(*check), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for check in checks
        ]
        return [proc.wait(10) == 0 for proc in procs]

    def _check(self, host: str, kind: str, address: str) -> list[str]:
        if kind == "ping6":
            return self.exec(host, sys.executable, "-m", "hil.plc.ping6", address)
        if kind == "ping4":
            return self.python(host, PING4, address)
        return self.python(host, TCP_CLIENT, address, str(PORT))

    def mac(self, host: str, dev: str) -> str:
        shown = run("ip", "-n", self.ns[host], "-j", "link", "show", "dev", dev)
        return str(json.loads(shown.stdout)[0]["address"])

    def global_addresses(self, host: str, dev: str) -> list[str]:
        shown = run("ip", "-n", self.ns[host], "-j", "-6", "addr", "show", "dev", dev)
        infos = json.loads(shown.stdout)[0]["addr_info"]
        return [a["local"] for a in infos if a["scope"] == "global" and not a.get("tentative")]

    def gate(self) -> LinuxBridge:
        return LinuxBridge("plc0", "site0", PREFIX, multicast_pps=50, netns=self.ns["evse"])


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    made = Hosts()
    try:
        made.build()
    except (NetnsUnavailable, RuntimeError) as err:
        made.teardown()
        pytest.skip(str(err))
    try:
        yield made
    finally:
        made.teardown()


@pytest.fixture
def lan(hosts: Hosts) -> Hosts:
    """The EVSE's address on plc0, fixed addresses for the PEV and the site host (IPv6 in the
    PLC prefix, IPv4 with static neighbours so that only the filter can stop IPv4), and a TCP
    server on each of the three hosts."""
    assign_evse_address("plc0", PREFIX, netns=hosts.ns["evse"])
    for host, dev, address, other4, other_dev in (
        ("pev", "pev0", PEV, SITE4, ("site", "lan0")),
        ("site", "lan0", SITE, PEV4, ("pev", "pev0")),
    ):
        own4 = PEV4 if host == "pev" else SITE4
        run(*hosts.exec(host, "ip", "-6", "addr", "add", f"{address}/64", "dev", dev, "nodad"))
        run(*hosts.exec(host, "ip", "addr", "add", f"{own4}/24", "dev", dev))
        run(
            *hosts.exec(
                host,
                "ip",
                "neigh",
                "add",
                other4,
                "lladdr",
                hosts.mac(*other_dev),
                "dev",
                dev,
                "nud",
                "permanent",
            )
        )
    for host in ("evse", "pev", "site"):
        hosts.start(host, TCP_SERVER, str(PORT))
    return hosts


def test_the_pev_gets_its_address_from_the_ra_and_reaches_the_evse(hosts: Hosts) -> None:
    assign_evse_address("plc0", PREFIX, netns=hosts.ns["evse"])
    hosts.start("evse", TCP_SERVER, str(PORT))
    # A long interval: only the first advertisement and the answers to solicitations go out.
    sender = hosts.start("evse", RA_SENDER, "plc0", str(PREFIX), "600")
    deadline = time.monotonic() + 5.0
    while not (slaac := hosts.global_addresses("pev", "pev0")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slaac and ipaddress.IPv6Address(slaac[0]) in PREFIX
    assert hosts.reaches(("pev", "tcp", EVSE), ("pev", "ping6", EVSE)) == [True, True]
    # Router lifetime 0: the EVSE is not the PEV's default router.
    routes = run(*hosts.exec("pev", "ip", "-6", "route", "show", "default")).stdout
    assert routes.strip() == ""

    # RFC 4861 §6.1.1: a solicitation that may have been routed (hop limit below 255) or
    # carries a zero-length option is dropped, and the sender keeps going.
    rs = "8500000000000000"
    for hop_limit, payload in (("64", rs), ("255", rs + "0100020000000000"), ("255", "85")):
        ignored = run(*hosts.python("pev", SOLICIT, "pev0", hop_limit, payload, "0.7"), check=False)
        assert ignored.returncode == 1, f"answered a bad solicitation {payload} ({hop_limit})"
    assert sender.poll() is None
    answer = run(*hosts.python("pev", SOLICIT, "pev0", "255", rs, "2"), check=False)
    assert answer.returncode == 0, "no RA answered the solicitation"
    elapsed_s, packet = answer.stdout.split()
    assert float(elapsed_s) < 0.5  # RFC 4861 §10 MAX_RA_DELAY_TIME
    advert = bytes.fromhex(packet)
    assert advert[6:8] == b"\0\0"  # router lifetime
    assert advert[16 + 16 : 16 + 32] == PREFIX.network_address.packed
    plc0_mac = bytes.fromhex(hosts.mac("evse", "plc0").replace(":", ""))
    assert advert[48:] == b"\x01\x01" + plc0_mac  # source link-layer address option


def test_the_gate_bridges_only_ipv6_and_only_while_open(lan: Hosts) -> None:
    before = lan.reaches(
        ("pev", "ping6", SITE), ("pev", "tcp", SITE), ("site", "ping6", PEV), ("site", "tcp", PEV)
    )
    assert before == [False] * 4, "the PLC link must be isolated before authorization"
    assert lan.reaches(("pev", "tcp", EVSE)) == [True]

    gate = lan.gate()
    gate.open("session-1")
    try:
        assert gate.state()["bridged"] and gate.present() == {"bridge": True, "table": True}
        # Forget the EVSE's MAC: the PEV must find its address on the bridge afresh.
        run(*lan.exec("pev", "ip", "neigh", "flush", "dev", "pev0"))
        opened = lan.reaches(
            ("pev", "ping6", SITE),
            ("pev", "tcp", SITE),
            ("site", "ping6", PEV),
            ("site", "tcp", PEV),
            ("pev", "tcp", EVSE),
            ("pev", "ping6", EVSE),
        )
        assert opened == [True] * 6
        # "ping4 own" shows the IPv4 ping itself works; the marker that the capture sees.
        crossing = {"homeplug": 0, "ipv4": 0, "mdns": 0, "marker": 1, "ping4 own": True,
                    "ping4 site": False}  # fmt: skip
        assert _crossing(lan) == crossing
    finally:
        started = time.monotonic()
        gate.close("test over")
        took_s = time.monotonic() - started
    assert took_s < 1.0
    after = lan.reaches(
        ("pev", "ping6", SITE),
        ("pev", "tcp", SITE),
        ("site", "ping6", PEV),
        ("site", "tcp", PEV),
        ("pev", "tcp", EVSE),
        ("pev", "ping6", EVSE),
    )
    assert after == [False, False, False, False, True, True]
    assert gate.present() == {"bridge": False, "table": False}
    gate.close("again")  # idempotent


def _crossing(lan: Hosts) -> dict[str, object]:
    """What reaches the site's wire while the PEV sends HomePlug frames, an IPv4 ping and one
    IPv6 datagram (the marker that proves the capture sees bridged traffic)."""
    capture = lan.start("site", CAPTURE, "lan0", "5")
    run(*lan.python("pev", SEND_HOMEPLUG, "pev0", lan.mac("site", "lan0").replace(":", "")))
    pings = lan.reaches(("pev", "ping4", PEV4), ("pev", "ping4", SITE4))
    run(*lan.python("pev", SEND_MARKER, SITE))
    out, _ = capture.communicate(timeout=5)
    return {**json.loads(out), "ping4 own": pings[0], "ping4 site": pings[1]}


def test_cleanup_removes_what_a_crashed_gate_left(lan: Hosts) -> None:
    lan.gate().open("session-before-the-crash")
    assert lan.reaches(("pev", "ping6", SITE)) == [True]

    fresh = lan.gate()
    assert fresh.cleanup_leftovers() is True
    assert fresh.present() == {"bridge": False, "table": False}
    assert lan.reaches(("pev", "ping6", SITE), ("pev", "tcp", EVSE)) == [False, True]
    assert fresh.cleanup_leftovers() is False


def test_open_refuses_a_missing_interface_and_leaves_nothing(lan: Hosts) -> None:
    gate = LinuxBridge("plc0", "nosuch0", PREFIX, netns=lan.ns["evse"])
    with pytest.raises(BridgeError, match="no interface nosuch0"):
        gate.open("session-1")
    assert gate.present() == {"bridge": False, "table": False}
    assert lan.reaches(("pev", "tcp", EVSE)) == [True]


def test_netlink_calls_refuse_to_run_on_an_event_loop(lan: Hosts) -> None:
    """pyroute2's synchronous IPRoute runs its own event loop; the daemon must use a thread."""

    async def on_the_loop() -> None:
        with pytest.raises(BridgeError, match=r"asyncio\.to_thread"):
            lan.gate().cleanup_leftovers()
        assert await asyncio.to_thread(lan.gate().cleanup_leftovers) is False

    asyncio.run(on_the_loop())
