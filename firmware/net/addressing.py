"""The EVSE's own address on the PLC link: ``<prefix>::1/64``, put on and taken off an interface
over netlink (pyroute2), idempotently.

It does not pick the prefix (``firmware.net.config``) nor advertise it (``firmware.net.ra``).
These calls are synchronous: pyroute2's ``IPRoute`` drives a private event loop, so it refuses
to run in a thread whose asyncio loop is running; from the daemon's loop call them through
``asyncio.to_thread``. ``netns`` names a namespace (``ip netns``) to act in, for tests.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
from typing import TYPE_CHECKING

from firmware.errors import GatekeeperError

if TYPE_CHECKING:  # pyroute2 is imported where netlink is opened: the mock backend never does
    from pyroute2 import IPRoute, NetlinkError

logger = logging.getLogger(__name__)

IFA_F_NODAD = 0x02  # linux/if_addr.h
# Already there, or already gone: both count as done for an idempotent call.
GONE = (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT, errno.ESRCH)


class AddressingError(GatekeeperError):
    """Raised when an interface is missing or the kernel refuses the EVSE's address."""


def evse_interface(prefix: ipaddress.IPv6Network) -> ipaddress.IPv6Interface:
    """``<prefix>::1/64``: the EVSE's address and the on-link prefix it makes."""
    if prefix.prefixlen != 64:
        raise AddressingError(f"the PLC prefix must be a /64, got {prefix}")
    return ipaddress.IPv6Interface((prefix[1], prefix.prefixlen))


def netlink(netns: str | None = None) -> IPRoute:
    """An rtnetlink socket in this namespace or in ``netns`` (never created if missing)."""
    from pyroute2 import IPRoute

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise AddressingError("netlink calls block: run them via asyncio.to_thread")
    try:
        return IPRoute() if netns is None else IPRoute(netns=netns, flags=0)
    except OSError as err:
        raise AddressingError(f"netlink in {netns or 'this namespace'}: {err.strerror}") from err


def link_index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def add_address(ipr: IPRoute, ifname: str, iface: ipaddress.IPv6Interface) -> None:
    """Put ``iface`` on ``ifname`` without duplicate address detection.

    No DAD (RFC 4862 §5.4 allows skipping it where the address is known unique): the prefix
    is the EVSE's own, so ``::1`` in it is ours alone, and a tentative address would leave
    the vehicle without a server for the first second of the session.
    """
    from pyroute2 import NetlinkError

    index = link_index(ipr, ifname)
    if index is None:
        raise AddressingError(f"no interface {ifname}")
    try:
        ipr.addr(
            "add",
            index=index,
            address=str(iface.ip),
            prefixlen=iface.network.prefixlen,
            flags=IFA_F_NODAD,
        )
    except NetlinkError as err:
        if err.code != errno.EEXIST:
            raise AddressingError(f"{iface} on {ifname}: {_reason(err)}") from err
    logger.info("net.address.added if=%s address=%s", ifname, iface)


def delete_address(ipr: IPRoute, ifname: str, iface: ipaddress.IPv6Interface) -> None:
    """Take ``iface`` off ``ifname``; an address or interface already gone is fine."""
    from pyroute2 import NetlinkError

    index = link_index(ipr, ifname)
    if index is None:
        return
    try:
        ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    except NetlinkError as err:
        if err.code not in GONE:
            raise AddressingError(f"{iface} off {ifname}: {_reason(err)}") from err
        return
    logger.info("net.address.removed if=%s address=%s", ifname, iface)


def assign_evse_address(
    ifname: str, prefix: ipaddress.IPv6Network, netns: str | None = None
) -> ipaddress.IPv6Interface:
    """Put ``<prefix>::1/64`` on ``ifname`` (already there: nothing to do) and return it."""
    iface = evse_interface(prefix)
    with netlink(netns) as ipr:
        add_address(ipr, ifname, iface)
    return iface


def remove_evse_address(
    ifname: str, prefix: ipaddress.IPv6Network, netns: str | None = None
) -> None:
    """Take ``<prefix>::1/64`` off ``ifname``; already gone (or no such interface) is fine."""
    iface = evse_interface(prefix)
    with netlink(netns) as ipr:
        delete_address(ipr, ifname, iface)


def _reason(err: NetlinkError) -> str:
    return os.strerror(int(err.code))
