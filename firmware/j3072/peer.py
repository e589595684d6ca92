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
import socket
import subprocess
from collections.abc import Callable, Iterable

PeerName = tuple[object, ...]  # what asyncio's transport gives as "peername"
NeighbourLookup = Callable[[str, str], str | None]  # (address, interface) -> MAC or None
IP_TIMEOUT_S = 2.0
MAX_REMEMBERED = 64  # addresses looked up per match: a client cannot make us fork without end


def interface_index(name: str) -> int | None:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


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
    def __init__(
        self,
        interface: str | None,
        neighbour: NeighbourLookup = ip_neighbour,
        index: Callable[[str], int | None] = interface_index,
    ) -> None:
        """``interface``: the PLC netdev the vehicle's IPv6 arrives on; None: the mock PLC."""
        self._interface = interface
        self._neighbour = neighbour
        self._index = index
        self.ev_mac: str | None = None  # SLAC's match in this plug-in
        self._seen: dict[str, str | None] = {}  # address -> its refusal (None: the vehicle)

    def matched(self, ev_mac: str | None) -> None:
        self.ev_mac = ev_mac.lower() if ev_mac else None
        self._seen.clear()

    def refusal(self, peers: Iterable[PeerName]) -> str | None:
        """None when one of the client's connections is the vehicle on the cable, else why
        not (one line, for the log)."""
        if self.ev_mac is None:
            return "no SLAC match in this plug-in"
        if self._interface is None:
            return None
        why: str | None = "no open connection"
        for peer in peers:
            why = self._remembered(peer, self._interface)
            if why is None:
                return None
        return why

    def _remembered(self, peer: PeerName, interface: str) -> str | None:
        """One connection's verdict; the neighbour lookup (a fork of ``ip``) is done once per
        address and match, for at most ``MAX_REMEMBERED`` addresses."""
        address = str(peer[0]) if peer else ""
        scope = peer[3] if len(peer) > 3 else 0
        key = f"{address}%{scope}"
        if key in self._seen:
            return self._seen[key]
        if len(self._seen) >= MAX_REMEMBERED:
            return f"{address or '?'}: too many addresses tried in this plug-in"
        why = self._verdict(address, scope, interface)
        self._seen[key] = why
        return why

    def _verdict(self, address: str, scope: object, interface: str) -> str | None:
        host = address.split("%", 1)[0]
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            return f"{address or '?'} is not an IPv6 peer on the PLC link"
        if ip.is_link_local and scope != self._index(interface):
            return f"{host} is link-local on another interface than {interface}"
        mac = self._neighbour(host, interface)
        if mac is None:
            return f"{host} is not a neighbour on {interface}"
        if mac != self.ev_mac:
            return f"{host} is {mac} on {interface}, not the matched {self.ev_mac}"
        return None
