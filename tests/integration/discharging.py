"""A daemon with a vehicle charging and discharging: both relays closed by a J3072 grant, for
the tests that then break something (a process killed or stopped, a storm)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.sep2.pki import init_pki
from hil.pev.background import BackgroundPev, plug_in_authorized, sep2_url
from hil.pev.profiles import APPROVED_ISM, PROFILES
from hil.utility import UtilityAuthority
from tests.integration.conftest import Running, StartDaemon

AREA = "TEST-AREA-SAFETY"
LIMIT_W = 5000


def cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware", *args],
                          capture_output=True, text=True, timeout=timeout_s)  # fmt: skip


@dataclass
class Discharging:
    running: Running
    pki: Path
    utility: UtilityAuthority
    config: Path
    url: str
    pev: BackgroundPev

    def status(self) -> dict[str, Any]:
        done = cli("status", "--json", "--config", str(self.config), timeout_s=30)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def start_discharging(start_daemon: StartDaemon, tmp_path: Path) -> Discharging:
    """Plug in, match, run the exchange, charge: main and the discharge path closed, the
    meter showing 3 kW of discharge (under the authorized limit)."""
    pki = init_pki(tmp_path / "pki").directory
    utility = UtilityAuthority(tmp_path, AREA)
    state = tmp_path / "state"
    utility.install(state, approve={APPROVED_ISM: LIMIT_W})
    running = start_daemon(
        tls={"ca_file": str(pki / "serca.pem"), "cert_file": str(pki / "evse.pem"),
             "key_file": str(pki / "evse.key")},
        sep2={"enabled": True, "host": "::1", "port": 0},
        approvals=utility.config,
        site={"service_area": AREA, "max_w": 7200,
              "functions": [{"mode": "max-lim-w", "percent": 100}]},
        plc={"interface": "mock", "duty": "nominal", "fallback": "basic-charging"},
        paths={"state_dir": str(state)},
    )  # fmt: skip
    daemon, rig = running.daemon, running.rig
    pev = plug_in_authorized(daemon, rig, pki, PROFILES["certified-4q"])
    rig.command("METER:W 3000")
    return Discharging(running, pki, utility, daemon.config_path, sep2_url(daemon), pev)
