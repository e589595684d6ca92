"""The clock rules against the running daemon: the mock board, the simulated vehicle over real
TLS, a signed approval list.

The kernel's synchronization state cannot be changed for one process, so the daemon reads
it from ``[clock] mock_sync_file`` (refused unless hal.backend = "mock"). Its wall clock is
stepped for real, for the daemon's processes only, by libfaketime (LD_PRELOAD, the wall
clock only: ``DONT_FAKE_MONOTONIC``): every ``time.time`` and ``datetime.now`` in them jumps,
as after ``date -s`` or a time service stepping the clock.
"""

from __future__ import annotations

import http.client
import time
from pathlib import Path

import pytest
from lxml import etree

from firmware.journal.store import Journal
from firmware.sep2.pki import PkiLayout, init_pki
from firmware.sep2.tls import client_context
from hil.pev.profiles import PROFILES
from tests.integration.conftest import StartDaemon
from tests.integration.test_j3072_daemon import (
    Site,
    authorized_and_discharging,
    decisions,
    make_site,
    wait_energize,
)

pytestmark = pytest.mark.integration

NEVER_SYNCHRONIZED = (
    "the clock has not been synchronized since boot: approval-list dates cannot be checked"
)
SEP2_NS = "{urn:ieee:std:2030.5:ns}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki") / "pki")


def time_quality(site: Site) -> int:
    """The 2030.5 Time resource's quality, as a vehicle reads it over TLS."""
    d, pev = site.pki.directory, site.pki.pevs[0]
    context = client_context(d / "serca.pem", pev.cert, pev.key)
    port = int(site.url.rsplit(":", 1)[1])
    connection = http.client.HTTPSConnection("::1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/tm", headers={"Accept": "application/sep+xml"})
        body = connection.getresponse().read()
    finally:
        connection.close()
    quality = etree.fromstring(body).find(f"{SEP2_NS}quality")
    assert quality is not None and quality.text is not None, body
    return int(quality.text)


def wait_status(site: Site, key: str, value: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while site.status()["clock"][key] != value:
        assert time.monotonic() < deadline, f"status clock.{key} never became {value!r}"
        time.sleep(0.2)


def test_never_synchronized_denies_with_the_clock_and_the_first_sync_grants(
    start_daemon: StartDaemon,
    pki: PkiLayout,
    tmp_path: Path,
) -> None:
    sync = tmp_path / "sync"
    sync.write_text("unsynchronized")
    site = make_site(start_daemon, pki, tmp_path, clock={"mock_sync_file": str(sync)},
                     j3072={"require_synchronized_clock": True})  # fmt: skip
    clock = site.status()["clock"]
    assert clock["synchronized"] is False and clock["synchronized_since_boot"] is False
    assert clock["time_quality"] == 7 and time_quality(site) == 7
    site.plug_in()
    pev = site.pev(PROFILES["certified-4q"])
    site.running.daemon.wait_for("j3072.decision granted=false", timeout_s=15)
    shown = site.status()["authorization"]
    assert shown["state"] == "denied" and shown["reasons"] == [NEVER_SYNCHRONIZED]
    assert decisions(site.state)[-1] == (False, (NEVER_SYNCHRONIZED,)), "journaled"

    sync.write_text("synchronized")  # the time service synchronized the clock
    site.running.daemon.wait_for("clock.synchronized_since_boot", timeout_s=5)
    site.running.daemon.wait_for("j3072.authorized", timeout_s=10)
    assert wait_energize(pev, True)
    assert time_quality(site) == 3
    assert decisions(site.state)[-1] == (True, ())

    sync.write_text("unsynchronized")  # lost later in the boot: the session stays
    wait_status(site, "synchronized", False)
    assert time_quality(site) == 7
    time.sleep(2.0)  # a few of the gate's polls and the vehicle's heartbeats
    status = site.status()
    assert status["clock"]["synchronized_since_boot"] is True
    assert status["authorization"]["state"] == "authorized"
    assert "j3072.revoked" not in "\n".join(site.running.daemon.lines)
    pev.stop()


@pytest.fixture
def faked_wall_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file whose offset (``+3600s``) libfaketime adds to the daemon's wall clock."""
    libfaketime = pytest.importorskip("libfaketime", reason="python-libfaketime (dev extra)")
    _, env = libfaketime.get_reload_information()
    offset = tmp_path / "faketime"
    offset.write_text("+0s")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FAKETIME_TIMESTAMP_FILE", str(offset))
    monkeypatch.setenv("DONT_FAKE_MONOTONIC", "1")  # CLOCK_MONOTONIC and CLOCK_BOOTTIME
    return offset


def test_steps_either_way_during_a_session_neither_cut_nor_stretch_a_deadline(
    start_daemon: StartDaemon,
    pki: PkiLayout,
    tmp_path: Path,
    faked_wall_clock: Path,
) -> None:
    """Steps either way are logged and revoke nothing while heartbeats arrive; then the
    vehicle goes silent right after a backward step, the clock jumps forward again during
    the silence, and the revocation still comes 10 missed heartbeats after the last one,
    measured on the monotonic clock (§4.8.1.1; 10.5 s with the gate's margin)."""
    site = make_site(start_daemon, pki, tmp_path)
    daemon = site.running.daemon
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    before = site.status()["session"]["plugged_in_at"]
    faked_wall_clock.write_text("+3600s")
    forward = daemon.wait_for("clock.step direction=forward", timeout_s=5)
    assert "size_s=3600." in forward or "size_s=3599.9" in forward, forward
    pev.wait_heartbeats(pev.heartbeats + 3, timeout_s=10)
    faked_wall_clock.write_text("+0s")
    backward = daemon.wait_for("clock.step direction=backward", timeout_s=5)
    assert "count=2" in backward
    pev.wait_heartbeats(pev.heartbeats + 3, timeout_s=10)
    status = site.status()
    assert status["authorization"]["state"] == "authorized"
    assert status["relays"] == {"main": "closed", "discharge": "closed"}
    assert status["clock"]["steps"] == 2
    assert status["clock"]["last_step"]["direction"] == "backward"
    assert status["session"]["plugged_in_at"] == before
    assert "j3072.revoked" not in "\n".join(daemon.lines)

    pev.wait_heartbeats(pev.heartbeats + 1, timeout_s=5)
    pev.go_silent()  # the next one was due in 1 s: that was the last
    silent_from = time.monotonic()
    time.sleep(3.0)
    faked_wall_clock.write_text("+7200s")  # forward during the silence
    daemon.wait_for("clock.step direction=forward", timeout_s=5)
    site.running.rig.wait_relay("DISCHARGE", "OPEN", 15_000)
    after_s = time.monotonic() - silent_from
    # 10 s on the monotonic clock; a step would have cut it to ~3 s or stretched it by hours
    # (the upper margin: a heartbeat in flight at go_silent, a loaded machine)
    assert 8.0 <= after_s <= 14.0, f"revoked {after_s:.2f} s after the last heartbeat"
    print(f"steps either way: discharge open {after_s:.2f} s after the last heartbeat")
    assert "10 heartbeats missed" in daemon.wait_for("j3072.revoked", timeout_s=1)
    pev.stop()
    with Journal.in_state_dir(site.state) as journal:
        steps = [f for f in journal.faults(10) if f.kind == "clock_step"]
    assert sorted(f.detail.split(" ", 1)[0] for f in steps) == ["backward", "forward", "forward"]
