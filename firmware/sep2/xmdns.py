"""xmDNS for the 2030.5 server: ``_smartenergy._tcp.site`` answered on ff05::fb, on the PLC
interface only.

IEEE 2030.5 describes discovery by xmDNS (site-local scope: the group ff05::fb, the domain
``.site``) where the V2G-AC profile says mDNS ``.local`` on ff02::fb (docs/v2g-ac-profile.md,
"Addressing and discovery"); some vehicle stacks ask the 2030.5 way, so the EVSE answers
both. This responder only answers questions about its own names (the service's PTR, the
instance's SRV and TXT, the host's AAAA) with the same TXT keys as the mDNS announcement; it
never announces unasked. Its socket is bound to the PLC interface (SO_BINDTODEVICE), joins
ff05::fb there only and sends there only, so the site never hears it. The DNS messages are
read and written with the ``zeroconf`` library's record classes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import TYPE_CHECKING

from firmware.logs import log_event

if TYPE_CHECKING:
    from zeroconf._dns import DNSRecord  # the record classes' own module: typed

    from firmware.sep2.discovery import Announcement

logger = logging.getLogger(__name__)

XMDNS_GROUP = "ff05::fb"
MDNS_PORT = 5353
SITE_SERVICE = "_smartenergy._tcp.site."
TTL_S = 120
MAX_QUESTIONS = 16


def records(announcement: Announcement, addresses: list[str]) -> list[DNSRecord]:
    """The PTR, SRV, TXT and AAAA records of the service in the ``.site`` domain."""
    from zeroconf import const
    from zeroconf._dns import DNSAddress, DNSPointer, DNSService, DNSText

    a = announcement
    instance = f"{a.instance}.{SITE_SERVICE}"
    host = f"{a.instance}.site."
    unique = const._CLASS_IN | const._CLASS_UNIQUE
    txt = b"".join(bytes([len(kv)]) + kv for kv in
                   (b"txtvers=1", b"dcap=/dcap", f"https={a.port}".encode()))  # fmt: skip
    return [
        DNSPointer(SITE_SERVICE, const._TYPE_PTR, const._CLASS_IN, TTL_S, instance),
        DNSService(instance, const._TYPE_SRV, unique, TTL_S, 0, 0, a.port, host),
        DNSText(instance, const._TYPE_TXT, unique, TTL_S, txt),
        *(DNSAddress(host, const._TYPE_AAAA, unique, TTL_S,
                     socket.inet_pton(socket.AF_INET6, address)) for address in addresses),
    ]  # fmt: skip


def answer(query: bytes, known: list[DNSRecord]) -> bytes | None:
    """The response to ``query`` (a DNS message), or None when it asks nothing of ours."""
    from zeroconf import const
    from zeroconf._protocol.incoming import DNSIncoming
    from zeroconf._protocol.outgoing import DNSOutgoing

    try:
        incoming = DNSIncoming(query)
    except Exception:  # zeroconf raises various errors on garbage; a bad packet is dropped
        return None
    if not incoming.valid or not incoming.is_query():
        return None
    wanted = [
        record
        for question in incoming.questions[:MAX_QUESTIONS]
        for record in known
        if record.name.lower() == question.name.lower()
        and question.type in (record.type, const._TYPE_ANY)
    ]
    if not wanted:
        return None
    out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA, True)
    for record in wanted:
        out.add_answer_at_time(record, 0)
    for record in known:
        if record not in wanted:
            out.add_additional_answer(record)
    packets = out.packets()
    return packets[0] if packets else None


class XmdnsResponder(asyncio.DatagramProtocol):
    def __init__(self, ifname: str, known: list[DNSRecord]) -> None:
        self.ifname, self.known = ifname, known
        self.index = socket.if_nametoindex(ifname)
        self.answered = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = _socket(self.ifname, self.index)
        transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._transport = transport
        log_event(logger, "sep2.xmdns", ifname=self.ifname, group=XMDNS_GROUP,
                  service=SITE_SERVICE)  # fmt: skip

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        reply = answer(data, self.known)
        if reply is None or self._transport is None:
            return
        self.answered += 1
        self._transport.sendto(reply, (XMDNS_GROUP, MDNS_PORT, 0, self.index))
        if len(addr) >= 2 and addr[1] != MDNS_PORT:  # a one-shot (legacy unicast) query
            self._transport.sendto(reply, addr)

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def _socket(ifname: str, index: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::", MDNS_PORT))
        group = socket.inet_pton(socket.AF_INET6, XMDNS_GROUP) + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
