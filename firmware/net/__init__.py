"""The PLC link's IP side: the EVSE's address on the link, the router advertisements that
give the vehicle its address, and the gate that bridges the link to the site network
(docs/v2g-ac-profile.md "Network and security").

``addressing``, ``ra`` and ``bridge`` decide nothing; ``plc_network`` is the part the daemon
runs (started by ``firmware.daemon.communication``), told when a session is authorized. The
netlink helpers here are synchronous; see ``firmware.net.addressing`` for calling them from an
event loop.
"""

from __future__ import annotations

IFNAMSIZ = 16  # linux/if.h, including the terminating NUL


def valid_ifname(name: str) -> bool:
    """A Linux netdev name that is also safe to quote in an nftables ruleset: 1..15 bytes, no
    '/', ':', quotes, backslash or whitespace, not '.' or '..'."""
    return (
        0 < len(name.encode()) < IFNAMSIZ
        and name not in (".", "..")
        and not any(c in "/:\"'\\" or c.isspace() or not c.isprintable() for c in name)
    )
