"""SLAC over real AF_PACKET sockets in network namespaces made by the test:
EVSE host <-veth-> mock modem pair <-veth-> PEV host. An IPv6 ping across the "PLC" link
works only once both sides are keyed, and stops when the EVSE re-keys after the vehicle
leaves. Skipped with the kernel's reason where namespaces or veth are refused."""

from __future__ import annotations

import signal

import pytest

from hil.plc.netns import Topology

pytestmark = pytest.mark.integration


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


@pytest.mark.parametrize(
    ("modem_args", "pev_args"),
    [
        (("--drop-sounds", "1,4,8"), ()),  # lost sounds: characterized on the 600 ms deadline
        (("--duplicate-sounds",), ()),  # duplicated sounds (and three START_ATTEN_CHARs)
        (("--reorder-sounds",), ()),  # sounds arrive out of order
        ((), ("--ignore-chars", "2")),  # two lost ATTEN_CHAR exchanges: the resends carry it
    ],
    ids=["lost-sounds", "duplicate-sounds", "reordered-sounds", "lost-atten-char-rsp"],
)
def test_faults_on_the_line_still_match(
    topology: Topology, modem_args: tuple[str, ...], pev_args: tuple[str, ...]
) -> None:
    _, evse = topology.start_modem_and_evse(modem_args)
    pev = topology.start("pev", "--if", "pev0", *pev_args)
    pev.wait_for("PEV MATCHED", 10)
    evse.wait_for("MATCHED", 5)
    assert topology.ping_works()


def test_a_second_ev_sounding_at_the_same_time_does_not_match(topology: Topology) -> None:
    modem, evse = topology.start_modem_and_evse(("--second-ev",))
    pev = topology.start("pev", "--if", "pev0")
    pev.wait_for("PEV MATCHED", 10)
    matched = evse.wait_for("MATCHED", 5)
    report = modem.wait_for("SECOND EV DONE", 10)
    # the neighbour's car was served like any vehicle up to the characterization...
    assert "SlacParmCnf=1" in report and "AttenCharInd=1" in report, report
    # ...but it asked its own charger for the match, and only ours matched here
    assert "SlacMatchCnf" not in report, report
    assert matched.split()[-1] == topology.mac("pev", "pev0")
    assert topology.ping_works()


def test_no_parm_req_wakes_the_vehicle_twice_then_gives_up(topology: Topology) -> None:
    _, evse = topology.start_modem_and_evse(evse_args=("--init-timeout-ms", "300"))
    evse.wait_for("WAKEUP", 3)
    evse.wait_for("WAKEUP", 8)  # after the 4 s E/F step and another init timeout
    evse.wait_for("GAVE UP", 8)


def test_unplug_mid_match_forgets_the_session_without_rekeying(topology: Topology) -> None:
    _, evse = topology.start_modem_and_evse()
    pev = topology.start("pev", "--if", "pev0", "--stop-after-sounds")
    pev.wait_for("PEV FAILED", 10)
    evse.proc.send_signal(signal.SIGUSR1)
    evse.wait_for("UNPLUGGED no re-key", 5)
    assert not topology.ping_works()
    evse.proc.send_signal(signal.SIGUSR2)  # a new vehicle plugs in and matches
    evse.wait_for("PLUGGED", 5)
    topology.start("pev", "--if", "pev0").wait_for("PEV MATCHED", 10)
    assert topology.ping_works()
