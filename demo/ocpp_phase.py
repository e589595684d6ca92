"""``make run``'s OCPP phase: the daemon again, connected over wss to the test CSMS (Node,
ocpp-rpc: ``tests/csms``), and a dispatch flowing CSMS -> vehicle with the readings flowing
back. Skipped, saying why, where Node or the CSMS's packages are missing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hil.csms import Csms, make_csms_pki, node_available

STATION = "EVSE-DEMO-1"


def _exported_w(csms: Csms) -> float | None:
    for event in reversed(csms.received("TransactionEvent")):
        for value in event["params"]["meterValue"][0]["sampledValue"]:
            if value["measurand"] == "Power.Active.Export":
                return float(value["value"])
    return None


def _responses(csms: Csms) -> list[str]:
    """The vehicle's Responses to the dispatch, as the CSMS was told them."""
    return [data["actualValue"] for event in csms.received("NotifyEvent")
            for data in event["params"]["eventData"]
            if data["variable"]["name"] == "Response"]  # fmt: skip


def _until(check: Callable[[], Any], within_s: float) -> Any:
    deadline = time.monotonic() + within_s
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def ocpp_phase(daemon_config: str, state_dir: Path, failures: list[str]) -> None:
    """The daemon again with ``[ocpp]`` aimed at the test CSMS; its failures added to
    ``failures``."""
    from demo.__main__ import run_phase  # the demo's own phases and printing

    missing = node_available()
    if missing is not None:
        print(f"\n  -- OCPP phase skipped: {missing} --")
        return
    pki = make_csms_pki(state_dir / "ocpp-pki", STATION)
    csms = Csms(pki, heartbeat_s=60)
    derived = state_dir / "demo-ocpp.toml"
    section = (f'\n[ocpp]\nurl = "{csms.url}"\nstation_id = "{STATION}"\nversion = "2.1"\n'
               f'password_file = "{pki.password_file}"\nca_file = "{pki.ca}"\n'
               "meter_interval_s = 1\n")  # fmt: skip
    derived.write_text(Path(daemon_config).read_text() + section)
    try:
        failures += run_phase(derived, state_dir / "demo-daemon-ocpp.log", "OCPP",
                              lambda story: _play(story, csms))  # fmt: skip
    finally:
        csms.stop()


def _play(story: Any, csms: Csms) -> None:
    step = story.step
    story.timeline.section("ocpp", "OCPP 2.1: the CSMS dispatches the vehicle, readings flow back")

    def connected() -> str:
        found = csms.wait_for("connected", timeout_s=15)
        boot = csms.wait_for("received", method="BootNotification")
        return f"{found['protocol']} {found['auth']} auth; BootNotification valid={boot['valid']}"

    step("station connects to the CSMS (wss)", connected)
    story.plug_in_and_match()
    pev = story.start_vehicle("certified-4q")
    step("vehicle runs the J3072 exchange (TLS)", story.decision(True))
    step("vehicle requests charge", story.send("EV:STATE C"))
    step("EVSE closes the discharge path", story.relay("CLOSED", 3000, "DISCHARGE"))

    def dispatch() -> str:
        period = {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -3600.0}
        schedule = {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}
        profile = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                   "chargingProfileKind": "Absolute", "chargingSchedule": [schedule]}  # fmt: skip
        answer = csms.call("SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        assert answer["result"]["status"] == "Accepted", answer
        return "SetChargingProfile setpoint -3600 W: Accepted"

    step("CSMS dispatches a 3.6 kW discharge", dispatch)

    def follows() -> str:
        watts = _until(lambda: pev.client.dispatched_w, 5)
        assert watts, "the vehicle did not follow"
        story.rig.command(f"METER:W {watts:.0f}")
        return f"opModFixedW {pev.client.fixed_w_pct:g} % -> METER:W {watts:.0f}"

    step("vehicle follows the superseding DERControl", follows)

    def read_back() -> str:
        exported = _until(lambda: (_exported_w(csms) or 0) > 0, 5)
        assert exported, "no export reading at the CSMS"
        answers = _until(lambda: _responses(csms) if "started" in _responses(csms) else [], 8)
        assert answers, "no Response reported to the CSMS"
        valid = all(e["valid"] for e in csms.events if e["event"] in ("received", "result"))
        return (
            f"TransactionEvent Power.Active.Export {_exported_w(csms):g} W; "
            f"NotifyEvent Response {'+'.join(answers)}; every message schema-valid: {valid}"
        )

    step("the CSMS reads the power and the Responses", read_back)
    step("evse-gatekeeper status", story.status("authorized"))
    story.unplug()
    pev.stop()
