"""PLC in the running daemon: ``[plc] interface = "mock"`` and the virtual rig's EV:PLC.

The simulated vehicle performs SLAC over the in-process link; the charger drives the pilot
for the duty convention, the E/F wake-up and the fallback; the link state is in the log.
Pilot and contactor are measured by the rig, as on a real bench.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from firmware.pilot.duty import current_to_duty_permille
from tests.integration.conftest import Running, StartDaemon

pytestmark = pytest.mark.integration

NOMINAL_PCT = (current_to_duty_permille(32) or 0) / 10


def plc(**settings: Any) -> dict[str, Any]:
    return {"plc": {"interface": "mock", **settings}}


def seen(running: Running, since: int, *needles: str) -> None:
    running.daemon.wait_for_all(needles, since)


def match(running: Running) -> None:
    running.rig.command("EV:PLC ON")
    running.daemon.wait_for("plc.slac_matched", 10)
    running.daemon.wait_for("plc.link state=up", 5)


def test_ev_plc_on_matches_and_off_drops_the_link_then_rekeys(start_daemon: StartDaemon) -> None:
    running = start_daemon(**plc())
    daemon, rig = running.daemon, running.rig
    rig.command("EV:STATE B")
    match(running)
    mark = len(daemon.lines)
    rig.command("EV:PLC OFF")
    # the session is over: our modem gets a fresh key, the old one no longer lets it in
    seen(running, mark, "plc.link state=down", "plc.set_key modem=evse")
    match(running)  # and a vehicle that comes back matches again
    nids = [line.split("nid=")[1] for line in daemon.lines if "plc.slac_matched" in line]
    assert len(nids) == 2 and nids[0] != nids[1], "each session gets a fresh NMK"


def test_slac_listens_from_b_and_stops_on_a(start_daemon: StartDaemon) -> None:
    running = start_daemon(**plc())
    daemon, rig = running.daemon, running.rig
    rig.command("EV:PLC ON")  # the vehicle's modem is on, but the cable is not plugged in
    time.sleep(1.0)
    assert not any("plc.slac_matched" in line for line in daemon.lines)
    rig.command("EV:STATE B")
    daemon.wait_for("plc.slac_matched", 10)
    daemon.wait_for("plc.link state=up", 5)
    mark = len(daemon.lines)
    rig.command("EV:STATE A")
    seen(running, mark, "plc.link state=down", "plc.set_key modem=evse")


def test_nominal_duty_is_kept_while_slac_runs_and_basic_charging_works(
    start_daemon: StartDaemon,
) -> None:
    rig = start_daemon(**plc()).rig
    rig.command("EV:STATE B")
    rig.wait_duty(NOMINAL_PCT, NOMINAL_PCT, 1000)
    rig.command("EV:STATE C")  # no PLC at all: the J1772 ampacity alone
    assert rig.wait_relay("MAIN", "CLOSED", 3000) <= 3_000_000


def test_five_percent_until_matched_then_nominal_and_the_contactor_closes(
    start_daemon: StartDaemon,
) -> None:
    running = start_daemon(**plc(duty="5%"))
    rig = running.rig
    rig.command("EV:STATE B")
    rig.wait_duty(5, 5, 1000)
    rig.command("EV:STATE C")
    time.sleep(0.5)
    assert rig.relays()["main"] == "OPEN", "5 % offers no current: no closing on it"
    match(running)
    rig.wait_duty(NOMINAL_PCT, NOMINAL_PCT, 1000)
    rig.wait_relay("MAIN", "CLOSED", 3000)


@pytest.mark.parametrize(
    ("fallback", "duty_pct"), [("no-charging", 100.0), ("basic-charging", NOMINAL_PCT)]
)
def test_no_vehicle_on_plc_wakes_it_twice_with_f_then_falls_back(
    start_daemon: StartDaemon, fallback: str, duty_pct: float
) -> None:
    running = start_daemon(**plc(duty="5%", slac_init_timeout_s=0.5, fallback=fallback))
    daemon, rig = running.daemon, running.rig
    rig.command("EV:STATE B")
    rig.wait_duty(5, 5, 1000)
    for _ in range(2):  # TT_EVSE_SLAC_init, then F for T_step_EF = 4 s, back to 5 %
        rig.wait_duty(0, 0, 2000)
        assert rig.measure_pilot()["state"] == "F"
        rig.wait_duty(5, 5, 5000)
    line = daemon.wait_for("plc.fallback", 3)
    assert f"mode={fallback}" in line and "warning" in line
    rig.wait_duty(duty_pct, duty_pct, 1000)
    rig.command("EV:STATE C")
    if fallback == "basic-charging":
        rig.wait_relay("MAIN", "CLOSED", 3000)
    else:
        time.sleep(0.5)
        assert rig.relays()["main"] == "OPEN"
    assert not any("fault.latched" in line for line in daemon.lines), "our own F is no fault"


def test_a_missing_plc_netdev_is_reported_and_the_fallback_applies(
    start_daemon: StartDaemon,
) -> None:
    running = start_daemon(plc={"interface": "nosuchplc0"})
    daemon, rig = running.daemon, running.rig
    assert any("plc.unavailable" in line and "nosuchplc0" in line for line in daemon.lines)
    rig.command("EV:STATE B")
    line = daemon.wait_for("plc.fallback", 3)
    assert "mode=basic-charging" in line and "unavailable" in line
    rig.command("EV:STATE C")
    rig.wait_relay("MAIN", "CLOSED", 3000)
