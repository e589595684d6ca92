"""Find the EVSE's 2030.5 server as a vehicle does: DNS-SD ``_smartenergy._tcp.local`` on
its PLC interface, or (``--xmdns``) the 2030.5 way, ``_smartenergy._tcp.site`` on ff05::fb.

``python -m hil.pev.discover find --if DEV [--timeout S] [--xmdns]`` prints ``FOUND
<address> <port> <txt>`` or ``NOT FOUND`` (exit 1). ``... announce --if DEV --port N`` runs
the EVSE's announcement alone until killed (for namespace tests), printing ``ANNOUNCED``."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from dataclasses import dataclass

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from firmware.sep2.discovery import SERVICE_TYPE, Announcement, Discovery


@dataclass(frozen=True, slots=True)
class Found:
    address: str
    port: int
    txt: dict[str, str]


async def find_server(ifname: str, timeout_s: float = 5.0) -> Found | None:
    index = socket.if_nametoindex(ifname)
    azc = AsyncZeroconf(interfaces=[index], ip_version=IPVersion.V6Only)
    names: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added:
            names.put_nowait(name)

    browser = AsyncServiceBrowser(azc.zeroconf, [SERVICE_TYPE], handlers=[on_change])
    try:
        name = await asyncio.wait_for(names.get(), timeout_s)
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(azc.zeroconf, int(timeout_s * 1000)):
            return None
        txt = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        addresses = info.parsed_scoped_addresses(IPVersion.V6Only)
        return Found(addresses[0] if addresses else "", info.port or 0, txt)
    except TimeoutError:
        return None
    finally:
        await browser.async_cancel()
        await azc.async_close()


def find_site_server(ifname: str, timeout_s: float = 5.0) -> Found | None:
    """One xmDNS question (PTR of the service in ``.site``) to ff05::fb from ``ifname``; the
    first answer's SRV port, TXT and AAAA."""
    from zeroconf import const
    from zeroconf._dns import DNSQuestion
    from zeroconf._protocol.incoming import DNSIncoming
    from zeroconf._protocol.outgoing import DNSOutgoing

    from firmware.sep2.xmdns import MDNS_PORT, SITE_SERVICE, XMDNS_GROUP

    index = socket.if_nametoindex(ifname)
    query = DNSOutgoing(const._FLAGS_QR_QUERY, True)
    query.add_question(DNSQuestion(SITE_SERVICE, const._TYPE_PTR, const._CLASS_IN))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.settimeout(timeout_s)
        sock.sendto(query.packets()[0], (XMDNS_GROUP, MDNS_PORT, 0, index))
        try:
            data, (source, *_) = sock.recvfrom(9000)
        except TimeoutError:
            return None
    found = DNSIncoming(data).answers()
    port = next((r.port for r in found if r.type == const._TYPE_SRV), 0)  # type: ignore[attr-defined]
    text = next((r.text for r in found if r.type == const._TYPE_TXT), b"")  # type: ignore[attr-defined]
    txt, pos = {}, 0
    while pos < len(text):
        item = text[pos + 1 : pos + 1 + text[pos]].decode()
        key, _, value = item.partition("=")
        txt[key] = value
        pos += 1 + text[pos]
    return Found(str(source).split("%")[0], int(port), txt)


async def announce(ifname: str, port: int) -> int:
    discovery = Discovery(Announcement(ifname, port, "evse-test"))
    await discovery.start()
    print("ANNOUNCED", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await discovery.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.pev.discover", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    find = verbs.add_parser("find")
    find.add_argument("--if", dest="ifname", required=True)
    find.add_argument("--timeout", type=float, default=5.0)
    find.add_argument("--xmdns", action="store_true", help="ask for .site on ff05::fb")
    ann = verbs.add_parser("announce")
    ann.add_argument("--if", dest="ifname", required=True)
    ann.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.verb == "announce":
        return asyncio.run(announce(args.ifname, args.port))
    if args.xmdns:
        found = find_site_server(args.ifname, args.timeout)
    else:
        found = asyncio.run(find_server(args.ifname, args.timeout))
    if found is None:
        print("NOT FOUND", flush=True)
        return 1
    txt = " ".join(f"{k}={v}" for k, v in sorted(found.txt.items()))
    print(f"FOUND {found.address} {found.port} {txt}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
