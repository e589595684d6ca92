"""The ``[bridge]`` config section: the PLC link's IPv6 prefix, its router advertisements, and
whether (and how narrowly) the PLC link may be bridged to the site network.

Owns reading and checking the section (every problem as ``bridge.key: why``) and the EVSE's
default unique-local prefix, derived from its identity. It does not touch the network:
``firmware.net`` does, with the values read here. The profile forbids bridging at initial
connect and allows it after authorization (docs/v2g-ac-profile.md, "Network and security",
§4.2.4); ``policy`` says whether this site allows it at all.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from firmware.config.reader import SectionReader
from firmware.net import valid_ifname

ULA_SPACE = ipaddress.IPv6Network("fc00::/7")  # RFC 4193 §3.1
ULA_LOCAL = 0xFD  # RFC 4193 §3.1: the L bit set, locally assigned
SLAAC_PREFIX_LEN = 64  # RFC 4862 §5.5.3 with RFC 4291 §2.5.1's 64-bit interface IDs


class BridgePolicy(enum.Enum):
    AFTER_AUTHORIZATION = "after-authorization"  # the profile's "MAY bridge" (§4.2.4)
    NEVER = "never"


class BridgeBackend(enum.Enum):
    LINUX = "linux"  # a kernel bridge and an nftables filter
    MOCK = "mock"  # records what it would do, for laptops and CI


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    plc_interface: str | None = None  # None: the [plc] interface (the caller resolves it)
    site_interface: str | None = None  # None: never bridge
    policy: BridgePolicy = BridgePolicy.AFTER_AUTHORIZATION
    prefix: ipaddress.IPv6Network | None = None  # None: derived from the EVSE's identity
    allowed_destinations: tuple[ipaddress.IPv6Network, ...] = ()  # empty: any
    multicast_pps: int = 50  # per direction, through the bridge
    backend: BridgeBackend = BridgeBackend.LINUX
    ra_interval_s: float = 10.0

    @property
    def may_bridge(self) -> bool:
        return self.policy is BridgePolicy.AFTER_AUTHORIZATION and self.site_interface is not None


def read_bridge(section: SectionReader) -> BridgeConfig:
    """Read ``[bridge]``; every problem goes to the section's problem list."""
    problems = section.problems
    d = BridgeConfig()
    where = section.name
    config = BridgeConfig(
        plc_interface=_ifname(section, "plc_interface", problems),
        site_interface=_ifname(section, "site_interface", problems),
        policy=BridgePolicy(section.string("policy", d.policy.value, _values(BridgePolicy))),
        prefix=_prefix(section.optional_string("prefix"), f"{where}.prefix", problems),
        allowed_destinations=_destinations(
            section.raw_list("allowed_destinations"), f"{where}.allowed_destinations", problems
        ),
        multicast_pps=section.integer("multicast_pps", d.multicast_pps, 1, 10_000),
        backend=BridgeBackend(section.string("backend", d.backend.value, _values(BridgeBackend))),
        ra_interval_s=section.number("ra_interval_s", d.ra_interval_s, 1.0, 600.0),
    )
    if config.plc_interface is not None and config.plc_interface == config.site_interface:
        problems.append(f"{where}.site_interface: must differ from plc_interface")
    section.finish()
    return config


def derive_prefix(identity: bytes) -> ipaddress.IPv6Network:
    """The EVSE's RFC 4193 unique-local /64: ``fd`` + a 40-bit Global ID + subnet ID 0.

    RFC 4193 §3.2.2 derives the Global ID from a hash so that it is random-looking yet needs
    no coordination; hashing the EVSE's identity (its certificate DER or LFDI) keeps the prefix
    the same across restarts, so the vehicle's addresses and the site's allow-lists hold.
    """
    if not identity:
        raise ValueError("the EVSE identity is empty")
    global_id = hashlib.sha256(identity).digest()[:5]  # RFC 4193 §3.2.2: the low 40 bits
    network = bytes([ULA_LOCAL]) + global_id + b"\x00\x00" + bytes(8)
    return ipaddress.IPv6Network((network, SLAAC_PREFIX_LEN))


def effective_prefix(config: BridgeConfig, identity: bytes) -> ipaddress.IPv6Network:
    """The configured prefix, else the one derived from the EVSE's identity."""
    return config.prefix if config.prefix is not None else derive_prefix(identity)


def _values(kind: type[enum.Enum]) -> tuple[str, ...]:
    return tuple(str(member.value) for member in kind)


def _ifname(section: SectionReader, key: str, problems: list[str]) -> str | None:
    name = section.optional_string(key)
    if name and not valid_ifname(name):
        problems.append(f"{section.name}.{key}: {name!r} is not a network interface name")
        return None
    return name or None


def _prefix(raw: str | None, where: str, problems: list[str]) -> ipaddress.IPv6Network | None:
    if not raw:
        return None
    why = "must be a unique-local /64 inside fc00::/7, like fd12:3456:789a:1::/64"
    try:
        network = ipaddress.ip_network(raw, strict=True)
    except ValueError:
        problems.append(f"{where}: {why}; got {raw!r}")
        return None
    if (
        not isinstance(network, ipaddress.IPv6Network)
        or network.prefixlen != SLAAC_PREFIX_LEN
        or not network.subnet_of(ULA_SPACE)
    ):
        problems.append(f"{where}: {why}; got {raw!r}")
        return None
    return network


def _destinations(raw: Any, where: str, problems: list[str]) -> tuple[ipaddress.IPv6Network, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        problems.append(f'{where}: must be an array of IPv6 prefixes like "2001:db8::/32"')
        return ()
    networks: list[ipaddress.IPv6Network] = []
    for item in raw:
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError as err:
            problems.append(f"{where}: {item!r}: {err}")
            continue
        if not isinstance(network, ipaddress.IPv6Network):
            problems.append(f"{where}: {item!r}: not an IPv6 prefix (only IPv6 is bridged)")
            continue
        networks.append(network)
    return tuple(dict.fromkeys(networks))
