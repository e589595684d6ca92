"""OCPP end to end: the running daemon (mock board, virtual rig, the simulated vehicle over
2030.5 TLS) connected over wss to the test CSMS (Node, ocpp-rpc, independent of the
charger's ``ocpp`` package), which checks every message both ways against the official OCPP
JSON schemas and reports the result; the tests assert on that result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.journal.store import Journal
from firmware.sep2.pki import PkiLayout, init_pki
from hil.csms import Csms, CsmsPki, make_csms_pki, node_available
from hil.pev.profiles import PROFILES
from tests.integration.conftest import StartDaemon
from tests.integration.test_j3072_daemon import Site, authorized_and_discharging, make_site

pytestmark = [pytest.mark.integration, pytest.mark.parallel]
STATION = "EVSE-TEST-1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki") / "pki")


@pytest.fixture(scope="module")
def csms_pki(tmp_path_factory: pytest.TempPathFactory) -> CsmsPki:
    return make_csms_pki(tmp_path_factory.mktemp("csms-pki"), STATION)


@pytest.fixture
def csms(csms_pki: CsmsPki) -> Iterator[Csms]:
    missing = node_available()
    if missing is not None:
        pytest.skip(missing)
    running = Csms(csms_pki, heartbeat_s=2)
    yield running
    running.stop()


def ocpp_config(csms: Csms, pki: CsmsPki, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "url": csms.url, "station_id": STATION, "version": "2.1", "security_profile": 2,
        "password_file": str(pki.password_file), "ca_file": str(pki.ca),
        "meter_interval_s": 1, "reconnect_max_s": 1,
    }  # fmt: skip
    config.update(overrides)
    return config


def ocpp_site(start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path, csms: Csms,
              csms_pki: CsmsPki, **overrides: Any) -> Site:  # fmt: skip
    site = make_site(start_daemon, pki, tmp_path, ocpp=ocpp_config(csms, csms_pki, **overrides))
    csms.wait_for("connected", timeout_s=15)
    return site


def all_valid(csms: Csms) -> None:
    """Every request the station sent, and every answer it gave, passed the schemas: none
    was refused by ocpp-rpc's strict mode before its handler ran, and the CSMS returned no
    CallError."""
    checked = [e for e in csms.events if e["event"] in ("received", "result")]
    assert checked, "nothing was exchanged"
    invalid = [e for e in checked if e["valid"] is not True]
    invalid += [e for e in csms.events if e["event"] in ("invalid", "call_error")]
    assert not invalid, invalid


def profile(profile_id: int, **period: Any) -> dict[str, Any]:
    return {"evseId": 1, "chargingProfile": {
        "id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": profile_id, "chargingRateUnit": "W",
                              "chargingSchedulePeriod": [{"startPeriod": 0, **period}]}],
    }}  # fmt: skip


def gate_events(csms: Csms, variable: str) -> list[dict[str, Any]]:
    found = []
    for event in csms.received("NotifyEvent"):
        for data in event["params"]["eventData"]:
            if data["variable"]["name"] == variable:
                found.append(data)
    return found


def eventually(check: Any, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_boot_heartbeat_and_connector_status(
    start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path, csms: Csms, csms_pki: CsmsPki
) -> None:
    site = ocpp_site(start_daemon, pki, tmp_path, csms, csms_pki)
    connected = csms.wait_for("connected")
    assert connected["protocol"] == "ocpp2.1" and connected["auth"] == "basic"
    assert connected["identity"] == STATION
    boot = csms.wait_for("received", method="BootNotification")
    assert boot["params"]["reason"] == "PowerUp"
    status = csms.wait_for("received", method="StatusNotification")
    assert status["params"]["connectorStatus"] == "Available"
    csms.wait_for("received", method="Heartbeat", timeout_s=6)  # the CSMS said 2 s
    shown = site.status()["ocpp"]
    assert shown["online"] is True and shown["queued"] == 0
    all_valid(csms)


def test_a_dispatch_is_relayed_followed_capped_and_reported(
    start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path, csms: Csms, csms_pki: CsmsPki
) -> None:
    """A discharge setpoint from the CSMS reaches the authorized vehicle as opModFixedW,
    which it answers and follows (the rig's meter plays its power, the CSMS reads it back);
    a lower cap mid-session becomes opModMaxLimW and the gate holds the vehicle to it;
    clearing returns the session to the site's own controls."""
    site = ocpp_site(start_daemon, pki, tmp_path, csms, csms_pki)
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    rig = site.running.rig
    assert site.control("max-lim-w", "percent=80").returncode == 0  # the site owner's cap
    assert eventually(lambda: pev.client.max_lim_w_pct == 80.0, 5)
    answer = csms.call("SetChargingProfile",
                       profile(7, operationMode="CentralSetpoint", setpoint=-3600.0))  # fmt: skip
    assert answer["result"]["status"] == "Accepted" and answer["valid"], answer
    assert eventually(lambda: pev.client.fixed_w_pct == 50.0, 5), pev.client.fixed_w_pct
    assert eventually(lambda: pev.client.dispatched_w == 3600.0, 3)
    rig.command(f"METER:W {pev.client.dispatched_w:.0f}")  # the vehicle follows: the rig meter
    shown = site.status()
    assert shown["set_by"]["fixed-w 50 %"] == "csms (charging profile 7)"
    assert shown["authorization"]["state"] == "authorized"
    assert eventually(lambda: [r["actualValue"] for r in gate_events(csms, "Response")]
                      == ["received", "started"], 8), gate_events(csms, "Response")  # fmt: skip

    def exported() -> float:
        for event in reversed(csms.received("TransactionEvent")):
            for value in event["params"]["meterValue"][0]["sampledValue"]:
                if value["measurand"] == "Power.Active.Export":
                    return float(value["value"])
        return 0.0

    assert eventually(lambda: exported() == 3600.0, 5), "the CSMS reads the power back"

    cap = profile(8, operationMode="ChargingOnly", dischargeLimit=-1440.0)
    answer = csms.call("SetChargingProfile", cap)
    assert answer["result"]["status"] == "Accepted", answer
    assert eventually(lambda: pev.client.max_lim_w_pct == 20.0, 5)
    rig.command(f"METER:W {pev.client.dispatched_w:.0f}")
    assert pev.client.dispatched_w == 1440.0
    assert eventually(lambda: site.status()["authorization"]["limit_w"] == 1440, 5)
    with Journal.in_state_dir(site.state) as journal, journal.transaction() as db:
        rows = db.execute("SELECT function, set_by FROM control_changes ORDER BY id").fetchall()
    assert rows == [("max-lim-w 80 %", "site owner (control socket)"),
                    ("fixed-w 50 %", "csms (charging profile 7)"),
                    ("fixed-w 20 %", "csms (charging profile 7)"),  # held to the new cap
                    ("max-lim-w 20 %", "csms (charging profile 8)")]  # fmt: skip
    assert eventually(lambda: gate_events(csms, "DispatchLimited"), 5), "the CSMS is told"

    answer = csms.call("ClearChargingProfile", {"chargingProfileId": 8})
    assert answer["result"]["status"] == "Accepted"
    assert eventually(lambda: pev.client.max_lim_w_pct == 80.0, 5), "back to the site's"
    assert eventually(lambda: pev.client.fixed_w_pct == 50.0, 5), "the setpoint asked for"
    assert site.status()["set_by"]["max-lim-w 80 %"] == "site owner (control socket)"
    assert site.status()["authorization"]["state"] == "authorized"
    pev.stop()
    all_valid(csms)


def test_a_dispatch_for_a_vehicle_not_authorized_is_refused(
    start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path, csms: Csms, csms_pki: CsmsPki
) -> None:
    site = ocpp_site(start_daemon, pki, tmp_path, csms, csms_pki)
    nobody = csms.call("SetChargingProfile", profile(3, limit=7000.0))
    assert nobody["result"]["status"] == "Rejected"
    site.plug_in()
    pev = site.pev(PROFILES["unapproved-ism"])
    site.running.daemon.wait_for("j3072.decision granted=false", timeout_s=15)
    answer = csms.call("SetChargingProfile",
                       profile(4, operationMode="CentralSetpoint", setpoint=-3000.0))  # fmt: skip
    result = answer["result"]
    assert result["status"] == "Rejected" and answer["valid"], answer
    assert result["statusInfo"]["reasonCode"] == "NotAuthorized"
    assert "not listed" in result["statusInfo"]["additionalInfo"]
    assert pev.client.fixed_w_pct is None, "nothing reached the vehicle"
    assert eventually(
        lambda: any(
            e["actualValue"] == "denied" for e in gate_events(csms, "DischargeAuthorization")
        ),
        5,
    )
    assert site.status()["authorization"]["state"] == "denied"
    pev.stop()
    all_valid(csms)


def test_events_queued_while_the_csms_is_away_arrive_in_order(
    start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path, csms: Csms, csms_pki: CsmsPki
) -> None:
    site = ocpp_site(start_daemon, pki, tmp_path, csms, csms_pki)
    csms.wait_for("received", method="StatusNotification")
    csms.send({"cmd": "stop"})
    csms.wait_for("stopped")
    site.running.daemon.wait_for("ocpp.connect_failed", timeout_s=10)
    rig = site.running.rig
    for _ in range(2):  # two plug-ins while away: statuses and two transactions
        rig.command("EV:STATE B")
        rig.wait_duty(1, 99, 1000)
        time.sleep(0.3)
        rig.command("EV:STATE A")
        rig.wait_duty(100, 100, 1000)
        time.sleep(0.3)
    assert eventually(lambda: site.status()["ocpp"]["queued"] >= 8, 3), site.status()["ocpp"]
    queued = site.status()["ocpp"]["queued"]
    since = len(csms.events)
    csms.send({"cmd": "listen"})
    csms.wait_for("connected", since, timeout_s=15)
    assert eventually(lambda: site.status()["ocpp"]["queued"] == 0, 10)
    after = [e for e in csms.events[since:] if e["event"] == "received"
             and e["method"] in ("StatusNotification", "TransactionEvent")]  # fmt: skip
    assert len(after) >= queued
    statuses = [e["params"]["connectorStatus"] for e in after
                if e["method"] == "StatusNotification"]  # fmt: skip
    assert statuses[:4] == ["Occupied", "Available", "Occupied", "Available"], statuses
    tx = [(e["params"]["transactionInfo"]["transactionId"], e["params"]["eventType"],
           e["params"]["seqNo"], e["params"].get("offline")) for e in after
          if e["method"] == "TransactionEvent"]  # fmt: skip
    first, second = tx[0][0], tx[-1][0]
    assert first != second
    assert [t[1] for t in tx if t[0] == first] == ["Started", "Ended"], tx
    assert [t[2] for t in tx if t[0] == second] == [0, 1], tx
    assert all(t[3] is True for t in tx), "marked as having happened offline"
    all_valid(csms)


def test_a_csms_certificate_from_another_ca_is_refused(
    start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path, csms: Csms, csms_pki: CsmsPki
) -> None:
    site = make_site(start_daemon, pki, tmp_path,
                     ocpp=ocpp_config(csms, csms_pki, ca_file=str(csms_pki.other_ca)))  # fmt: skip
    line = site.running.daemon.wait_for("ocpp.connect_failed", timeout_s=10)
    assert "certificate is not trusted" in line and len(line.splitlines()) == 1
    time.sleep(1.5)
    assert not [e for e in csms.events if e["event"] == "connected"]
    assert site.status()["ocpp"]["online"] is False


def test_security_profile_3_and_ocpp_2_0_1_charging_limit(
    start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path, csms: Csms, csms_pki: CsmsPki
) -> None:
    """A client certificate instead of a password; 2.0.1 can express a charging limit only:
    the pilot's offer follows it, and a discharge setpoint is not even expressible."""
    site = ocpp_site(start_daemon, pki, tmp_path, csms, csms_pki, version="2.0.1",
                     security_profile=3, cert_file=str(csms_pki.station_cert),
                     key_file=str(csms_pki.station_key))  # fmt: skip
    connected = csms.wait_for("connected")
    assert connected["auth"] == "certificate" and connected["protocol"] == "ocpp2.0.1"
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    answer = csms.call("SetChargingProfile", profile(5, limit=3840.0))  # 16 A at 240 V
    assert answer["result"]["status"] == "Accepted" and answer["valid"], answer
    assert eventually(lambda: site.status()["current"]["limit_a"] == 16, 3)
    answer = csms.call("SetChargingProfile", profile(6, limit=-3000.0))
    assert answer["result"]["status"] == "Rejected", "2.0.1 cannot ask for discharge"
    assert answer["result"]["statusInfo"]["reasonCode"] == "OutOfRange"
    assert site.status()["current"]["limit_a"] == 16
    answer = csms.call("ClearChargingProfile", {"chargingProfileId": 5})
    assert answer["result"]["status"] == "Accepted"
    assert eventually(lambda: site.status()["current"]["limit_a"] == 32, 3)
    pev.stop()
    all_valid(csms)
