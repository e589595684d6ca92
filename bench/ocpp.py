"""``make bench-ocpp``: a CSMS's setpoint to the vehicle and its Response back, over loopback.

Starts the real daemon (mock board, 2030.5 server on [::1], OCPP 2.1 to the test CSMS over
wss, TEST credentials made for the run), plugs in the simulated certified vehicle and lets
the J3072 gate authorize it; then, ``--runs`` times, the CSMS sends a SetChargingProfile with
a new discharge setpoint and this measures, from the CSMS's send:

- accepted: the station's SetChargingProfile answer at the CSMS;
- published: the vehicle holds the new opModFixedW (it was notified of the superseding
  DERControl and read it back);
- response: the CSMS has the NotifyEvent with the vehicle's "started" Response to it.

Prints p50/p99/max of each (ms). Needs Node and tests/csms/node_modules (``make venv``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.interlock import percentile
from firmware.sep2.pki import init_pki
from hil.csms import Csms, CsmsPki, make_csms_pki, node_available
from hil.firmware_process import Daemon, toml_dumps
from hil.pev.background import BackgroundPev, plug_in_authorized
from hil.pev.profiles import APPROVED_ISM, PROFILES
from hil.rig import wait_for_rig
from hil.utility import UtilityAuthority

AREA = "TEST-AREA-BENCH"
STATION = "EVSE-BENCH-1"


def _config(work: Path, pki: Path, csms: Csms, csms_pki: CsmsPki,
            utility: UtilityAuthority) -> Path:  # fmt: skip
    config: dict[str, Any] = {
        "hal": {"backend": "mock", "mock": {"rig_link": str(work / "rig")}},
        "charger": {"max_current_a": 32, "ventilation": False},
        "tls": {"ca_file": str(pki / "serca.pem"), "cert_file": str(pki / "evse.pem"),
                "key_file": str(pki / "evse.key")},
        "sep2": {"enabled": True, "host": "::1", "port": 0},
        "approvals": utility.config,
        "site": {"service_area": AREA, "max_w": 7200,
                 "functions": [{"mode": "max-lim-w", "percent": 100}]},
        "plc": {"interface": "mock", "duty": "nominal", "fallback": "basic-charging"},
        "ocpp": {"url": csms.url, "station_id": STATION, "version": "2.1",
                 "password_file": str(csms_pki.password_file), "ca_file": str(csms_pki.ca),
                 # back to back, faster than the default 5 requests/s the station handles
                 "max_requests_per_s": 50},
        "paths": {"state_dir": str(work / "state")},
        "log": {"level": "info"},
    }  # fmt: skip
    path = work / "bench.toml"
    path.write_text(toml_dumps(config))
    return path


def _profile(profile_id: int, setpoint_w: float) -> dict[str, Any]:
    period = {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": setpoint_w}
    schedule = {"id": profile_id, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}
    return {"evseId": 1, "chargingProfile": {
        "id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": [schedule]}}  # fmt: skip


def _started(csms: Csms, since: int) -> float | None:
    for event in csms.events[since:]:
        if event["event"] == "received" and event["method"] == "NotifyEvent":
            data = event["params"]["eventData"][0]
            if data["variable"]["name"] == "Response" and data["actualValue"] == "started":
                return float(event["at_s"])
    return None


def _one(csms: Csms, pev: BackgroundPev, run: int) -> tuple[float, float, float]:
    setpoint = -(1000.0 + 100 * (run % 40))
    percent = round(-setpoint / 7200 * 100, 2)
    since = len(csms.events)
    sent = time.monotonic()
    csms.send({"cmd": "call", "ref": f"b{run}", "method": "SetChargingProfile",
               "params": _profile(100 + run % 2, setpoint)})  # fmt: skip
    answer = csms.wait_for("result", since, ref=f"b{run}")
    assert answer["result"]["status"] == "Accepted", answer
    accepted = float(answer["at_s"])
    deadline = sent + 10
    while pev.client.fixed_w_pct != percent and time.monotonic() < deadline:
        time.sleep(0.0005)
    published = time.monotonic()
    while (responded := _started(csms, since)) is None and time.monotonic() < deadline:
        time.sleep(0.001)
    if responded is None:
        raise TimeoutError(f"run {run}: no Response reported within 10 s")
    return accepted - sent, published - sent, responded - sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ocpp", description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args(argv)
    missing = node_available()
    if missing is not None:
        print(f"bench-ocpp: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pki = init_pki(work / "pki").directory
        utility = UtilityAuthority(work, AREA)
        utility.install(work / "state", approve={APPROVED_ISM: 6000})
        csms_pki = make_csms_pki(work / "csms", STATION)
        csms = Csms(csms_pki, heartbeat_s=300)
        config = _config(work, pki, csms, csms_pki, utility)
        daemon = Daemon(config, log_file=work / "daemon.log")
        try:
            return _measure(daemon, csms, pki, work, args.runs)
        finally:
            daemon.stop()
            csms.stop()


def _measure(daemon: Daemon, csms: Csms, pki: Path, work: Path, runs: int) -> int:
    daemon.wait_for("gatekeeper.ready", timeout_s=20)
    csms.wait_for("connected", timeout_s=15)
    with wait_for_rig(str(work / "rig")) as rig:
        pev = plug_in_authorized(daemon, rig, pki, PROFILES["certified-4q"])
        samples = [_one(csms, pev, run) for run in range(runs)]
        pev.stop()
    print(f"bench-ocpp: {runs} setpoints, CSMS -> station -> vehicle -> CSMS over loopback")
    print(f"  {'measure':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    names = ("SetChargingProfile answered", "DERControl followed by the vehicle",
             "vehicle's Response at the CSMS")  # fmt: skip
    for index, name in enumerate(names):
        values = [s[index] * 1000 for s in samples]
        print(f"  {name:<34} {percentile(values, 50):8.1f} {percentile(values, 99):8.1f} "
              f"{max(values):8.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
