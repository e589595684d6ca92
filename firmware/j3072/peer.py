"""Is this 2030.5 client the vehicle on the cable?

The profile authorizes the vehicle that SLAC matched on this plug-in's pilot. A TLS client
with a valid certificate could reach the server some other way (the server bound to ``::``,
or from the site while a bridge is open): its certificate alone proves nothing about the
cable. So a client counts only when its connection came in on the PLC interface from the MAC
address SLAC matched: the kernel's neighbour entry for the peer's address on that interface
(it exists: the kernel answered the peer's TCP handshake through it) must carry that MAC.

With the mock PLC (``[plc] interface = "mock"``) there is no link layer: the match is still
required, the addresses are not checked, and the daemon says so at start.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable, Iterable

PeerName = tuple[object, ...]  # what asyncio's transport gives as "peername"
NeighbourLookup = Callable[[str, str], str | None]  # (address, interface) -> MAC or None
IP_TIMEOUT_S = 2.0


def ip_neighbour(address: str, interface: str) -> str | None:
    """The MAC of ``address`` in the kernel's neighbour table on ``interface`` (iproute2)."""
    command = ["ip", "-6", "-j", "neigh", "show", address, "dev", interface]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=IP_TIMEOUT_S,
                              check=False)  # fmt: skip
        entries = json.loads(done.stdout or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    for entry in entries if isinstance(entries, list) else []:
        mac = entry.get("lladdr") if isinstance(entry, dict) else None
        if isinstance(mac, str):
            return mac.lower()
    return None


class PeerCheck:
    def __init__(self, interface: str | None, neighbour: NeighbourLookup = ip_neighbour) -> None:
        """``interface``: the PLC netdev the vehicle's IPv6 arrives on; None: the mock PLC."""
        self._interface = interface
        self._neighbour = neighbour
        self.ev_mac: str | None = None  # SLAC's match in this plug-in

    def matched(self, ev_mac: str | None) -> None:
        self.ev_mac = ev_mac.lower() if ev_mac else None

    def refusal(self, peers: Iterable[PeerName]) -> str | None:
        """None when one of the client's connections is the vehicle on the cable, else why
        not (one line, for the log)."""
        if self.ev_mac is None:
            return "no SLAC match in this plug-in"
        if self._interface is None:
            return None
        why = "no open connection"
        for peer in peers:
            address = str(peer[0]) if peer else ""
            host = address.split("%", 1)[0]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                why = f"{address or '?'} is not an IPv6 peer on the PLC link"
                continue
            mac = self._neighbour(host, self._interface)
            if mac is None:
                why = f"{host} is not a neighbour on {self._interface}"
            elif mac != self.ev_mac:
                why = f"{host} is {mac} on {self._interface}, not the matched {self.ev_mac}"
            else:
                return None
        return why
