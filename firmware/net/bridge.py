"""The site bridge gate: joins the PLC link to the site network after authorization, IPv6 only.

The profile forbids bridging or routing at initial connect and lets the EVSE bridge after
authorization (docs/v2g-ac-profile.md "Bridging", §4.2.4); the project adds (docs/design.md
"The two gates"): never HomePlug management frames, nothing but IPv6. ``LinuxBridge`` makes a
kernel bridge of the two interfaces behind an nftables bridge-family filter; ``MockBridge``
only records what it would do. Neither decides *when* to open: the daemon calls ``open`` once
a session is authorized and ``close`` on any doubt. The Linux calls block (netlink, ``nft``):
from an event loop use ``asyncio.to_thread``.

The site interface should be a port dedicated to the bridge (a VLAN or a second NIC): an
enslaved interface's own IP addresses stop working while bridged.
"""

from __future__ import annotations

import abc
import errno
import functools
import ipaddress
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from firmware.errors import GatekeeperError
from firmware.net import valid_ifname
from firmware.net.addressing import (
    AddressingError,
    add_address,
    delete_address,
    evse_interface,
    link_index,
    netlink,
)
from firmware.net.isolation import MDNS_PORT

if TYPE_CHECKING:  # pyroute2 is imported by the Linux backend's methods: the mock needs none
    from pyroute2 import IPRoute

logger = logging.getLogger(__name__)

BRIDGE_NAME = "evgk-br0"
TABLE_NAME = "evse_gatekeeper"  # nftables table, family bridge
ETHERTYPE_HOMEPLUG = 0x88E1  # HomePlug AV/GP management (docs/homeplug-slac.md)
ETHERTYPE_MEDIAXTREAM = 0x8912  # the other powerline vendors' management frames
TOOL_TIMEOUT_S = 10.0
MAX_MULTICAST_PPS = 10_000

Prefixes = Iterable[ipaddress.IPv6Network]


class BridgeError(GatekeeperError):
    """Raised when the bridge or its filter cannot be set up or taken down (an interface is
    missing, the kernel or ``nft`` refused); the message is one line."""


def bridge_ruleset(
    plc_if: str,
    site_if: str,
    multicast_pps: int,
    allowed_destinations: Prefixes = (),
    sep2_port: int | None = None,
) -> str:
    """The nftables script for the bridge's filter: replaces our table atomically. The J3072
    traffic stays on the PLC link (§4.2.4: only non-J3072 traffic may be bridged): DNS-SD
    (mDNS) and the 2030.5 port (``sep2_port``, the EVSE server's) never cross, either way."""
    for name in (plc_if, site_if):
        if not valid_ifname(name):
            raise BridgeError(f"{name!r} is not a network interface name")
    if sep2_port is not None and not 0 < sep2_port < 65536:
        raise BridgeError(f"2030.5 port {sep2_port} is not a TCP port")
    if not 1 <= multicast_pps <= MAX_MULTICAST_PPS:
        raise BridgeError(f"multicast_pps must be between 1 and {MAX_MULTICAST_PPS}")
    allowed = ", ".join(str(net) for net in allowed_destinations)
    out = f'iifname "{plc_if}" oifname "{site_if}"'
    back = f'iifname "{site_if}" oifname "{plc_if}"'
    if allowed:
        ipv6 = [
            # Neighbour and router discovery (RFC 4861 §6.1: hop limit 255 = never routed), so
            # the PEV can find the site's router that leads to the allowed destinations.
            "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit,"
            " nd-neighbor-advert } ip6 hoplimit 255 accept",
            f"{out} ip6 daddr {{ {allowed} }} accept",
            f'{back} ip6 saddr {{ {allowed} }} accept comment "replies"',
        ]
    else:
        ipv6 = [f"{out} ether type ip6 accept", f"{back} ether type ip6 accept"]
    rules = [
        # The forward hook sees every bridge on this host; the others are not ours to filter.
        f'iifname != {{ "{plc_if}", "{site_if}" }} accept',
        f'ether type 0x{ETHERTYPE_HOMEPLUG:04x} drop comment "HomePlug management"',
        f'ether type 0x{ETHERTYPE_MEDIAXTREAM:04x} drop comment "powerline management"',
        f'udp dport {MDNS_PORT} drop comment "DNS-SD stays on the PLC link"',
        f"udp sport {MDNS_PORT} drop",
        *(_kept_on_the_link(sep2_port) if sep2_port else ()),
        *(
            f'iifname "{name}" meta pkttype multicast limit rate over {multicast_pps}/second drop'
            for name in (plc_if, site_if)
        ),
        *ipv6,
    ]
    body = "".join(f"\t\t{rule}\n" for rule in rules)
    return (
        f"{_delete_script()}"
        f"table bridge {TABLE_NAME} {{\n"
        "\tchain forward {\n"
        "\t\ttype filter hook forward priority filter; policy drop;\n"
        f"{body}"
        "\t}\n"
        "}\n"
    )


def _kept_on_the_link(sep2_port: int) -> tuple[str, ...]:
    return (f'tcp dport {sep2_port} drop comment "2030.5 stays on the PLC link"',
            f"tcp sport {sep2_port} drop")  # fmt: skip


def _delete_script() -> str:
    # Declaring the table first makes the delete succeed when it is absent: idempotent.
    return f"table bridge {TABLE_NAME}\ndelete table bridge {TABLE_NAME}\n"


class BridgeGate(abc.ABC):
    """Closed until ``open``; ``close`` and ``cleanup_leftovers`` are idempotent."""

    @abc.abstractmethod
    def open(self, authorized_session: str) -> None:
        """Bridge the PLC link to the site for the authorized session."""

    @abc.abstractmethod
    def close(self, reason: str) -> None:
        """Isolate the PLC link again; nothing left to remove is not an error."""

    @abc.abstractmethod
    def cleanup_leftovers(self) -> bool:
        """Remove a bridge and filter of ours left by a crash; True when there was one."""

    @abc.abstractmethod
    def state(self) -> dict[str, Any]:
        """What the gate intends, for ``status``."""

    @abc.abstractmethod
    def keep_local(self, sep2_port: int) -> None:
        """Never bridge the EVSE's 2030.5 port (J3072 traffic stays on the PLC link)."""


@dataclass(slots=True)
class _Record:
    bridged: bool = False
    since_unix_s: float | None = None
    session: str | None = None
    last_close_reason: str | None = None

    def opened(self, session: str, now: float) -> None:
        if not self.bridged or self.session != session:
            self.since_unix_s = now
        self.bridged, self.session = True, session

    def closed(self, reason: str, now: float) -> None:
        if self.bridged:
            self.since_unix_s = now
        self.bridged, self.session, self.last_close_reason = False, None, reason


class _Gate(BridgeGate):
    backend = ""

    def __init__(
        self,
        plc_if: str,
        site_if: str,
        prefix: ipaddress.IPv6Network,
        allowed_destinations: Prefixes = (),
        multicast_pps: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if plc_if == site_if:
            raise BridgeError(f"the PLC and site interfaces are both {plc_if}")
        self.plc_if, self.site_if = plc_if, site_if
        try:
            self.address = evse_interface(prefix)
        except AddressingError as err:
            raise BridgeError(str(err)) from err
        self._rules = (multicast_pps, allowed_destinations)
        self.ruleset = bridge_ruleset(plc_if, site_if, multicast_pps, allowed_destinations)
        self._clock = clock
        self._record = _Record()

    def keep_local(self, sep2_port: int) -> None:
        """The EVSE's 2030.5 port, once known: its traffic is never bridged."""
        multicast_pps, allowed = self._rules
        self.ruleset = bridge_ruleset(self.plc_if, self.site_if, multicast_pps, allowed, sep2_port)

    def state(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "bridged": self._record.bridged,
            "since_unix_s": self._record.since_unix_s,
            "session": self._record.session,
            "last_close_reason": self._record.last_close_reason,
            "bridge": BRIDGE_NAME,
            "plc_interface": self.plc_if,
            "site_interface": self.site_if,
            "address": str(self.address),
            "ruleset": self.ruleset,
        }

    @staticmethod
    def _check_session(session: str) -> None:
        if not session.strip():
            raise BridgeError("the bridge opens only for an authorized session; none given")


class MockBridge(_Gate):
    """Records the intended state and changes nothing."""

    backend = "mock"

    def open(self, authorized_session: str) -> None:
        self._check_session(authorized_session)
        self._record.opened(authorized_session, self._clock())
        logger.info("net.bridge.opened backend=mock session=%s", authorized_session)

    def close(self, reason: str) -> None:
        was = self._record.bridged
        self._record.closed(reason, self._clock())
        if was:
            logger.info("net.bridge.closed backend=mock reason=%s", reason)

    def cleanup_leftovers(self) -> bool:
        return False  # a mock leaves nothing in the kernel


class LinuxBridge(_Gate):
    """A kernel bridge ``evgk-br0`` of the PLC and site interfaces, filtered by the nftables
    bridge table ``evse_gatekeeper``; ``netns`` acts in that namespace (tests).

    Closed, the EVSE's address (``<prefix>::1/64``) is on the PLC interface; open, it is on
    the bridge. ``close`` (and a failed ``open``) puts it back on the PLC interface.
    """

    backend = "linux"

    def __init__(
        self,
        plc_if: str,
        site_if: str,
        prefix: ipaddress.IPv6Network,
        allowed_destinations: Prefixes = (),
        multicast_pps: int = 50,
        netns: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(plc_if, site_if, prefix, allowed_destinations, multicast_pps, clock)
        self.netns = netns

    def open(self, authorized_session: str) -> None:
        """Filter first, then bridge: no frame crosses before the filter is in place."""
        from pyroute2 import NetlinkError

        self._check_session(authorized_session)
        with self._netlink() as ipr:  # refused on an event loop's thread, before any change
            try:
                self._nft(self.ruleset)
                self._build(ipr)
            except (BridgeError, AddressingError, NetlinkError, OSError) as err:
                self._teardown(restore_address=True, quiet=True)
                raise BridgeError(f"bridge open: {one_line(err)}") from err
        self._record.opened(authorized_session, self._clock())
        logger.info("net.bridge.opened session=%s bridge=%s", authorized_session, BRIDGE_NAME)

    def close(self, reason: str) -> None:
        self._teardown(restore_address=True, quiet=False)
        was = self._record.bridged
        self._record.closed(reason, self._clock())
        if was:
            logger.info("net.bridge.closed reason=%s", reason)

    def cleanup_leftovers(self) -> bool:
        with self._netlink() as ipr:
            had_bridge = link_index(ipr, BRIDGE_NAME) is not None
        had_table = self._table_present()
        if had_bridge or had_table:
            logger.warning("net.bridge.leftovers bridge=%s table=%s", had_bridge, had_table)
            self._teardown(restore_address=had_bridge, quiet=False)
        return had_bridge or had_table

    def present(self) -> dict[str, bool]:
        """What the kernel holds of ours (diagnostics; does netlink and ``nft`` I/O)."""
        with self._netlink() as ipr:
            bridge = link_index(ipr, BRIDGE_NAME) is not None
        return {"bridge": bridge, "table": self._table_present()}

    def _netlink(self) -> IPRoute:
        try:
            return netlink(self.netns)
        except AddressingError as err:
            raise BridgeError(str(err)) from err

    def _build(self, ipr: IPRoute) -> None:
        plc, site = self._index(ipr, self.plc_if), self._index(ipr, self.site_if)
        if link_index(ipr, BRIDGE_NAME) is None:
            # The bridge wears the PLC port's MAC: the EVSE's address keeps its link-layer
            # address across open and close, so the PEV's neighbour cache stays right.
            mac = ipr.link("get", index=plc)[0].get("address")
            ipr.link(
                "add",
                ifname=BRIDGE_NAME,
                kind="bridge",
                address=mac,
                br_stp_state=0,
                br_forward_delay=0,
                br_mcast_snooping=0,
            )
            self._sysctl(f"net.ipv6.conf.{BRIDGE_NAME}.accept_ra=0")
        bridge = self._index(ipr, BRIDGE_NAME)
        for port in (plc, site):
            ipr.link("set", index=port, master=bridge)
        # Frames arriving on a bridge port are handed to the bridge device, so an address left
        # on the PLC port would stop answering; the EVSE's address moves to the bridge while
        # bridged (and back on close) and the PEV keeps reaching its server.
        add_address(ipr, BRIDGE_NAME, self.address)
        delete_address(ipr, self.plc_if, self.address)
        ipr.link("set", index=bridge, state="up")

    def _teardown(self, restore_address: bool, quiet: bool) -> None:
        """Each step on its own, so one failure does not leave the others undone."""
        from pyroute2 import NetlinkError

        problems: list[str] = []
        try:
            with netlink(self.netns) as ipr:
                self._unbridge(ipr, restore_address, problems)
        except (AddressingError, NetlinkError, OSError) as err:
            problems.append(one_line(err))
        try:
            self._nft(_delete_script())
        except BridgeError as err:
            problems.append(str(err))
        if problems and not quiet:
            raise BridgeError(f"bridge close: {'; '.join(problems)}")
        for problem in problems:
            logger.warning("net.bridge.teardown_failed problem=%s", problem)

    def _unbridge(self, ipr: IPRoute, restore_address: bool, problems: list[str]) -> None:
        bridge = link_index(ipr, BRIDGE_NAME)
        if bridge is not None:
            for name in (self.plc_if, self.site_if):
                _try(problems, functools.partial(_release, ipr, name, bridge))
            _try(problems, functools.partial(_delete_link, ipr, bridge))
        # A PLC interface that is gone (modem unplugged) has no address to get back.
        if restore_address and link_index(ipr, self.plc_if) is not None:
            _try(problems, functools.partial(add_address, ipr, self.plc_if, self.address))

    def _index(self, ipr: IPRoute, name: str) -> int:
        index = link_index(ipr, name)
        if index is None:
            raise BridgeError(f"no interface {name}")
        return index

    def _run(self, *args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
        """A tool (``nft``, ``sysctl``) in our namespace; BridgeError if it cannot start."""
        command = [tool_path(args[0]), *args[1:]]
        if self.netns is not None:
            command = [tool_path("ip"), "netns", "exec", self.netns, *command]
        try:
            return subprocess.run(
                command, input=script, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise BridgeError(f"{args[0]}: {one_line(err)}") from err

    def _nft(self, script: str) -> None:
        result = self._run("nft", "-f", "-", script=script)
        if result.returncode != 0:
            raise BridgeError(f"nft refused the filter: {one_line(result.stderr)}")

    def _table_present(self) -> bool:
        return self._run("nft", "list", "table", "bridge", TABLE_NAME).returncode == 0

    def _sysctl(self, setting: str) -> None:
        # The EVSE takes no address or default route from the site's RAs through the bridge:
        # its own routing is the board's business, not the vehicle link's. Not a safety
        # property, so a refusal is logged, not raised.
        try:
            result = self._run("sysctl", "-qw", setting)
        except BridgeError as err:
            logger.warning("net.bridge.sysctl_failed %s error=%s", setting, err)
            return
        if result.returncode != 0:
            error = one_line(result.stderr)
            logger.warning("net.bridge.sysctl_failed %s error=%s", setting, error)


def tool_path(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _release(ipr: IPRoute, name: str, bridge: int) -> None:
    index = link_index(ipr, name)
    if index is not None and ipr.link("get", index=index)[0].get("master") == bridge:
        ipr.link("set", index=index, master=0)


def _delete_link(ipr: IPRoute, index: int) -> None:
    from pyroute2 import NetlinkError

    try:
        ipr.link("del", index=index)
    except NetlinkError as err:
        if err.code not in (errno.ENODEV, errno.ENOENT):  # already gone
            raise


def _try(problems: list[str], step: Callable[[], None]) -> None:
    from pyroute2 import NetlinkError

    try:
        step()
    except (AddressingError, NetlinkError, OSError) as err:
        problems.append(one_line(err))


def one_line(err: object) -> str:
    from pyroute2 import NetlinkError

    if isinstance(err, NetlinkError):
        return os.strerror(int(err.code))
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
