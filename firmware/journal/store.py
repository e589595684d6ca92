"""The journal: every session, J3072 decision, relay action, fault and approval-list install,
and the daemon's recent approval-list fetches.

One SQLite file (``journal.sqlite3`` in the state directory) in WAL mode with
``synchronous=FULL``: each ``record_*``/session method commits (and so reaches the disk)
before it returns, so a caller that writes first and reports second never reports what a
crash would lose (docs/design.md "Principles"). The file, its schema and how it is opened
(read-write, or read-only for ``sessions``) are ``schema``'s. Arguments that cannot be
recorded (an unknown column, relay or session) raise ``ValueError``.

It does not decide anything or configure logging. It keeps the fetches' size in check (the
newest ``MAX_APPROVAL_FETCHES``: a server that is down is retried again and again) and the
control changes' (the newest ``MAX_CONTROL_CHANGES``: a CSMS may dispatch as often as it
likes); every other record is kept.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.journal.schema import MIGRATIONS as MIGRATIONS
from firmware.journal.schema import SCHEMA_VERSION as SCHEMA_VERSION
from firmware.journal.schema import JournalError as JournalError
from firmware.journal.schema import open_read_only, open_read_write
from hal import Relay

if TYPE_CHECKING:
    from firmware.j3072.decision import Decision

FILE_NAME = "journal.sqlite3"
MAX_APPROVAL_FETCHES = 1000  # about six weeks of hourly fetches
MAX_CONTROL_CHANGES = 10_000  # a CSMS dispatching every minute: about a week
ENDED_BY_RESTART = "restart"  # a session the daemon's death left open, closed at its next start

# One fixed statement per column update_session may set: no SQL is ever built from input.
_SESSION_UPDATES = {
    name: f"UPDATE sessions SET {name} = ? WHERE id = ?"
    for name in ("ev_mac", "lfdi", "ism", "vin")
}


@dataclass(frozen=True, slots=True)
class DecisionRow:
    at: str
    granted: bool
    limit_w: int | None
    ism: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    plugged_in_at: str
    plugged_out_at: str | None
    ev_mac: str | None
    lfdi: str | None
    ism: str | None
    vin: str | None
    decisions: tuple[DecisionRow, ...]  # oldest first
    ended_by: str | None = None  # None: unplugged (or still plugged in); "restart"


@dataclass(frozen=True, slots=True)
class RelayRow:
    at: str
    relay: Relay
    closed: bool
    reason: str
    session_id: int | None


@dataclass(frozen=True, slots=True)
class FaultRow:
    at: str
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class ApprovalInstallRow:
    at: str
    version: int
    issuer: str
    service_area: str
    expires_at: str
    entries: int


@dataclass(frozen=True, slots=True)
class ApprovalFetchRow:
    at: str
    url: str
    result: str  # installed, unchanged, not_modified, refused, failed
    version: int | None  # the version installed or found unchanged
    reason: str | None  # why it was refused or failed


def utc_now() -> datetime:
    return datetime.now(UTC)


class Journal:
    """The open journal. Each writing method has committed when it returns; ``at=None``
    stamps the record with the injected clock."""

    def __init__(
        self, path: Path, clock: Callable[[], datetime] = utc_now, read_only: bool = False
    ) -> None:
        """Open the journal at ``path``: read-write (created or migrated, and handed to the
        state directory's owner), or ``read_only`` (nothing created, migrated or written:
        an operator without write access can read it)."""
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()  # one connection, shared by the loop and other threads
        with self._errors():
            opened = open_read_only(path) if read_only else open_read_write(path)
        self._db, self._schema = opened

    @classmethod
    def in_state_dir(cls, state_dir: Path, clock: Callable[[], datetime] = utc_now) -> Journal:
        return cls(state_dir / FILE_NAME, clock)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> str:
        """The clock's time as the journal writes it: UTC, ISO 8601, milliseconds."""
        return self._clock().astimezone(UTC).isoformat(timespec="milliseconds")

    def pragmas(self) -> dict[str, Any]:
        """The durability settings in force on this connection."""
        with self._lock, self._errors():
            mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            synchronous = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return {"journal_mode": mode, "synchronous": synchronous}

    # --- writing: each commits before it returns ---

    def open_session(self, at: str | None, ev_mac: str | None = None) -> int:
        """A vehicle plugged in; the new session's id."""
        return self._insert(
            "INSERT INTO sessions (plugged_in_at, ev_mac) VALUES (?, ?)", (self._at(at), ev_mac)
        )

    def update_session(self, session_id: int, **fields: str | None) -> None:
        """Fill in what became known: ``ev_mac``, ``lfdi``, ``ism``, ``vin``."""
        unknown = sorted(set(fields) - set(_SESSION_UPDATES))
        if unknown:
            raise ValueError(f"update_session: unknown field(s) {', '.join(unknown)}")
        with self._write() as db:
            for name, value in fields.items():
                if db.execute(_SESSION_UPDATES[name], (value, session_id)).rowcount != 1:
                    raise ValueError(f"no session {session_id}")

    def close_session(self, session_id: int, at: str | None) -> None:
        """The vehicle unplugged."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE sessions SET plugged_out_at = ? WHERE id = ? AND plugged_out_at IS NULL",
                (self._at(at), session_id),
            )
            if cursor.rowcount != 1:
                raise ValueError(f"no open session {session_id}")

    def end_open_sessions(self, at: str | None, ended_by: str) -> list[int]:
        """Close every session still open, as ended by ``ended_by`` at ``at`` (the daemon
        died with a vehicle plugged in and starts again: nobody will close them); their ids."""
        with self._write() as db:
            open_ids = db.execute("SELECT id FROM sessions WHERE plugged_out_at IS NULL")
            ids = [row[0] for row in open_ids]
            db.execute(
                "UPDATE sessions SET plugged_out_at = ?, ended_by = ? WHERE plugged_out_at IS NULL",
                (self._at(at), ended_by),
            )
        return ids

    def record_decision(self, session_id: int, at: str | None, decision: Decision) -> int:
        reasons = json.dumps(list(decision.reasons))
        return self._insert(
            "INSERT INTO decisions (session_id, at, granted, limit_w, ism, reasons)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (session_id, self._at(at), decision.granted, decision.limit_w, decision.ism, reasons),
        )

    def record_relay(
        self, at: str | None, relay: Relay | str, closed: bool, reason: str,
        session_id: int | None = None,
    ) -> None:  # fmt: skip
        self._insert(
            "INSERT INTO relay_actions (at, relay, closed, reason, session_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (self._at(at), Relay(relay).value, bool(closed), reason, session_id),
        )

    def record_fault(self, at: str | None, kind: str, detail: str) -> None:
        self._insert(
            "INSERT INTO faults (at, kind, detail) VALUES (?, ?, ?)", (self._at(at), kind, detail)
        )

    def record_approval_install(
        self, at: str | None, version: int, issuer: str, service_area: str, expires_at: str,
        entries: int,
    ) -> None:  # fmt: skip
        self._insert(
            "INSERT INTO approval_installs (at, version, issuer, service_area, expires_at,"
            " entries) VALUES (?, ?, ?, ?, ?, ?)",
            (self._at(at), version, issuer, service_area, expires_at, entries),
        )

    def record_approval_fetch(
        self, at: str | None, url: str, result: str, version: int | None, reason: str | None
    ) -> None:
        """One fetch's outcome; the oldest beyond ``MAX_APPROVAL_FETCHES`` go in the same
        transaction."""
        with self._write() as db:
            row_id = db.execute(
                "INSERT INTO approval_fetches (at, url, result, version, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                (self._at(at), url, result, version, reason),
            ).lastrowid
            assert row_id is not None
            db.execute(
                "DELETE FROM approval_fetches WHERE id <= ?", (row_id - MAX_APPROVAL_FETCHES,)
            )

    def record_control(self, at: str | None, session_id: int | None, function: str,
                       set_by: str) -> None:  # fmt: skip
        """A control put in effect (``function`` as ``status`` shows it) and who set it; the
        oldest beyond ``MAX_CONTROL_CHANGES`` go in the same transaction."""
        with self._write() as db:
            row_id = db.execute(
                "INSERT INTO control_changes (at, session_id, function, set_by)"
                " VALUES (?, ?, ?, ?)",
                (self._at(at), session_id, function, set_by),
            ).lastrowid
            assert row_id is not None
            db.execute("DELETE FROM control_changes WHERE id <= ?", (row_id - MAX_CONTROL_CHANGES,))

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction for a table this module does not own (the OCPP outbox)."""
        return self._write()

    # --- reading: newest first ---

    def sessions(self, limit: int) -> list[SessionRow]:
        """The newest ``limit`` sessions, each with its decisions, from one snapshot."""
        with self._snapshot(limit) as db:
            ended_by = "ended_by" if self._schema >= 2 else "NULL"  # a file not migrated yet
            rows = db.execute(
                "SELECT id, plugged_in_at, plugged_out_at, ev_mac, lfdi, ism, vin,"
                f" {ended_by} FROM sessions ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            # the newest N sessions are exactly those with an id >= the least of them
            decisions: dict[int, list[DecisionRow]] = {row[0]: [] for row in rows}
            for session_id, at, granted, limit_w, ism, reasons in db.execute(
                "SELECT session_id, at, granted, limit_w, ism, reasons FROM decisions"
                " WHERE session_id >= ? ORDER BY id",
                (rows[-1][0] if rows else 0,),
            ):
                decision = DecisionRow(at, bool(granted), limit_w, ism, _reasons(reasons))
                decisions[session_id].append(decision)
        return [
            SessionRow(session_id, plugged_in, plugged_out, mac, lfdi, ism, vin,
                       tuple(decisions[session_id]), ended)
            for session_id, plugged_in, plugged_out, mac, lfdi, ism, vin, ended in rows
        ]  # fmt: skip

    def relay_actions(self, limit: int) -> list[RelayRow]:
        rows = self._latest(
            "SELECT at, relay, closed, reason, session_id FROM relay_actions", limit
        )
        return [
            RelayRow(at, Relay(relay), bool(closed), *rest) for at, relay, closed, *rest in rows
        ]

    def faults(self, limit: int) -> list[FaultRow]:
        return [
            FaultRow(*row) for row in self._latest("SELECT at, kind, detail FROM faults", limit)
        ]

    def approval_installs(self, limit: int) -> list[ApprovalInstallRow]:
        query = (
            "SELECT at, version, issuer, service_area, expires_at, entries FROM approval_installs"
        )
        return [ApprovalInstallRow(*row) for row in self._latest(query, limit)]

    def approval_fetches(self, limit: int) -> list[ApprovalFetchRow]:
        query = "SELECT at, url, result, version, reason FROM approval_fetches"
        return [ApprovalFetchRow(*row) for row in self._latest(query, limit)]

    # --- internals ---

    def _at(self, at: str | None) -> str:
        if at is None:
            return self.now()
        try:
            offset = datetime.fromisoformat(at).utcoffset()
        except ValueError:
            offset = None
        if offset is None or offset.total_seconds() != 0:
            raise ValueError(f"not a UTC ISO 8601 time: {at!r}")
        return at

    def _insert(self, statement: str, parameters: tuple[object, ...]) -> int:
        with self._write() as db:
            row_id = db.execute(statement, parameters).lastrowid
        assert row_id is not None
        return row_id

    def _latest(self, query: str, limit: int) -> list[Any]:
        with self._snapshot(limit) as db:
            return db.execute(f"{query} ORDER BY id DESC LIMIT ?", (limit,)).fetchall()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed before leaving; rolled back if anything failed."""
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    @contextmanager
    def _snapshot(self, limit: int) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query in it sees the same committed state."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        with self._lock, self._errors():
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's complaints as ValueError (a constraint: bad arguments) or JournalError."""
        try:
            yield
        except sqlite3.IntegrityError as err:
            raise ValueError(f"journal refused the record: {err}") from err
        except sqlite3.Error as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise JournalError(f"{self.path}: {reason}") from err


def _reasons(text: str) -> tuple[str, ...]:
    try:
        reasons = json.loads(text)
    except ValueError:
        reasons = None
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise JournalError(f"decision reasons are not a JSON list of strings: {text[:60]!r}")
    return tuple(reasons)
