"""The journal's file: its schema, its migrations, and the two ways it is opened.

Read-write (the daemon, ``approvals install``): WAL mode, ``synchronous=FULL``, the schema
created or migrated at open, and the file and SQLite's side files (``-wal``, ``-shm``) handed
to the state directory's owner when running as root (``firmware.state_owner``), so that a
journal an installer created as root is still the service's to write. Read-only
(``sessions``): SQLite's ``mode=ro``, nothing created, migrated or written, so that an
operator without write access to the state directory can read it.

A newer schema or a damaged file is refused with a one-line ``JournalError``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from firmware.errors import GatekeeperError
from firmware.state_owner import hand_over_if_present

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
    # why a session ended when it was not an unplug: "restart" (the daemon died meanwhile)
    ("ALTER TABLE sessions ADD COLUMN ended_by TEXT",),
    (
        "CREATE TABLE IF NOT EXISTS approval_fetches (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " at TEXT NOT NULL, url TEXT NOT NULL, result TEXT NOT NULL CHECK (result IN"
        " ('installed', 'unchanged', 'not_modified', 'refused', 'failed')),"
        " version INTEGER, reason TEXT)",
    ),
    # the OCPP station's outbox (firmware.journal.outbox) and who set each control in effect
    (
        "CREATE TABLE ocpp_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " queued_at TEXT NOT NULL, message TEXT NOT NULL, payload TEXT NOT NULL,"
        " essential INTEGER NOT NULL CHECK (essential IN (0, 1)), sent_at TEXT, result TEXT)",
        "CREATE INDEX ocpp_outbox_unsent ON ocpp_outbox(seq) WHERE sent_at IS NULL",
        "CREATE TABLE control_changes (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,"
        " session_id INTEGER REFERENCES sessions(id), function TEXT NOT NULL,"
        " set_by TEXT NOT NULL)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class JournalError(GatekeeperError):
    """Raised when the journal cannot be opened, read or written: not a journal, damaged,
    a schema newer than this firmware, or the storage failing."""


def open_read_write(path: Path) -> tuple[sqlite3.Connection, int]:
    """The journal at ``path``, created or migrated; (connection, schema version).
    sqlite3.Error or JournalError when it cannot be used."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                         check_same_thread=False)  # fmt: skip
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"{path}: cannot use WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db, path)
        _hand_over(path)
    except BaseException:
        db.close()
        raise
    return db, SCHEMA_VERSION


def open_read_only(path: Path) -> tuple[sqlite3.Connection, int]:
    """The journal at ``path`` for reading only; (connection, schema version)."""
    # without a -wal file no connection is writing, and mode=ro would still want to create
    # the -shm file beside it: immutable=1 reads the file as it is and creates nothing
    side = "" if Path(f"{path}-wal").exists() else "&immutable=1"
    if not path.exists():
        raise JournalError(f"{path}: no journal")
    uri = f"file:{quote(str(path))}?mode=ro{side}"
    db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                         check_same_thread=False)  # fmt: skip
    try:
        version = _schema_version(db, path)
        if version == 0:
            raise JournalError(f"{path}: an empty journal")
    except BaseException:
        db.close()
        raise
    return db, version


def _hand_over(path: Path) -> None:
    try:
        hand_over_if_present((path, Path(f"{path}-wal"), Path(f"{path}-shm")), path.parent)
    except OSError as err:
        raise JournalError(f"{path}: cannot give it to the state directory's owner: "
                           f"{err.strerror}") from err  # fmt: skip


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")  # two openers must not both create the schema
    try:
        version = _schema_version(db, path, create=True)
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                db.execute(statement)
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        db.execute("COMMIT")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")


def _schema_version(db: sqlite3.Connection, path: Path, create: bool = False) -> int:
    """The file's schema version; with ``create``, an empty file gets the version table, at
    0 (without, an empty file is version 0)."""
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    if not names:
        if create:
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            db.execute("INSERT INTO schema_version (version) VALUES (0)")
        return 0
    if "schema_version" not in names:
        raise JournalError(f"{path}: an SQLite database, but not a journal")
    rows = db.execute("SELECT version FROM schema_version").fetchall()
    if len(rows) != 1 or type(rows[0][0]) is not int or rows[0][0] < 0:
        raise JournalError(f"{path}: schema version unreadable: {rows[:2]}")
    version: int = rows[0][0]
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path}: schema version {version} is newer than this firmware's "
            f"{SCHEMA_VERSION}; refusing to touch it"
        )
    return version
