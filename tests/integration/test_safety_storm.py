"""The storm: while a vehicle charges and discharges, everything a legitimate user can throw
at the daemon at once (two CPU-bound processes, a 2,000,000-entry approval list installed
with the CLI, a 2030.5 request flood with bodies over the size limit) moves no relay, latches
no fault and revokes nothing, because the interlock runs in a process of its own.

The rig watches the relays with ``EVENTS ON`` for the whole storm: a relay event without a
stimulus fails the test. The sampler's worst lateness is printed from ``status``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bench.storm import Storm, big_list
from hil.pev.profiles import APPROVED_ISM
from tests.integration.conftest import StartDaemon
from tests.integration.discharging import LIMIT_W, cli, start_discharging

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORM_S = 62.0
ENTRIES = 2_000_000
TROUBLE = ("interlock.trip", "fault.latched", "j3072.revoked", "safety.gatekeeper_lost",
           "relay.opened_with_main", "gatekeeper.crash", "watchdog.withheld")  # fmt: skip


def test_a_storm_moves_no_relay_latches_no_fault_and_revokes_nothing(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    session = start_discharging(start_daemon, tmp_path)
    daemon, rig, utility = session.running.daemon, session.running.rig, session.utility
    big = tmp_path / "big-list.jws"
    big.write_text(big_list(utility, ENTRIES, {APPROVED_ISM: LIMIT_W}))

    rig.command("EVENTS ON")
    rig.poll_events(0.2)
    watched_from = len(daemon.lines)

    storm = Storm(session.url, session.pki, STORM_S)
    started = time.monotonic()
    try:
        events = rig.poll_events(3.0)
        installed = cli("approvals", "install", str(big), "--config", str(session.config))
        assert installed.returncode == 0, installed.stderr
        daemon.wait_for(f"approvals.loaded version={utility.version}", timeout_s=60)
        events += rig.poll_events(max(0.0, STORM_S - (time.monotonic() - started)))
        counts = storm.finish(timeout_s=30)
    except Exception:
        print("\n".join(daemon.lines[watched_from:]))
        raise
    finally:
        storm.kill()
    status = session.status()
    heartbeats = session.pev.heartbeats
    session.pev.stop()

    sampler: dict[str, Any] = status["processes"]["safety"]["sampler"]
    print(f"storm {STORM_S:g} s: flood {counts}; sampler {sampler}; "
          f"vehicle heartbeats {heartbeats}")  # fmt: skip
    relay_events = [e for e in events if "relay" in e.words]
    assert relay_events == [], f"relays moved without a stimulus: {relay_events}"
    trouble = [ln for ln in daemon.lines[watched_from:] if any(t in ln for t in TROUBLE)]
    assert trouble == [], trouble
    assert status["relays"] == {"main": "closed", "discharge": "closed"}
    assert status["faults"] == []
    assert status["authorization"]["state"] == "authorized"
    assert status["approvals"]["entries"] == ENTRIES + 1, "the big list is in force"
    assert counts.get("GET 200", 0) > 1000, counts
    assert counts.get("PUT 413", 0) > 10 and counts.get("PUT 400", 0) > 10, counts
    assert status["processes"]["safety"]["alive"]
