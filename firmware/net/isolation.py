"""The PLC link's isolation, owned by the firmware: what the vehicle may reach, and no routing.

An nftables ``inet`` table, installed at start whenever the PLC link is a real netdev and kept
for the daemon's life (docs/v2g-ac-profile.md "Network and security"):

- **input** from the PLC link (the netdev, or the site bridge while it holds the netdev): only
  neighbour and router discovery (hop limit 255: never routed), DNS-SD (mDNS, UDP 5353), the
  2030.5 port, and replies to what the EVSE itself opened. Everything else is dropped and
  counted;
- **forward**: nothing is routed from or to the PLC link, ever. Bridged frames are the site
  bridge's business (its own bridge-family filter); when a kernel hands them to this hook
  (br_netfilter) they come in and go out on the bridge itself, which stays allowed, while
  anything routed between the bridge and another interface is dropped.

The script replaces the table atomically; ``delete_script`` removes it.
"""

from __future__ import annotations

from firmware.net import valid_ifname

TABLE = "evse_gatekeeper_plc"
MDNS_PORT = 5353


class IsolationError(Exception):
    """The isolation could not be built (a bad name or port); one line."""


def isolation_ruleset(plc_if: str, bridge_if: str, sep2_port: int | None) -> str:
    """``sep2_port`` None: no 2030.5 server, so no port at all is open to the link."""
    for name in (plc_if, bridge_if):
        if not valid_ifname(name):
            raise IsolationError(f"{name!r} is not a network interface name")
    if sep2_port is not None and not 0 < sep2_port < 65536:
        raise IsolationError(f"2030.5 port {sep2_port} is not a TCP port")
    link = f'{{ "{plc_if}", "{bridge_if}" }}'
    inbound = [
        f"iifname != {link} accept",
        "ct state established,related accept",
        "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit,"
        " nd-neighbor-advert } ip6 hoplimit 255 accept",
        f'udp dport {MDNS_PORT} accept comment "DNS-SD"',
        *([f'tcp dport {sep2_port} accept comment "2030.5"'] if sep2_port else []),
        'counter drop comment "nothing else reaches the EVSE from the vehicle"',
    ]
    forward = [
        f'iifname "{plc_if}" drop',
        f'oifname "{plc_if}" drop',
        f'iifname "{bridge_if}" oifname != "{bridge_if}" drop comment "routed, not bridged"',
        f'oifname "{bridge_if}" iifname != "{bridge_if}" drop comment "routed, not bridged"',
    ]

    def chain(name: str, hook: str, rules: list[str]) -> str:
        body = "".join(f"\t\t{rule}\n" for rule in rules)
        return (f"\tchain {name} {{\n\t\ttype filter hook {hook} priority filter; "
                f"policy accept;\n{body}\t}}\n")  # fmt: skip

    chains = chain("input", "input", inbound) + chain("forward", "forward", forward)
    return f"{delete_script()}table inet {TABLE} {{\n{chains}}}\n"


def delete_script() -> str:
    # declaring the table first makes the delete succeed when it is absent: idempotent
    return f"table inet {TABLE}\ndelete table inet {TABLE}\n"
