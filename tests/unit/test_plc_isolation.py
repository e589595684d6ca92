"""The PLC link's isolation ruleset: what it lets through, and what it refuses to build."""

from __future__ import annotations

import pytest

from firmware.net.isolation import TABLE, IsolationError, delete_script, isolation_ruleset


def test_the_ruleset_lets_only_discovery_dns_sd_and_2030_5_in_and_routes_nothing() -> None:
    script = isolation_ruleset("eth1", "evgk-br0", 8443)
    assert script.startswith(delete_script()), "replaces the table atomically"
    assert f"table inet {TABLE}" in script
    accepts = [line.strip() for line in script.splitlines() if line.strip().endswith("accept")
               or " accept " in line]  # fmt: skip
    assert accepts == [
        'iifname != { "eth1", "evgk-br0" } accept',
        "ct state established,related accept",
        "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit,"
        " nd-neighbor-advert } ip6 hoplimit 255 accept",
        'udp dport 5353 accept comment "DNS-SD"',
        'tcp dport 8443 accept comment "2030.5"',
    ]
    assert 'iifname "eth1" drop' in script and 'oifname "eth1" drop' in script


@pytest.mark.parametrize(
    ("plc", "port", "why"),
    [('eth"1', 8443, "is not a network interface name"), ("eth1", 0, "is not a TCP port")],
)
def test_bad_names_and_ports_are_refused_in_one_line(plc: str, port: int, why: str) -> None:
    with pytest.raises(IsolationError, match=why):
        isolation_ruleset(plc, "evgk-br0", port)
