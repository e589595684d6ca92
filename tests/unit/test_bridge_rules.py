"""The pure parts of the PLC link's addressing and the site bridge gate: the nftables ruleset,
the router advertisement bytes (RFC 4861 §4.2, §4.6), the RFC 4193 prefix, the ``[bridge]``
section, and the mock gate's record."""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.config.reader import SectionReader
from firmware.net import valid_ifname
from firmware.net.bridge import BridgeError, MockBridge, bridge_ruleset
from firmware.net.config import (
    BridgeBackend,
    BridgeConfig,
    BridgePolicy,
    derive_prefix,
    effective_prefix,
    read_bridge,
)
from firmware.net.ra import build_router_advertisement, is_router_solicitation

PREFIX = ipaddress.IPv6Network("fd12:3456:789a:1::/64")
MAC = bytes.fromhex("0200c0ffee01")


def rules_of(ruleset: str) -> list[str]:
    """The forward chain's rules, one per line, in order."""
    body = ruleset.split("policy drop;\n", 1)[1]
    return [line.strip() for line in body.splitlines() if line.strip() not in ("", "}")]


# --- the nftables filter -------------------------------------------------------------------


def test_the_filter_drops_by_default_and_passes_only_ipv6_between_our_ports() -> None:
    ruleset = bridge_ruleset("plc0", "site0", 50)
    assert "table bridge evse_gatekeeper {" in ruleset
    assert "type filter hook forward priority filter; policy drop;" in ruleset
    assert rules_of(ruleset) == [
        'iifname != { "plc0", "site0" } accept',
        'ether type 0x88e1 drop comment "HomePlug management"',
        'ether type 0x8912 drop comment "powerline management"',
        'udp dport 5353 drop comment "DNS-SD stays on the PLC link"',
        "udp sport 5353 drop",
        'iifname "plc0" meta pkttype multicast limit rate over 50/second drop',
        'iifname "site0" meta pkttype multicast limit rate over 50/second drop',
        'iifname "plc0" oifname "site0" ether type ip6 accept',
        'iifname "site0" oifname "plc0" ether type ip6 accept',
    ]


def test_j3072_traffic_stays_on_the_plc_link() -> None:
    """§4.2.4: only non-J3072 traffic is bridged. DNS-SD and the EVSE's 2030.5 port are
    dropped both ways, before anything is accepted."""
    gate = MockBridge("plc0", "site0", PREFIX)
    gate.keep_local(8444)
    rules = rules_of(gate.ruleset)
    kept = [i for i, rule in enumerate(rules) if "5353" in rule or "8444" in rule]
    assert [rules[i] for i in kept] == [
        'udp dport 5353 drop comment "DNS-SD stays on the PLC link"',
        "udp sport 5353 drop",
        'tcp dport 8444 drop comment "2030.5 stays on the PLC link"',
        "tcp sport 8444 drop",
    ]
    accepts = [i for i, rule in enumerate(rules[1:], 1) if " accept" in rule]
    assert max(kept) < min(accepts)
    with pytest.raises(BridgeError, match="not a TCP port"):
        bridge_ruleset("plc0", "site0", 50, (), 70000)


def test_the_filter_replaces_our_table_atomically_even_when_absent() -> None:
    lines = bridge_ruleset("plc0", "site0", 50).splitlines()
    assert lines[:2] == ["table bridge evse_gatekeeper", "delete table bridge evse_gatekeeper"]


def test_allowed_destinations_limit_ipv6_to_those_prefixes_and_their_replies() -> None:
    allowed = [ipaddress.IPv6Network("2001:db8::/32"), ipaddress.IPv6Network("fd00:1::/64")]
    rules = rules_of(bridge_ruleset("plc0", "site0", 7, allowed))
    assert 'iifname "plc0" oifname "site0" ip6 daddr { 2001:db8::/32, fd00:1::/64 } accept' in rules
    assert (
        'iifname "site0" oifname "plc0" ip6 saddr { 2001:db8::/32, fd00:1::/64 } accept'
        ' comment "replies"'
    ) in rules
    assert not any("ether type ip6 accept" in rule for rule in rules)
    nd = next(rule for rule in rules if rule.startswith("icmpv6"))
    assert nd.endswith("ip6 hoplimit 255 accept") and "nd-neighbor-solicit" in nd
    assert 'iifname "plc0" meta pkttype multicast limit rate over 7/second drop' in rules


def test_management_frames_are_dropped_before_anything_is_accepted() -> None:
    rules = rules_of(bridge_ruleset("plc0", "site0", 50, [PREFIX]))
    drops = [i for i, rule in enumerate(rules) if rule.startswith("ether type 0x")]
    accepts = [i for i, rule in enumerate(rules[1:], 1) if " accept" in rule]
    assert len(drops) == 2 and max(drops) < min(accepts)
    assert not any("ether type ip " in rule or "arp" in rule for rule in rules)


@pytest.mark.parametrize("name", ['plc0" accept', "", "a" * 16, "pl c0", "x/y", "..", "a\\b"])
def test_the_filter_refuses_names_that_are_not_interfaces(name: str) -> None:
    assert not valid_ifname(name)
    with pytest.raises(BridgeError, match="not a network interface name"):
        bridge_ruleset(name, "site0", 50)


# --- router advertisements -----------------------------------------------------------------


def test_the_router_advertisement_fields_sit_where_rfc_4861_puts_them() -> None:
    ra = build_router_advertisement(PREFIX, MAC)
    assert len(ra) == 16 + 32 + 8
    kind, code, checksum, hop_limit, flags, lifetime_s, reachable, retrans = struct.unpack(
        "!BBHBBHII", ra[:16]
    )
    assert (kind, code, checksum) == (134, 0, 0)  # the kernel fills the checksum in
    assert (hop_limit, flags, reachable, retrans) == (0, 0, 0, 0)  # no M/O: SLAAC only
    assert lifetime_s == 0  # not a default router
    opt, length, prefix_len, pflags, valid_s, preferred_s, reserved, prefix = struct.unpack(
        "!BBBBIII16s", ra[16:48]
    )
    assert (opt, length, prefix_len, reserved) == (3, 4, 64, 0)
    assert pflags == 0xC0  # L (on-link) and A (autonomous)
    assert (valid_s, preferred_s) == (3600, 1800)
    assert ipaddress.IPv6Address(prefix) == PREFIX.network_address
    assert ra[48:] == b"\x01\x01" + MAC  # source link-layer address, 8 octets


def test_the_advertisement_leaves_out_a_missing_link_address() -> None:
    assert len(build_router_advertisement(PREFIX, None)) == 48
    assert len(build_router_advertisement(PREFIX, bytes(6))) == 48


def test_the_advertisement_refuses_what_slaac_would_ignore() -> None:
    with pytest.raises(ValueError, match="/64"):
        build_router_advertisement(ipaddress.IPv6Network("fd00::/48"), MAC)
    with pytest.raises(ValueError, match="preferred"):
        build_router_advertisement(PREFIX, MAC, valid_lifetime_s=10, preferred_lifetime_s=20)


def test_router_solicitations_are_recognised_per_rfc_4861_6_1_1() -> None:
    rs = struct.pack("!BBHI", 133, 0, 0, 0)
    slla = b"\x01\x01" + MAC
    assert is_router_solicitation(rs, "fe80::1%pev0")
    assert is_router_solicitation(rs + slla, "fe80::1")
    assert is_router_solicitation(rs, "::")
    assert not is_router_solicitation(rs + slla, "::")  # no SLLA from the unspecified address
    assert not is_router_solicitation(rs + b"\x01\x00" + bytes(6), "fe80::1")  # length 0
    assert not is_router_solicitation(rs + b"\x01\x02" + MAC, "fe80::1")  # runs past the end
    assert not is_router_solicitation(rs[:7], "fe80::1")
    assert not is_router_solicitation(b"\x85\x01" + rs[2:], "fe80::1")  # code 1
    assert not is_router_solicitation(build_router_advertisement(PREFIX, MAC), "fe80::1")
    assert not is_router_solicitation(rs, "not an address")


@given(st.binary(max_size=96), st.sampled_from(["fe80::1", "::", "", "%", "fe80::1%x"]))
def test_any_received_bytes_are_judged_without_raising(data: bytes, source: str) -> None:
    assert is_router_solicitation(data, source) in (True, False)


# --- the RFC 4193 prefix -------------------------------------------------------------------


def test_the_derived_prefix_is_a_stable_rfc_4193_slash_64() -> None:
    identity = bytes.fromhex("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5")
    prefix = derive_prefix(identity)
    assert prefix == derive_prefix(identity)
    assert prefix.prefixlen == 64 and prefix.subnet_of(ipaddress.IPv6Network("fd00::/8"))
    packed = prefix.network_address.packed
    assert packed[1:6] == hashlib.sha256(identity).digest()[:5]  # the 40-bit Global ID
    assert packed[6:8] == b"\0\0"  # subnet ID 0
    assert derive_prefix(identity + b"\0") != prefix


def test_the_derived_prefix_needs_an_identity() -> None:
    with pytest.raises(ValueError, match="empty"):
        derive_prefix(b"")


def test_a_configured_prefix_wins_over_the_derived_one() -> None:
    assert effective_prefix(BridgeConfig(prefix=PREFIX), b"evse") == PREFIX
    assert effective_prefix(BridgeConfig(), b"evse") == derive_prefix(b"evse")


# --- the [bridge] section ------------------------------------------------------------------


def read(table: Any) -> tuple[BridgeConfig, list[str]]:
    problems: list[str] = []
    config = read_bridge(SectionReader("bridge", table, problems))
    return config, problems


def test_the_defaults_never_bridge_without_a_site_interface() -> None:
    config, problems = read({})
    assert problems == []
    assert config == BridgeConfig()
    assert config.policy is BridgePolicy.AFTER_AUTHORIZATION and not config.may_bridge
    assert (config.multicast_pps, config.ra_interval_s) == (50, 10.0)
    assert config.backend is BridgeBackend.LINUX and config.allowed_destinations == ()


def test_a_full_section() -> None:
    config, problems = read(
        {
            "plc_interface": "eth1",
            "site_interface": "eth0.42",
            "policy": "never",
            "prefix": "fd12:3456:789a:1::/64",
            "allowed_destinations": ["2001:db8::/32", "fd00:1::/64"],
            "multicast_pps": 200,
            "backend": "mock",
            "ra_interval_s": 30,
        }
    )
    assert problems == []
    assert (config.plc_interface, config.site_interface) == ("eth1", "eth0.42")
    assert config.policy is BridgePolicy.NEVER and not config.may_bridge
    assert config.prefix == PREFIX
    assert [str(net) for net in config.allowed_destinations] == ["2001:db8::/32", "fd00:1::/64"]
    assert (config.multicast_pps, config.backend, config.ra_interval_s) == (
        200,
        BridgeBackend.MOCK,
        30.0,
    )


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"prefix": "2001:db8:0:1::/64"}, "bridge.prefix: must be a unique-local /64"),
        ({"prefix": "fd12:3456:789a::/48"}, "bridge.prefix: must be a unique-local /64"),
        ({"prefix": "fd12::1/64"}, "bridge.prefix: must be a unique-local /64"),
        ({"prefix": "10.0.0.0/8"}, "bridge.prefix: must be a unique-local /64"),
        ({"prefix": "nonsense"}, "bridge.prefix: must be a unique-local /64"),
        ({"prefix": 64}, "bridge.prefix: must be a string"),
        ({"allowed_destinations": ["10.0.0.0/8"]}, "bridge.allowed_destinations: '10.0.0.0/8'"),
        ({"allowed_destinations": ["2001:db8::1/32"]}, "has host bits set"),
        ({"allowed_destinations": "2001:db8::/32"}, "must be an array of IPv6 prefixes"),
        ({"multicast_pps": 0}, "bridge.multicast_pps: must be between 1 and 10000"),
        ({"multicast_pps": 10_001}, "bridge.multicast_pps: must be between 1 and 10000"),
        ({"ra_interval_s": 0.5}, "bridge.ra_interval_s: must be between 1 and 600"),
        ({"ra_interval_s": 601}, "bridge.ra_interval_s: must be between 1 and 600"),
        ({"policy": "always"}, "bridge.policy: must be one of after-authorization, never"),
        ({"backend": "ovs"}, "bridge.backend: must be one of linux, mock"),
        ({"site_interface": "eth 0"}, "bridge.site_interface: 'eth 0' is not a network"),
        ({"plc_interface": "e", "site_interface": "e"}, "bridge.site_interface: must differ"),
        ({"bridge_name": "br0"}, "bridge.bridge_name: unknown key"),
    ],
)
def test_each_problem_is_refused_in_one_line(table: dict[str, Any], problem: str) -> None:
    _config, problems = read(table)
    assert len(problems) == 1 and problem in problems[0]
    assert problems[0].startswith("bridge.") and "\n" not in problems[0]


def test_every_problem_is_reported_at_once() -> None:
    _config, problems = read({"prefix": "x", "multicast_pps": -1, "surprise": True})
    assert [p.split(":")[0] for p in problems] == [
        "bridge.prefix",
        "bridge.multicast_pps",
        "bridge.surprise",
    ]


# --- the mock gate -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_mock_gate_records_what_it_would_do() -> None:
    clock = Clock()
    gate = MockBridge("plc0", "site0", PREFIX, [ipaddress.IPv6Network("2001:db8::/32")], 9, clock)
    state = gate.state()
    assert state["backend"] == "mock" and state["bridged"] is False
    assert state["since_unix_s"] is None and state["address"] == "fd12:3456:789a:1::1/64"
    assert state["ruleset"] == bridge_ruleset(
        "plc0", "site0", 9, [ipaddress.IPv6Network("2001:db8::/32")]
    )

    gate.open("session-7")
    assert gate.state() | {"ruleset": ""} == {
        "backend": "mock",
        "bridged": True,
        "since_unix_s": clock.now,
        "session": "session-7",
        "last_close_reason": None,
        "bridge": "evgk-br0",
        "plc_interface": "plc0",
        "site_interface": "site0",
        "address": "fd12:3456:789a:1::1/64",
        "ruleset": "",
    }
    opened_at = clock.now
    clock.now += 5
    gate.open("session-7")  # again: still bridged since the first open
    assert gate.state()["since_unix_s"] == opened_at

    clock.now += 60
    gate.close("heartbeat lost")
    closed = gate.state()
    assert closed["bridged"] is False and closed["session"] is None
    assert closed["since_unix_s"] == clock.now and closed["last_close_reason"] == "heartbeat lost"
    clock.now += 1
    gate.close("unplugged")  # idempotent: closed since the first close
    assert gate.state()["since_unix_s"] == closed["since_unix_s"]
    assert gate.cleanup_leftovers() is False


def test_the_gates_refuse_nonsense() -> None:
    gate = MockBridge("plc0", "site0", PREFIX)
    with pytest.raises(BridgeError, match="authorized session"):
        gate.open(" ")
    assert gate.state()["bridged"] is False
    with pytest.raises(BridgeError, match="both plc0"):
        MockBridge("plc0", "plc0", PREFIX)
    with pytest.raises(BridgeError, match="/64"):
        MockBridge("plc0", "site0", ipaddress.IPv6Network("fd00::/56"))
    with pytest.raises(BridgeError, match="between 1 and"):
        MockBridge("plc0", "site0", PREFIX, multicast_pps=0)
