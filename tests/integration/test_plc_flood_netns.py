"""PLC robustness: the running daemon on a real PLC netdev (a veth in a network namespace, the mock
modem on the far end) under a flood of 10,000 malformed MMEs and 1,000 IPv4 frames.

The daemon must not crash, must refuse every malformed MME (counted, or dropped by its
bounded queue when it cannot keep up), must never read the IPv4 frames (its socket is bound
to 0x88E1), must keep opening the contactor within the J1772 limit while the flood runs,
and a vehicle must still match over SLAC. The latency figures under flood come from
``make bench-flood``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from hil.firmware_process import Daemon, toml_dumps
from hil.plc.netns import Topology
from hil.rig import wait_for_rig
from tests.integration.conftest import BASE_CONFIG, merged

pytestmark = pytest.mark.integration

FLOOD_MMES = 10_000
OPEN_LIMIT_US = 100_000


def test_a_flood_of_malformed_mmes_changes_nothing(topology: Topology, tmp_path: Path) -> None:
    modem = topology.start("modem", "--evse-if", "m-e", "--pev-if", "m-p")
    modem.wait_for("MODEM READY", 10)
    rig_link = tmp_path / "rig"
    config = merged(
        BASE_CONFIG,
        {
            "hal": {"mock": {"rig_link": str(rig_link)}},
            "plc": {"interface": "evse0"},
            "paths": {"state_dir": str(tmp_path / "state")},
        },
    )
    path = tmp_path / "config.toml"
    path.write_text(toml_dumps(config))
    command = [sys.executable, "-m", "firmware", "run", "--config", str(path)]
    daemon = Daemon(path, argv=topology.in_ns("evse", *command))
    try:
        daemon.wait_for("gatekeeper.ready", 20)
        assert any("plc.opened ifname=evse0" in line for line in daemon.lines)
        with wait_for_rig(str(rig_link)) as rig:
            rig.command("EV:STATE B")
            flooder = topology.spawn(
                "modem", "hil.plc.flood", "--if", "m-e", "--count", str(FLOOD_MMES),
                "--rate", "4000", "--other-every", "10",
            )  # fmt: skip
            # while the flood runs (about 2.5 s): a vehicle matches and charges, twice
            pev = topology.start("pev", "--if", "pev0")
            pev.wait_for("PEV MATCHED", 15)
            daemon.wait_for("plc.slac_matched", 5)
            latencies = []
            for _ in range(2):
                rig.command("EV:STATE C")
                rig.wait_relay("MAIN", "CLOSED", 3000)
                rig.command("EV:STATE B")
                latencies.append(rig.wait_relay("MAIN", "OPEN", 1000))
            assert flooder.proc.poll() is None, "the flood outlasted the charging cycles"
            done = flooder.wait_for("FLOOD DONE", 30)
            assert f"mme={FLOOD_MMES} other={FLOOD_MMES // 10}" in done
            assert max(latencies) <= OPEN_LIMIT_US
            rig.command("EV:STATE C")  # and still charges after it
            rig.wait_relay("MAIN", "CLOSED", 3000)
    finally:
        code = daemon.stop()
    assert code == 0, "the daemon survived the flood and stopped cleanly"
    stats = [line for line in daemon.lines if "plc.stats" in line][-1]
    counted = {k: int(v) for k, v in re.findall(r"(malformed|dropped)=(\d+)", stats)}
    # every malformed MME was read and refused (or dropped by the bounded queue); the IPv4
    # frames were never read at all: they would push the sum past the MMEs sent
    assert counted["malformed"] + counted["dropped"] == FLOOD_MMES, stats
    assert counted["malformed"] > 0
    assert not any("gatekeeper.crash" in line or "task_failed" in line for line in daemon.lines)
