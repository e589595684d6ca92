"""SLAC over real AF_PACKET sockets in network namespaces made by the test:
EVSE host <-veth-> mock modem pair <-veth-> PEV host. An IPv6 ping across the "PLC" link
works only once both sides are keyed, and stops when the EVSE re-keys after the vehicle
leaves. Skipped with the kernel's reason where namespaces or veth are refused."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from hil.plc.netns import NetnsUnavailable, Topology

pytestmark = pytest.mark.integration


@pytest.fixture
def topology() -> Iterator[Topology]:
    try:
        with Topology() as made:
            yield made
    except NetnsUnavailable as err:
        pytest.skip(str(err))


def test_match_then_ipv6_then_rekey_isolates(topology: Topology) -> None:
    _, evse = topology.start_modem_and_evse()
    assert not topology.ping_works(), "no IPv6 across the PLC link before keying"
    pev = topology.start("pev", "--if", "pev0")
    pev.wait_for("PEV MATCHED", 10)
    evse.wait_for("MATCHED", 5)
    assert pev.proc.wait(5) == 0
    assert topology.ping_works(), "IPv6 link-local ping works once both sides are keyed"
    evse.proc.send_signal(signal.SIGUSR1)  # the vehicle unplugs: re-key
    evse.wait_for("REKEYED", 5)
    assert not topology.ping_works(), "the re-key evicts the vehicle"
