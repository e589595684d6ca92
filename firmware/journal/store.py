"""The journal: every session, J3072 decision, relay action, fault and approval-list install,
and the daemon's recent approval-list fetches.

One SQLite file (``journal.sqlite3`` in the state directory) in WAL mode with
``synchronous=FULL``: each ``record_*``/session method commits (and so reaches the disk)
before it returns, so a caller that writes first and reports second never reports what a
crash would lose (docs/design.md "Principles"). The schema is created or migrated at open; a newer
schema or a damaged file is refused with a one-line ``JournalError``. Arguments that cannot be
recorded (an unknown column, relay or session) raise ``ValueError``.

It does not decide anything or configure logging. It keeps only the fetches' size in check
(the newest ``MAX_APPROVAL_FETCHES``: a server that is down is retried again and again); every
other record is kept.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.errors import GatekeeperError
from hal import Relay

if TYPE_CHECKING:
    from firmware.j3072.decision import Decision

FILE_NAME = "journal.sqlite3"
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another writer (the CLI only reads)

# MIGRATIONS[n] takes the schema from version n to n + 1; append, never edit a shipped one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " plugged_in_at TEXT NOT NULL, plugged_out_at TEXT,"
        " ev_mac TEXT, lfdi TEXT, ism TEXT, vin TEXT)",
        "CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " session_id INTEGER NOT NULL REFERENCES sessions(id), at TEXT NOT NULL,"
        " granted INTEGER NOT NULL CHECK (granted IN (0, 1)), limit_w INTEGER, ism TEXT,"
        " reasons TEXT NOT NULL)",
        "CREATE INDEX decisions_by_session ON decisions(session_id)",
        "CREATE TABLE relay_actions (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,"
        " relay TEXT NOT NULL CHECK (relay IN ('main', 'discharge')),"
        " closed INTEGER NOT NULL CHECK (closed IN (0, 1)), reason TEXT NOT NULL,"
        " session_id INTEGER REFERENCES sessions(id))",
        "CREATE TABLE faults (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,"
        " kind TEXT NOT NULL, detail TEXT NOT NULL)",
        "CREATE TABLE approval_installs (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " at TEXT NOT NULL, version INTEGER NOT NULL, issuer TEXT NOT NULL,"
        " service_area TEXT NOT NULL, expires_at TEXT NOT NULL, entries INTEGER NOT NULL)",
    ),
    (
        "CREATE TABLE approval_fetches (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " at TEXT NOT NULL, url TEXT NOT NULL, result TEXT NOT NULL CHECK (result IN"
        " ('installed', 'unchanged', 'not_modified', 'refused', 'failed')),"
        " version INTEGER, reason TEXT)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
MAX_APPROVAL_FETCHES = 1000  # about six weeks of hourly fetches

# One fixed statement per column update_session may set: no SQL is ever built from input.
_SESSION_UPDATES = {
    name: f"UPDATE sessions SET {name} = ? WHERE id = ?"
    for name in ("ev_mac", "lfdi", "ism", "vin")
}


class JournalError(GatekeeperError):
    """Raised when the journal cannot be opened, read or written: not a journal, damaged,
    a schema newer than this firmware, or the storage failing."""


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

    def __init__(self, path: Path, clock: Callable[[], datetime] = utc_now) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()  # one connection, shared by the loop and other threads
        with self._errors():
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        try:
            with self._errors():
                self._configure()
                self._migrate()
        except BaseException:
            self._db.close()
            raise

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

    # --- reading: newest first ---

    def sessions(self, limit: int) -> list[SessionRow]:
        """The newest ``limit`` sessions, each with its decisions, from one snapshot."""
        with self._snapshot(limit) as db:
            rows = db.execute(
                "SELECT id, plugged_in_at, plugged_out_at, ev_mac, lfdi, ism, vin FROM sessions"
                " ORDER BY id DESC LIMIT ?",
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
                       tuple(decisions[session_id]))
            for session_id, plugged_in, plugged_out, mac, lfdi, ism, vin in rows
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

    def _configure(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"{self.path}: cannot use WAL mode (got {mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")

    def _migrate(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # two openers must not both create the schema
        try:
            version = self._schema_version()
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    def _schema_version(self) -> int:
        """The file's schema version; an empty file gets the version table, at 0."""
        db = self._db
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if not names:
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            db.execute("INSERT INTO schema_version (version) VALUES (0)")
            return 0
        if "schema_version" not in names:
            raise JournalError(f"{self.path}: an SQLite database, but not a journal")
        rows = db.execute("SELECT version FROM schema_version").fetchall()
        if len(rows) != 1 or type(rows[0][0]) is not int or rows[0][0] < 0:
            raise JournalError(f"{self.path}: schema version unreadable: {rows[:2]}")
        version: int = rows[0][0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path}: schema version {version} is newer than this firmware's "
                f"{SCHEMA_VERSION}; refusing to touch it"
            )
        return version

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
