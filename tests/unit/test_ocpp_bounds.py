"""The OCPP side cannot hurt the gate: a failing journal under the outbox costs events, never
a revocation or the loop; the outbox's bound holds whatever a CSMS provokes; the journal's
control changes are trimmed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from firmware.j3072.decision import Decision
from firmware.journal import store
from firmware.journal.outbox import ESSENTIAL_FACTOR, Outbox
from firmware.journal.recorder import Recorder
from firmware.journal.store import Journal
from firmware.ocpp.config import OcppConfig
from firmware.ocpp.service import OcppService
from firmware.ocpp.upstream import StationView, Upstream
from hil.pev.profiles import PROFILES
from tests.unit.test_j3072_gate import LFDI, S, World

CONFIG = OcppConfig(url="wss://csms/ocpp")


def fail_writes(journal: Journal) -> None:
    """The disk refuses every write from now on (as a full or failing one does)."""
    journal._db.execute("PRAGMA query_only = 1")


def test_a_revocation_completes_when_the_journal_under_the_outbox_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder.open(tmp_path)
    recorder.plugged(True)
    service = OcppService(CONFIG, recorder, 240)
    world = World()
    world.gate._journal = service.journal()
    world.gate.plugged(True)
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.heartbeat(LFDI)
    world.gate.poll()
    assert world.gate.authorized and world.sep2.energized[LFDI] is True
    assert recorder.journal is not None
    fail_writes(recorder.journal)
    world.now += 11 * S  # ten heartbeats missed: revoked
    with caplog.at_level(logging.WARNING):
        world.gate.poll()
        service.observe(StationView(True, 1, "Occupied", True, 0.0, None))
        service.observe(StationView(True, 1, "Occupied", False, 0.0, None))
    assert not world.gate.authorized
    assert world.sep2.energized[LFDI] is False, "the revocation reached the vehicle"
    shown = service.status()
    assert shown["failed"] >= 1, "the lost events are counted"
    said = [r.getMessage() for r in caplog.records if "ocpp.queue_write_failed" in r.getMessage()]
    assert len(said) == 1, "said once"


def test_nothing_the_ocpp_side_raises_reaches_the_loop(tmp_path: Path) -> None:
    service = OcppService(CONFIG, Recorder(None), 240)

    def broken(view: StationView) -> None:
        raise RuntimeError("a payload that cannot be built")

    service.upstream.observe = broken  # type: ignore[method-assign]
    service.observe(StationView(True, 1, "Occupied", False, 0.0, None))
    service.observe(StationView(True, 1, "Occupied", False, 0.0, None))
    assert service.status()["errors"] == 2


@pytest.mark.parametrize("journaled", [True, False])
def test_what_a_csms_provokes_cannot_grow_the_outbox_past_its_bound(
    tmp_path: Path, journaled: bool
) -> None:
    """2000 refused dispatches while the CSMS never answers: the queue stays at its limit and
    the gate's decisions in it are kept."""
    journal = Journal.in_state_dir(tmp_path) if journaled else None
    outbox = Outbox(journal, 100)
    upstream = Upstream(CONFIG, outbox, 240)
    upstream.decision(Decision(False, ("revoked: 10 heartbeats missed",), None, "ISM-1"))
    for i in range(2000):
        upstream.refused(f"charging profile {i}", "NotAuthorized: " + "x" * 400)
    assert outbox.unsent() == 100 and outbox.dropped == 1901
    first = outbox.next()
    assert first is not None and first.essential, "the revocation is still first in line"
    for _ in range(100 * ESSENTIAL_FACTOR + 50):  # only essential events: a hard ceiling
        upstream.decision(Decision(False, ("revoked: the PLC link was lost",), None, "ISM-1"))
    assert outbox.unsent() == 100 * ESSENTIAL_FACTOR
    if journal is not None:
        fail_writes(journal)  # unsent() is kept in memory: it reads nothing
        assert outbox.unsent() == 100 * ESSENTIAL_FACTOR
        journal.close()


def test_the_outbox_count_survives_a_restart(tmp_path: Path) -> None:
    with Journal.in_state_dir(tmp_path) as journal:
        outbox = Outbox(journal, 100)
        for n in range(5):
            outbox.put("NotifyEvent", {"n": n}, essential=True)
        queued = outbox.next()
        assert queued is not None
        outbox.sent(queued.seq, "answered")
        outbox.sent(queued.seq, "answered")  # twice: counted once
    with Journal.in_state_dir(tmp_path) as journal:
        assert Outbox(journal, 100).unsent() == 4


def test_control_changes_are_trimmed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "MAX_CONTROL_CHANGES", 5)
    with Journal.in_state_dir(tmp_path) as journal:
        for n in range(12):
            journal.record_control(None, None, f"opModFixedW {n} %", "csms")
        rows = journal._db.execute("SELECT function FROM control_changes ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [f"opModFixedW {n} %" for n in range(7, 12)]
