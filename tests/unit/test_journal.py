"""The journal on a real SQLite file: durability settings, every record type read back,
refusals (unknown columns, newer schemas, damaged files), a crash right after a write, and a
reader beside the writer."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from firmware.j3072.decision import Decision
from firmware.journal.recorder import Recorder
from firmware.journal.store import (
    ENDED_BY_RESTART,
    FILE_NAME,
    MIGRATIONS,
    SCHEMA_VERSION,
    ApprovalInstallRow,
    DecisionRow,
    FaultRow,
    Journal,
    JournalError,
    RelayRow,
)
from hal import Relay

T0 = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
DENIED = Decision(False, ("not J3072-certified (mfModel=None)", "no DERSettings"), None, "ISM-7")
GRANTED = Decision(True, (), 6_600, "ISM-7")
FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / FILE_NAME


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    with Journal(path, Clock()) as opened:
        yield opened


def test_wal_and_synchronous_full_are_in_force(journal: Journal, path: Path) -> None:
    assert journal.pragmas() == {"journal_mode": "wal", "synchronous": FULL}
    other = sqlite3.connect(path)
    try:
        # WAL is a property of the file: another connection sees it too
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        other.close()


def test_a_session_round_trips_with_every_decision_and_reason(journal: Journal) -> None:
    session = journal.open_session("2026-03-01T12:00:00.000+00:00", ev_mac="02:00:00:00:00:01")
    journal.update_session(session, lfdi="AB" * 20, ism="ISM-7")
    journal.update_session(session, vin="WVWZZZ1JZXW000001")
    journal.record_decision(session, None, DENIED)
    journal.record_decision(session, "2026-03-01T12:00:05.000Z", GRANTED)
    journal.close_session(session, "2026-03-01T13:00:00.000+00:00")
    [row] = journal.sessions(10)
    assert (row.id, row.plugged_in_at, row.plugged_out_at) == (
        session,
        "2026-03-01T12:00:00.000+00:00",
        "2026-03-01T13:00:00.000+00:00",
    )
    assert (row.ev_mac, row.lfdi, row.ism, row.vin) == (
        "02:00:00:00:00:01",
        "AB" * 20,
        "ISM-7",
        "WVWZZZ1JZXW000001",
    )
    assert row.decisions == (
        DecisionRow("2026-03-01T12:00:01.250+00:00", False, None, "ISM-7", DENIED.reasons),
        DecisionRow("2026-03-01T12:00:05.000Z", True, 6_600, "ISM-7", ()),
    )


def test_sessions_are_newest_first_and_limited(journal: Journal) -> None:
    ids = [journal.open_session(None) for _ in range(4)]
    for session in ids:
        journal.record_decision(session, None, Decision(False, (f"reason {session}",)))
    newest = journal.sessions(3)
    assert [row.id for row in newest] == ids[:0:-1]
    assert [row.decisions[0].reasons for row in newest] == [(f"reason {i}",) for i in ids[:0:-1]]
    assert [row.plugged_in_at for row in journal.sessions(10)] == [
        "2026-03-01T12:00:04.250+00:00",
        "2026-03-01T12:00:03.250+00:00",
        "2026-03-01T12:00:02.250+00:00",
        "2026-03-01T12:00:01.250+00:00",
    ]
    assert all(row.plugged_out_at is None and row.ev_mac is None for row in newest)
    with pytest.raises(ValueError, match="limit"):
        journal.sessions(0)


def test_relays_faults_and_approval_installs_round_trip(journal: Journal) -> None:
    session = journal.open_session(None)
    journal.record_relay(None, "main", True, "pilot C, charging")
    journal.record_relay(None, Relay.DISCHARGE, False, "ISM revoked", session_id=session)
    journal.record_fault(None, "main_welded", "feedback closed 120 ms after open")
    journal.record_approval_install(None, 42, "MOCK-UTILITY", "NORTH", "2026-04-01T00:00:00Z", 3)
    assert journal.relay_actions(10) == [
        RelayRow("2026-03-01T12:00:03.250+00:00", Relay.DISCHARGE, False, "ISM revoked", session),
        RelayRow("2026-03-01T12:00:02.250+00:00", Relay.MAIN, True, "pilot C, charging", None),
    ]
    assert journal.relay_actions(1)[0].relay is Relay.DISCHARGE
    assert journal.faults(10) == [
        FaultRow(
            "2026-03-01T12:00:04.250+00:00", "main_welded", "feedback closed 120 ms after open"
        )
    ]
    assert journal.approval_installs(10) == [
        ApprovalInstallRow(
            "2026-03-01T12:00:05.250+00:00", 42, "MOCK-UTILITY", "NORTH", "2026-04-01T00:00:00Z", 3
        )
    ]


def test_update_session_refuses_unknown_columns_and_changes_nothing(journal: Journal) -> None:
    session = journal.open_session(None)
    for fields in ({"colour": "red"}, {"plugged_in_at": "x"}, {"id": "9"}, {"ism; --": "x"}):
        with pytest.raises(ValueError, match="unknown field"):
            journal.update_session(session, ism="ISM-1", **fields)
    with pytest.raises(ValueError, match="no session"):
        journal.update_session(session + 1, ism="ISM-1")
    [row] = journal.sessions(1)
    assert row.ism is None and row.plugged_in_at == "2026-03-01T12:00:01.250+00:00"


def test_bad_arguments_are_refused_and_nothing_is_written(journal: Journal) -> None:
    session = journal.open_session(None)
    with pytest.raises(ValueError):
        journal.record_relay(None, "aux", True, "no such relay")
    with pytest.raises(ValueError, match="UTC"):
        journal.record_fault("2026-03-01T12:00:00+01:00", "x", "not UTC")
    with pytest.raises(ValueError, match="UTC"):
        journal.record_fault("yesterday", "x", "not a time")
    with pytest.raises(ValueError):
        journal.record_decision(session + 1, None, GRANTED)  # no such session
    journal.close_session(session, None)
    with pytest.raises(ValueError, match="no open session"):
        journal.close_session(session, None)
    assert journal.relay_actions(10) == [] and journal.faults(10) == []
    assert journal.sessions(1)[0].decisions == ()


def test_the_clock_stamps_utc_with_milliseconds(path: Path) -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    with Journal(path, lambda: datetime(2026, 3, 1, 17, 30, 0, 123_456, tzinfo=east)) as journal:
        assert journal.now() == "2026-03-01T12:00:00.123+00:00"
        journal.open_session(None)
        assert journal.sessions(1)[0].plugged_in_at == "2026-03-01T12:00:00.123+00:00"


def test_reopening_keeps_the_records(path: Path) -> None:
    with Journal(path, Clock()) as journal:
        session = journal.open_session(None, ev_mac="02:00:00:00:00:02")
        journal.record_decision(session, None, DENIED)
    with Journal(path, Clock()) as journal:
        [row] = journal.sessions(5)
    assert row.ev_mac == "02:00:00:00:00:02" and row.decisions[0].reasons == DENIED.reasons


def _one_line_refusal(path: Path, *needles: str) -> None:
    with pytest.raises(JournalError) as refused:
        Journal(path, Clock())
    message = str(refused.value)
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle in message


def test_a_newer_schema_is_refused_and_left_alone(path: Path) -> None:
    Journal(path, Clock()).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    before = path.read_bytes()
    _one_line_refusal(path, f"schema version {SCHEMA_VERSION + 1}", "newer")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchone()[0] == (
            SCHEMA_VERSION + 1
        )
    db.close()
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [
        b"this is not an SQLite database\n" * 200,
        b"SQLite format 3\x00" + b"\xff" * 4080,  # the right magic, a nonsense header
    ],
)
def test_a_damaged_file_is_a_one_line_error(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    _one_line_refusal(path)


def test_another_sqlite_database_is_not_taken_over(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sessions (x)")
    db.close()
    _one_line_refusal(path, "not a journal")


# The child writes through one journal method, then kills itself with SIGKILL the moment the
# method returns: no close, no interpreter exit. What it wrote must be there.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from firmware.j3072.decision import Decision
    from firmware.journal.store import Journal

    journal = Journal(Path(sys.argv[1]))
    steps = [
        lambda: journal.open_session(None, ev_mac="02:00:00:00:00:09"),
        lambda: journal.update_session(1, ism="ISM-9", lfdi="CD" * 20, vin="VIN9"),
        lambda: journal.record_decision(1, None, Decision(False, ("ISM-9 revoked",))),
        lambda: journal.record_relay(None, "discharge", False, "revoked", session_id=1),
        lambda: journal.record_fault(None, "discharge_welded", "feedback stuck"),
        lambda: journal.record_approval_install(None, 7, "U", "AREA", "2027-01-01T00:00:00Z", 1),
        lambda: journal.close_session(1, None),
    ]
    for step in steps[: int(sys.argv[2])]:
        step()
    os.kill(os.getpid(), signal.SIGKILL)
    """
)
STEPS = 7


@pytest.mark.parametrize("steps", range(1, STEPS + 1))
def test_a_record_survives_sigkill_right_after_the_write(path: Path, steps: int) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(steps)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with Journal(path, Clock()) as journal:
        [session] = journal.sessions(5)
        found = [
            session.ev_mac == "02:00:00:00:00:09",
            session.vin == "VIN9",
            [d.reasons for d in session.decisions] == [("ISM-9 revoked",)],
            [r.reason for r in journal.relay_actions(5)] == ["revoked"],
            [f.kind for f in journal.faults(5)] == ["discharge_welded"],
            [a.version for a in journal.approval_installs(5)] == [7],
            session.plugged_out_at is not None,
        ]
    assert found == [True] * steps + [False] * (STEPS - steps)


def test_a_reader_holding_a_snapshot_does_not_stop_the_writer(journal: Journal, path: Path) -> None:
    journal.open_session(None)
    reader = sqlite3.connect(path, isolation_level=None, timeout=0.2)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
        # a rollback journal would need the reader gone to commit; WAL commits beside it
        session = journal.open_session(None)
        journal.record_decision(session, None, GRANTED)
        assert reader.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1, "snapshot"
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM decisions").fetchone()[0] == 1
        with Journal(path, Clock()) as second:  # e.g. the CLI while the daemon runs
            assert [row.id for row in second.sessions(5)] == [session, session - 1]
    finally:
        reader.close()


def test_a_writer_mid_transaction_does_not_stop_a_reader(journal: Journal, path: Path) -> None:
    journal.open_session(None)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO sessions (plugged_in_at) VALUES ('2026-03-01T00:00:00Z')")
        assert len(journal.sessions(5)) == 1, "only what was committed"
        writer.execute("COMMIT")
        assert len(journal.sessions(5)) == 2
    finally:
        writer.close()


# --- sessions a crash left open -------------------------------------------------------------


def _schema_one_journal(path: Path) -> None:
    """A journal as the first schema wrote it, with a session still open (the daemon was
    killed while a vehicle was plugged in) and one that ended by an unplug."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version (version) VALUES (1)")
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO sessions (plugged_in_at, plugged_out_at) VALUES (?, ?)",
               ("2026-03-01T09:00:00.000+00:00", "2026-03-01T10:00:00.000+00:00"))  # fmt: skip
    db.execute("INSERT INTO sessions (plugged_in_at) VALUES ('2026-03-01T11:00:00.000+00:00')")
    db.close()


def test_the_daemon_start_ends_sessions_a_crash_left_open(path: Path) -> None:
    _schema_one_journal(path)
    with Journal(path, read_only=True) as before:
        assert before.sessions(10)[0].plugged_out_at is None
    recorder = Recorder.open(path.parent)
    assert recorder.session_id is None
    recorder.close()
    with Journal(path, read_only=True) as after:
        crashed, unplugged = after.sessions(10)
    assert crashed.plugged_out_at is not None and crashed.ended_by == ENDED_BY_RESTART
    assert unplugged.plugged_out_at == "2026-03-01T10:00:00.000+00:00"
    assert unplugged.ended_by is None
    again = Recorder.open(path.parent)  # nothing left open: nothing changes
    again.close()
    with Journal(path, read_only=True) as last:
        assert last.sessions(10) == [crashed, unplugged]
