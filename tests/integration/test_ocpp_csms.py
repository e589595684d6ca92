"""The test CSMS as a witness: a message from the station that ocpp-rpc's strict mode refuses
is reported (so ``all_valid`` cannot pass over it) and the station does not count it as
delivered; and a CSMS that never answers does not hold up the gate or the interlock."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from ocpp import charge_point

from firmware.journal.outbox import Outbox
from firmware.ocpp.config import OcppConfig
from firmware.ocpp.station import MESSAGE_ATTEMPTS, Station
from firmware.ocpp.upstream import Upstream
from firmware.sep2.pki import PkiLayout
from hil.csms import Csms, CsmsPki, NoVehicle
from hil.pev.profiles import PROFILES
from tests.integration.conftest import StartDaemon
from tests.integration.test_j3072_daemon import LIST_LIMIT_W, authorized_and_discharging
from tests.integration.test_ocpp_daemon import (  # noqa: F401 (fixtures)
    STATION,
    all_valid,
    csms,
    csms_pki,
    ocpp_site,
    pki,
)

pytestmark = [pytest.mark.integration, pytest.mark.parallel]
OPEN_LIMIT_US = 100_000  # IEC 61851-1 Table A.6 seq 8.1


def test_an_invalid_message_is_reported_by_the_csms_and_not_counted_delivered(
    csms: Csms, csms_pki: CsmsPki, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    async def unchecked(message: Any, version: str) -> None:
        """The station's own schema check off: the CSMS's is the one under test."""

    monkeypatch.setattr(charge_point, "validate_payload", unchecked)
    config = OcppConfig(url=csms.url, station_id=STATION, version="2.1", security_profile=2,
                        password_file=csms_pki.password_file, ca_file=csms_pki.ca)  # fmt: skip
    upstream = Upstream(config, Outbox(None, 100), 240)
    station = Station(config, upstream, NoVehicle(), "test")
    station.attempt_interval_s = 0.05

    async def run() -> None:
        station.start()
        await asyncio.to_thread(csms.wait_for, "received", method="BootNotification")
        invalid = {"generatedAt": "not a time", "seqNo": 0, "eventData": [{"eventId": 1}]}
        upstream._put("NotifyEvent", invalid, essential=True)
        async with asyncio.timeout(15):
            while upstream.outbox.unsent():
                await asyncio.sleep(0.02)
        await station.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    refused = [e for e in csms.events if e["event"] == "invalid"]
    assert [e["method"] for e in refused] == ["NotifyEvent"] * MESSAGE_ATTEMPTS
    assert not csms.received("NotifyEvent"), "refused before any handler: no 'received'"
    with pytest.raises(AssertionError, match="invalid"):
        all_valid(csms)
    dropped = [r.getMessage() for r in caplog.records if "ocpp.message_dropped" in r.getMessage()]
    assert len(dropped) == 1, "tried again, then dropped and said: not counted as delivered"


def test_the_gate_never_waits_for_a_csms_that_answers_nothing(
    start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path,  # noqa: F811
    csms: Csms, csms_pki: CsmsPki,  # noqa: F811
) -> None:  # fmt: skip
    """The CSMS holds every answer (the station waits up to 30 s for each, one at a time):
    the vehicle is authorized, revoked on the meter within 1 s, and main opens at C -> B
    within 100 ms, as without OCPP."""
    site = ocpp_site(start_daemon, pki, tmp_path, csms, csms_pki)
    csms.wait_for("received", method="StatusNotification")  # booted, connector Available
    since = len(csms.received())
    for method in ("StatusNotification", "TransactionEvent", "NotifyEvent",
                   "NotifyEVChargingNeeds", "Heartbeat"):  # fmt: skip
        csms.send({"cmd": "hold", "method": method, "seconds": 120})
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    rig = site.running.rig
    rig.command(f"METER:W {LIST_LIMIT_W + 800}")
    assert rig.wait_relay("DISCHARGE", "OPEN", 1000) <= 1_000_000
    rig.command("METER:W 0")
    rig.command("EV:STATE B")
    assert rig.wait_relay("MAIN", "OPEN", 100) <= OPEN_LIMIT_US
    shown = site.status()["ocpp"]
    assert shown["queued"] >= 2, "the events wait for the CSMS; the gate did not"
    held = csms.received()[since:]
    assert held, "requests reached the CSMS and were never answered"
    pev.stop()
