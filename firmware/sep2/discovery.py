"""DNS-SD for the 2030.5 server: ``_smartenergy._tcp.local`` on the PLC interface only (and
the same service in ``.site`` by xmDNS, ``xmdns.py``, for stacks that ask the 2030.5 way).

The V2G-AC profile (docs/v2g-ac-profile.md, "Network and security", §4.2-4.3) has the PEV
find the EVSE's server by mDNS on ff02::fb with the TXT keys ``txtvers=1``, ``dcap=/dcap`` and
``https=<port>``. The announcement must never leak onto the site network, so zeroconf is
bound to the PLC netdev's index alone (IPv6 only); the mock mode has no netdev and no
discovery. Uses the ``zeroconf`` library.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.errors import GatekeeperError
from firmware.logs import log_event

if TYPE_CHECKING:  # zeroconf is imported by ``start``: with discovery off, never
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    from firmware.sep2.xmdns import XmdnsResponder

logger = logging.getLogger(__name__)

SERVICE_TYPE = "_smartenergy._tcp.local."
IF_INET6 = Path("/proc/net/if_inet6")


class DiscoveryError(GatekeeperError):
    """Raised when the announcement cannot be made on the PLC interface."""


@dataclass(frozen=True, slots=True)
class Announcement:
    ifname: str
    port: int
    instance: str  # the service instance name, e.g. the EVSE's SFDI


def interface_addresses(ifname: str) -> list[str]:
    """The IPv6 addresses of one interface, from the kernel's table."""
    addresses = []
    for line in IF_INET6.read_text().splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[5] == ifname:
            raw = bytes.fromhex(fields[0])
            addresses.append(str(ipaddress.IPv6Address(raw)))
    return addresses


class Discovery:
    def __init__(self, announcement: Announcement) -> None:
        self.announcement = announcement
        self._zeroconf: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._xmdns: XmdnsResponder | None = None

    async def start(self) -> None:
        from zeroconf import IPVersion
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        a = self.announcement
        try:
            index = socket.if_nametoindex(a.ifname)
        except OSError as err:
            raise DiscoveryError(f"no interface {a.ifname!r} to announce on") from err
        addresses = interface_addresses(a.ifname)
        if not addresses:
            raise DiscoveryError(f"{a.ifname} has no IPv6 address to announce")
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{a.instance}.{SERVICE_TYPE}",
            port=a.port,
            properties={"txtvers": "1", "dcap": "/dcap", "https": str(a.port)},
            parsed_addresses=addresses,
            server=f"{a.instance}.local.",
        )
        self._zeroconf = AsyncZeroconf(interfaces=[index], ip_version=IPVersion.V6Only)
        await self._zeroconf.async_register_service(self._info)
        log_event(logger, "sep2.discovery", ifname=a.ifname, port=a.port, instance=a.instance,
                  addresses=",".join(addresses))  # fmt: skip
        from firmware.sep2.xmdns import XmdnsResponder, records

        responder = XmdnsResponder(a.ifname, records(a, addresses))
        try:
            await responder.start()
        except OSError as err:  # mDNS still announces; xmDNS is the extra
            log_event(logger, "sep2.xmdns_failed", logging.WARNING, error=err.strerror)
            return
        self._xmdns = responder

    async def stop(self) -> None:
        if self._xmdns is not None:
            self._xmdns.stop()
            self._xmdns = None
        if self._zeroconf is None:
            return
        if self._info is not None:
            await self._zeroconf.async_unregister_service(self._info)
        await self._zeroconf.async_close()
        self._zeroconf = None
