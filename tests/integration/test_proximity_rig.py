"""Proximity (PP) through the rig on the running daemon: the type 1 latch release stops
charging within 100 ms, before the plug can move; a type 2 cable caps the current."""

from __future__ import annotations

import pytest

from firmware.pilot.duty import current_to_duty_permille
from hil.rig import RigError
from tests.integration.conftest import StartDaemon, charge

pytestmark = pytest.mark.integration


def test_type1_latch_release_opens_main_and_holds_it_open(start_daemon: StartDaemon) -> None:
    rig = start_daemon(charger={"proximity": "type1"}).rig
    rig.command("PP:RES 150")
    charge(rig)
    rig.command("PP:RES 480")  # the user presses the latch release
    assert rig.wait_relay("MAIN", "OPEN", 100) <= 100_000
    with pytest.raises(RigError) as refused:  # the vehicle still asks: no closing
        rig.wait_relay("MAIN", "CLOSED", 1500)
    assert refused.value.code == "TIMEOUT"
    rig.command("PP:RES 150")  # released without unplugging: charging may resume
    assert rig.wait_relay("MAIN", "CLOSED", 3000) <= 3_000_000


def test_type1_without_a_handle_offers_no_power(start_daemon: StartDaemon) -> None:
    rig = start_daemon(charger={"proximity": "type1"}).rig
    rig.command("EV:STATE B")  # PP open after *RST: no handle circuit
    with pytest.raises(RigError):
        rig.wait_duty(1, 99, 500)


@pytest.mark.parametrize(("ohm", "cable_a"), [(680, 20), (1500, 13), (220, 32)])
def test_type2_cable_coding_caps_the_duty(
    start_daemon: StartDaemon, ohm: int, cable_a: int
) -> None:
    rig = start_daemon(charger={"proximity": "type2", "max_current_a": 32}).rig
    rig.command(f"PP:RES {ohm}")
    rig.command("EV:STATE B")
    expected = current_to_duty_permille(cable_a)
    assert expected is not None
    duty, _ = rig.wait_duty(expected / 10, expected / 10, 1000)
    assert duty == pytest.approx(expected / 10)


def test_type2_out_of_range_coding_stops_charging(start_daemon: StartDaemon) -> None:
    rig = start_daemon(charger={"proximity": "type2"}).rig
    rig.command("PP:RES 220")
    charge(rig)
    rig.command("PP:RES 30")  # below 60 Ohm: a fault reading
    assert rig.wait_relay("MAIN", "OPEN", 100) <= 100_000
