"""Router advertisements on the PLC link (RFC 4861 §6.2): how the vehicle gets its address.

The profile has the EVSE advertise a unique-local prefix that the PEV configures by SLAAC
(docs/v2g-ac-profile.md, "Network and security", §4.2). This module builds the RA (a pure
function) and sends it to all-nodes every ``interval_s`` and in answer to router solicitations.
It does not assign the EVSE's own address (``firmware.net.addressing``) and does not route.

It runs as an asyncio task (``await sender.run()``, ``sender.stop()``) rather than a thread:
the rest of the PLC side (SLAC, the 2030.5 server) lives on the daemon's event loop, and an RA
is a ~80-byte datagram every few seconds on a non-blocking socket, so it needs no thread of its
own, cannot stall the loop, and stops with a flag instead of a cross-thread signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import math
import socket
import struct

from firmware.errors import GatekeeperError

logger = logging.getLogger(__name__)

ICMPV6_ROUTER_SOLICIT, ICMPV6_ROUTER_ADVERT = 133, 134  # RFC 4861 §4.1, §4.2
OPT_SOURCE_LLADDR, OPT_PREFIX_INFO = 1, 3  # RFC 4861 §4.6
PREFIX_FLAG_ON_LINK, PREFIX_FLAG_AUTONOMOUS = 0x80, 0x40  # RFC 4861 §4.6.2 L and A
ND_HOP_LIMIT = 255  # RFC 4861 §6.1: ND received with any other hop limit is dropped
ALL_NODES, ALL_ROUTERS = "ff02::1", "ff02::2"
# RFC 4861 §4.2: 0 = not a default router. The PEV must reach only the EVSE, on-link (the
# profile forbids routing at initial connect, §4.2.4); once the gate bridges, the site's own
# router advertises itself as the default router, and ours must not compete with it.
ROUTER_LIFETIME_S = 0
VALID_LIFETIME_S, PREFERRED_LIFETIME_S = 3600, 1800
MAX_RA_DELAY_S = 0.5  # RFC 4861 §10 MAX_RA_DELAY_TIME: answer a solicitation within it
# RFC 4861 §6.2.6 spaces multicast RAs 3 s apart (MIN_DELAY_BETWEEN_RAS) to spare a busy LAN.
# The PLC link is point to point with one PEV, and SLAAC is on the path from plug-in to
# authorization, so answers go out within MAX_RA_DELAY_S and a flood of solicitations still
# gets at most one answer per MAX_RA_DELAY_S.
MIN_ANSWER_GAP_S = MAX_RA_DELAY_S
ICMP6_FILTER = 1  # linux/icmpv6.h: a 256-bit "block this type" mask
SIOCGIFHWADDR = 0x8927  # linux/sockios.h
READS_PER_WAKEUP = 64  # a solicitation flood cannot hold the event loop


class RaError(GatekeeperError):
    """Raised when the RA socket cannot be opened or bound to the PLC interface."""


def build_router_advertisement(
    prefix: ipaddress.IPv6Network,
    mac: bytes | None,
    valid_lifetime_s: int = VALID_LIFETIME_S,
    preferred_lifetime_s: int = PREFERRED_LIFETIME_S,
) -> bytes:
    """The ICMPv6 RA (RFC 4861 §4.2) with a Prefix Information option (§4.6.2) and, given a
    MAC, a Source Link-Layer Address option (§4.6.1). The checksum is left 0: the kernel fills
    it in on raw ICMPv6 sockets (RFC 3542 §3.1)."""
    if prefix.prefixlen != 64:
        raise ValueError(f"SLAAC needs a /64 prefix, got {prefix}")  # RFC 4862 §5.5.3
    if not 0 <= preferred_lifetime_s <= valid_lifetime_s < 2**32:
        raise ValueError("need 0 <= preferred lifetime <= valid lifetime")  # RFC 4862 §5.5.3 c
    # Cur Hop Limit 0 = unspecified; M and O clear: addresses by SLAAC, no DHCPv6.
    header = struct.pack("!BBHBBHII", ICMPV6_ROUTER_ADVERT, 0, 0, 0, 0, ROUTER_LIFETIME_S, 0, 0)
    prefix_info = struct.pack(
        "!BBBBIII16s",
        OPT_PREFIX_INFO,
        4,  # option length in units of 8 octets
        prefix.prefixlen,
        PREFIX_FLAG_ON_LINK | PREFIX_FLAG_AUTONOMOUS,
        valid_lifetime_s,
        preferred_lifetime_s,
        0,
        prefix.network_address.packed,
    )
    if mac is None or len(mac) != 6 or not any(mac):
        return header + prefix_info  # §4.6.1: the option is omitted without a link address
    return header + prefix_info + struct.pack("!BB6s", OPT_SOURCE_LLADDR, 1, mac)


def is_router_solicitation(data: bytes, source: str) -> bool:
    """Whether ``data`` is a valid RS per RFC 4861 §6.1.1 (hop limit and checksum are checked
    by the caller and the kernel). Never raises on malformed input."""
    if len(data) < 8 or data[0] != ICMPV6_ROUTER_SOLICIT or data[1] != 0:
        return False
    offset, has_lladdr = 8, False
    while offset < len(data):
        if offset + 2 > len(data) or data[offset + 1] == 0:
            return False  # §6.1.1: every option's length must be > 0
        has_lladdr |= data[offset] == OPT_SOURCE_LLADDR
        offset += data[offset + 1] * 8
        if offset > len(data):
            return False
    try:
        unspecified = ipaddress.IPv6Address(source.partition("%")[0]).is_unspecified
    except ValueError:
        return False
    return not (unspecified and has_lladdr)  # §6.1.1: no SLLA from the unspecified address


class RaSender:
    """Advertises ``prefix`` on ``ifname`` until stopped. Call ``stop`` from the loop's thread.

    While the gate bridges the PLC interface, solicitations reach the bridge, not the port,
    so only the periodic advertisements go out; the PEV keeps its address from them.
    """

    def __init__(
        self,
        ifname: str,
        prefix: ipaddress.IPv6Network,
        interval_s: float = 10.0,
        mac: bytes | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"the RA interval must be positive, got {interval_s}")
        self.ifname = ifname
        self.prefix = prefix
        self.interval_s = interval_s
        self.mac = mac
        self.sent = 0
        self.answered = 0
        self.dropped = 0
        self._stopping = False
        self._answer_at: float | None = None
        self._last_sent = -math.inf
        self._wake: asyncio.Event | None = None

    def stop(self) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Advertise until ``stop``; raises RaError only if the socket cannot be set up."""
        sock, index = self._open()
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        advert = build_router_advertisement(
            self.prefix, self.mac or _hardware_address(sock, self.ifname)
        )
        loop.add_reader(sock.fileno(), self._on_readable, sock, loop)
        logger.info("net.ra.started if=%s prefix=%s", self.ifname, self.prefix)
        try:
            next_periodic = loop.time()
            while not self._stopping:
                now = loop.time()
                answer_due = self._answer_at is not None and now >= self._answer_at
                if now >= next_periodic or answer_due:
                    self._send(sock, advert, index, now)
                    if answer_due:
                        self.answered += 1
                    self._answer_at = None  # any RA just sent answers a pending RS
                    if now >= next_periodic:
                        next_periodic = now + self.interval_s
                    continue
                due = min(next_periodic, math.inf if self._answer_at is None else self._answer_at)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due - now)
        finally:
            loop.remove_reader(sock.fileno())
            sock.close()
            logger.info("net.ra.stopped if=%s sent=%d", self.ifname, self.sent)

    def _open(self) -> tuple[socket.socket, int]:
        try:
            index = socket.if_nametoindex(self.ifname)
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        except OSError as err:
            raise RaError(f"RA socket on {self.ifname}: {err.strerror or err}") from err
        try:
            _configure(sock, self.ifname, index)
        except OSError as err:
            sock.close()
            raise RaError(f"RA socket on {self.ifname}: {err.strerror or err}") from err
        return sock, index

    def _send(self, sock: socket.socket, advert: bytes, index: int, now: float) -> None:
        try:
            sock.sendto(advert, (ALL_NODES, 0, 0, index))
        except OSError as err:  # link down, modem gone: keep trying on the next tick
            logger.warning("net.ra.send_failed if=%s error=%s", self.ifname, err.strerror)
            return
        self.sent += 1
        self._last_sent = now

    def _on_readable(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        space = socket.CMSG_SPACE(4)
        for _ in range(READS_PER_WAKEUP):
            try:
                data, ancdata, _flags, source = sock.recvmsg(1500, space)
            except BlockingIOError:
                return
            except OSError as err:
                logger.warning("net.ra.recv_failed if=%s error=%s", self.ifname, err.strerror)
                return
            if _hop_limit(ancdata) != ND_HOP_LIMIT or not is_router_solicitation(data, source[0]):
                self.dropped += 1
                continue
            if self._answer_at is None:
                self._answer_at = max(loop.time(), self._last_sent + MIN_ANSWER_GAP_S)
                if self._wake is not None:
                    self._wake.set()


def _configure(sock: socket.socket, ifname: str, index: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ND_HOP_LIMIT)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ND_HOP_LIMIT)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _pass_only(ICMPV6_ROUTER_SOLICIT))
    # Solicitations go to all-routers (RFC 4861 §6.3.7); a host does not listen there.
    group = socket.inet_pton(socket.AF_INET6, ALL_ROUTERS) + struct.pack("@I", index)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
    sock.setblocking(False)


def _pass_only(icmp_type: int) -> bytes:
    words = [0xFFFFFFFF] * 8
    words[icmp_type >> 5] &= ~(1 << (icmp_type & 31)) & 0xFFFFFFFF
    return struct.pack("@8I", *words)


def _hardware_address(sock: socket.socket, ifname: str) -> bytes | None:
    try:
        reply = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()))
    except OSError:
        return None  # no link-layer address: the SLLA option is left out
    return bytes(reply[18:24])  # struct ifreq: 16-byte name, then sa_family, then sa_data


def _hop_limit(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(data) >= 4:
            return int(struct.unpack("@i", data[:4])[0])
    return None
