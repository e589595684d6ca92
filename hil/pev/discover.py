"""Find the EVSE's 2030.5 server as a vehicle does: DNS-SD ``_smartenergy._tcp.local`` on
its PLC interface.

``python -m hil.pev.discover find --if DEV [--timeout S]`` prints ``FOUND <address> <port>
<txt>`` or ``NOT FOUND`` (exit 1). ``... announce --if DEV --port N`` runs the EVSE's
announcement alone until killed (for namespace tests), printing ``ANNOUNCED``."""

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
    ann = verbs.add_parser("announce")
    ann.add_argument("--if", dest="ifname", required=True)
    ann.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.verb == "announce":
        return asyncio.run(announce(args.ifname, args.port))
    found = asyncio.run(find_server(args.ifname, args.timeout))
    if found is None:
        print("NOT FOUND", flush=True)
        return 1
    txt = " ".join(f"{k}={v}" for k, v in sorted(found.txt.items()))
    print(f"FOUND {found.address} {found.port} {txt}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
