"""The SQLite index of a verified approval list: what the daemon reads instead of parsing the
payload again.

``build_from_payload`` reads a verified payload (``fast_list``, in batches; the reference
parser when it must) into ``<state_dir>/approvals-<16 hex>.index.sqlite3``, named after and
bound by ``meta.jws_sha256`` to the binding hash of the installed file (``installed_file``).
The meta also records the ``Binding``: the file's identity (``file_id``) and the signed
digest with the JWS header and signature, so the daemon can open the index of the installed
file and verify its signature without reading the file (``open_by_file_id``; the store
confirms the hash afterwards). An index is written once under a unique temporary name whose
build holds its lock, fsynced, renamed into place (``BuiltIndex.commit``) and the directory
fsynced, and never modified after. ``IndexedList`` opens one read-only and answers as the
parsed list does (``view.ListView``); ``remove_stale`` removes the indexes of other content
and the temporaries of killed builds.

``python -m firmware.approvals.index`` is the rebuild the daemon runs in a child process
(``rebuild``) when the installed file's index is missing or refused, so that the full
verification's long calls never hold the daemon's GIL.

The index itself is trusted as the state directory is (only the firmware's user writes there).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from firmware.approvals import ApprovalError
from firmware.approvals.approval_list import ApprovalList, parse_approval_list
from firmware.approvals.durable import discard, fsync_directory
from firmware.approvals.fast_list import FastList, IndexRow, ListHeader, NotFast, read_fast
from firmware.approvals.jws import shown
from firmware.approvals.view import Entry, ListReading, Status, rfc3339
from firmware.state_owner import hand_over

logger = logging.getLogger(__name__)

FORMAT_VERSION = "2"  # 2: the binding (file_id, signing_sha256, the JWS parts)
DIGEST_BYTES = 32  # SHA-256
CLAIM_ATTEMPTS = 5
CACHE_KIB = 16 * 1024  # SQLite's page cache per open index
PREFIX, SUFFIX = "approvals-", ".index.sqlite3"
TEMPORARY_PREFIX, TEMPORARY_SUFFIX = "approvals-index-", ".tmp"
_CODES = {Status.APPROVED: 1, Status.REVOKED: 2}
_STATUSES = {code: status for status, code in _CODES.items()}
_LOOKUP = "SELECT status, max_discharge_w FROM entries WHERE ism = ?"
_SCHEMA = (
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE entries(ism TEXT PRIMARY KEY, status INTEGER NOT NULL, "
    "max_discharge_w INTEGER) WITHOUT ROWID",
)

Row = tuple[int, int | None]


class ApprovalIndexError(ApprovalError):
    """Raised when an index cannot be used (missing, not an index, another format, made for
    other content: it is then rebuilt), built, or rebuilt."""


def index_path(state_dir: Path, jws_sha256: bytes) -> Path:
    return state_dir / f"{PREFIX}{jws_sha256.hex()[:16]}{SUFFIX}"


@dataclass(frozen=True, slots=True)
class Binding:
    """What ties an index to the installed file beyond its binding hash, so the daemon can
    open it without hashing the file first (``store``): the file's identity as ``stat``
    gives it, and the JWS Signing Input's SHA-256 with the header and signature parts,
    over which the daemon verifies the signature again."""

    file_id: str  # file_id(): device, inode, size, mtime
    signing_sha256: bytes
    header: bytes  # base64url
    signature: bytes  # base64url

    def meta(self) -> dict[str, str]:
        return {"file_id": self.file_id, "signing_sha256": self.signing_sha256.hex(),
                "jws_header": self.header.decode("ascii"),
                "jws_signature": self.signature.decode("ascii")}  # fmt: skip


def file_id(stat: os.stat_result) -> str:
    """A file's identity while nobody rewrites it in place (installs rename a new file in,
    which changes the inode and the mtime)."""
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


IndexSource = ApprovalList | FastList


def build_index(
    state_dir: Path,
    source: IndexSource,
    jws_sha256: bytes,
    payload_sha256: bytes | None = None,
    binding: Binding | None = None,
) -> Path:
    """Write the index of ``source`` (a parsed list, or a payload ``fast_list`` reads in
    batches), verified from the file whose binding hash is ``jws_sha256``; its path. A
    failure leaves no temporary behind (a killed process does: ``remove_stale``) and raises
    ApprovalIndexError, or NotFast from a ``FastList`` that needs the reference parser."""
    built = build_temporary(state_dir, source, jws_sha256, payload_sha256, binding)
    built.commit()
    return built.final


@dataclass(slots=True)
class BuiltIndex:
    """An index written and fsynced under its temporary name, its build's lock still held
    (so ``remove_stale`` leaves it alone) until ``commit`` renames it into place or
    ``discard`` removes it."""

    temporary: Path
    final: Path
    fd: int | None

    def commit(self) -> None:
        try:
            os.replace(self.temporary, self.final)
            fsync_directory(self.final.parent)
            self._release()
        except OSError as err:
            self.discard()
            raise ApprovalIndexError(f"{self.final}: cannot write: {err.strerror}") from err

    def discard(self) -> None:
        discard(self.temporary)
        self._release()

    def _release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # lets go of the build's lock


def build_temporary(
    state_dir: Path,
    source: IndexSource,
    jws_sha256: bytes,
    payload_sha256: bytes | None = None,
    binding: Binding | None = None,
) -> BuiltIndex:
    """``build_index`` up to the rename, which ``BuiltIndex.commit`` does."""
    final = index_path(state_dir, jws_sha256)
    temporary, fd = state_dir / "?", None
    try:
        temporary, fd = claim_temporary(state_dir, _temporary_name)
        hand_over(fd, state_dir)  # the service's user must be able to remove it
        meta = _meta(source, jws_sha256, payload_sha256, binding)
        _fill(temporary, meta, _batches(source))
        os.fsync(fd)
    except (OSError, sqlite3.Error) as err:
        _abandon(temporary, fd)
        reason = err.strerror if isinstance(err, OSError) else str(err)
        raise ApprovalIndexError(f"{final}: cannot write: {reason}") from err
    except BaseException:
        _abandon(temporary, fd)
        raise
    return BuiltIndex(temporary, final, fd)


def _abandon(temporary: Path, fd: int | None) -> None:
    discard(temporary)
    if fd is not None:
        os.close(fd)


def _temporary_name() -> str:
    return f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}{TEMPORARY_SUFFIX}"


def claim_temporary(state_dir: Path, name: Callable[[], str]) -> tuple[Path, int]:
    """A new file ``state_dir / name()``, open and locked by us until its descriptor closes:
    ``remove_abandoned`` leaves it alone meanwhile, and removes an abandoned one only while
    holding its lock, so a clean-up between the creation and the lock shows here as the
    file gone; then another name is tried. OSError as creating raises it, FileNotFoundError
    if the file keeps disappearing."""
    for attempt in range(CLAIM_ATTEMPTS):
        temporary = state_dir / name()
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.stat(temporary).st_ino == os.fstat(fd).st_ino:
                return temporary, fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if attempt == CLAIM_ATTEMPTS - 1:
            raise FileNotFoundError(errno.ENOENT, "removed while it was being built")
    raise AssertionError("unreachable")


def _fill(path: Path, meta: dict[str, str], batches: Iterable[list[IndexRow]]) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # a crash leaves only a temporary that is never opened: no journal; the file is
        # fsynced once, whole, before its rename
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        for statement in _SCHEMA:
            connection.execute(statement)
        count = 0
        for rows in batches:
            try:
                connection.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)
            except sqlite3.IntegrityError as err:
                raise NotFast("an ISM is listed twice") from err
            count += len(rows)
        meta["entry_count"] = str(count)
        connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        connection.execute("COMMIT")
    finally:
        connection.close()


def _meta(
    source: IndexSource, jws_sha256: bytes, payload_sha256: bytes | None, binding: Binding | None
) -> dict[str, str]:
    # payload_sha256: lets an install tell the installed payload from another of the same
    # version without parsing the installed list again (absent from older indexes)
    header = source.header if isinstance(source, FastList) else source
    return {
        **({"payload_sha256": payload_sha256.hex()} if payload_sha256 is not None else {}),
        **(binding.meta() if binding is not None else {}),
        "format": FORMAT_VERSION,
        "jws_sha256": jws_sha256.hex(),
        "version": str(header.version),
        "issuer": header.issuer,
        "service_area": header.service_area,
        "issued_at": rfc3339(header.issued_at),
        "expires_at": rfc3339(header.expires_at),
    }


def _batches(source: IndexSource) -> Iterable[list[IndexRow]]:
    if isinstance(source, FastList):
        return source.batches()
    # in key order (Python's str order is SQLite's BINARY order of UTF-8), so every insert
    # appends to the B-tree instead of splitting pages all over it
    entries, codes = source.entries, _CODES
    return [[(ism, codes[entries[ism].status], entries[ism].max_discharge_w)
             for ism in sorted(entries)]]  # fmt: skip


def build_from_payload(
    state_dir: Path,
    payload: bytes | bytearray,
    jws_sha256: bytes,
    payload_sha256: bytes,
    binding: Binding | None,
    check: Callable[[ListHeader], None],
) -> tuple[ListHeader, BuiltIndex]:
    """Read a verified payload (``fast_list``, or the reference parser when it cannot
    prove its reading, which also words every refusal), ``check`` its header, and write its
    index under its temporary name: the header and the built index, to commit or discard.
    ApprovalListError when the payload is not a valid list; what ``check`` raises."""
    fast: FastList | None
    try:
        fast = read_fast(payload)
    except NotFast:
        fast = None
    if fast is not None:
        check(fast.header)
        try:
            return fast.header, build_temporary(state_dir, fast, jws_sha256, payload_sha256,
                                                binding)  # fmt: skip
        except NotFast:
            pass
    reference = parse_approval_list(payload)
    header = ListHeader.of(reference)
    check(header)
    built = build_temporary(state_dir, reference, jws_sha256, payload_sha256, binding)
    return header, built


class IndexedEntries:
    """The entries table, read as the parsed list's mapping is: ``len()`` and ``get()``.

    One cached cursor runs the prepared lookup under a lock: a connection may be used by one
    thread at a time, and the gate asks from the event loop while the store works in another
    thread. An index that cannot answer approves nobody (default deny), and says so."""

    def __init__(self, connection: sqlite3.Connection, count: int, name: str) -> None:
        # the B-tree's inner pages and the hotter leaves stay cached: a random lookup in a
        # 2,000,000-entry index takes ~3.3 us instead of ~4.2 us with the 2 MiB default
        connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._connection = connection
        self._cursor = connection.cursor()
        self._lock = threading.Lock()
        self._shared: dict[Row, Entry] = {}  # one Entry per (status, limit), as when parsed
        self._count = count
        self._name = name

    def __len__(self) -> int:
        return self._count

    def get(self, ism: str, /) -> Entry | None:
        with self._lock:
            try:
                row = self._cursor.execute(_LOOKUP, (ism,)).fetchone()
                return None if row is None else self._entry(row)
            except (sqlite3.Error, ApprovalIndexError) as err:
                logger.error("approvals.index_unreadable index=%s reason=%s", self._name, err)
                return None

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _entry(self, row: Row) -> Entry:
        entry = self._shared.get(row)
        if entry is None:
            status, limit = row
            approved = _CODES[Status.APPROVED]
            valid = status in _STATUSES and (
                limit is None or (type(limit) is int and limit >= 0 and status == approved)
            )
            if not valid:
                raise ApprovalIndexError(f"damaged entry {shown(row)}")
            entry = self._shared[row] = Entry(_STATUSES[status], limit)
        return entry


class IndexedList(ListReading):
    """A verified list read from its index: the same answers as the parsed list."""

    def __init__(self, path: Path, jws_sha256: bytes | None, file_id: str | None = None) -> None:
        """Open the index at ``path``; ApprovalIndexError unless it is of this format and was
        made for the file whose binding hash is ``jws_sha256`` (or, with None, whose identity
        is ``file_id``)."""
        self.path = path
        connection = _connect(path)
        try:
            meta = _read_meta(connection, path, jws_sha256, file_id)
            self.jws_sha256 = bytes.fromhex(meta["jws_sha256"])
            self.version, self.issuer = int(meta["version"]), meta["issuer"]
            self.service_area = meta["service_area"]
            payload = meta.get("payload_sha256")
            self.payload_sha256 = bytes.fromhex(payload) if payload is not None else None
            self.issued_at = _utc(meta["issued_at"])
            self.expires_at = _utc(meta["expires_at"])
            self.binding = _binding(meta)
            self.entries = IndexedEntries(connection, int(meta["entry_count"]), path.name)
        except (KeyError, TypeError, ValueError, sqlite3.Error) as err:
            connection.close()
            raise ApprovalIndexError(f"{path.name}: damaged meta: {err}") from err
        except BaseException:
            connection.close()
            raise

    def lookup(self, ism: str) -> Entry | None:
        return self.entries.get(ism)

    def close(self) -> None:
        """Close the index (lookups then find nothing); otherwise it closes when the last
        reference to it goes."""
        self.entries.close()


def open_index(state_dir: Path, jws_sha256: bytes) -> IndexedList:
    return IndexedList(index_path(state_dir, jws_sha256), jws_sha256)


def open_by_file_id(state_dir: Path, identity: str) -> IndexedList | None:
    """The index built for the file whose identity is ``identity`` (``file_id``), if exactly
    one of the indexes in ``state_dir`` says so (there is one, two while an install swaps):
    with two claiming it, neither is taken."""
    found: IndexedList | None = None
    for path in sorted(state_dir.glob(f"{PREFIX}*{SUFFIX}")):
        try:
            candidate = IndexedList(path, None, identity)
        except ApprovalIndexError:
            continue
        if found is not None:
            found.close()
            candidate.close()
            return None
        found = candidate
    return found


def _binding(meta: dict[str, str]) -> Binding | None:
    """The meta's binding (ValueError if damaged: the caller's "damaged meta")."""
    if "file_id" not in meta:
        return None
    digest = bytes.fromhex(meta["signing_sha256"])
    if len(digest) != DIGEST_BYTES:
        raise ValueError(f"signing_sha256 of {len(digest)} bytes")
    return Binding(meta["file_id"], digest, meta["jws_header"].encode("ascii"),
                   meta["jws_signature"].encode("ascii"))  # fmt: skip


def _connect(path: Path) -> sqlite3.Connection:
    # mode=ro: nothing is written through it; immutable=1: the file never changes once
    # renamed into place, so SQLite takes no file lock and checks no journal per query
    # (measured: that was two thirds of a lookup's time)
    uri = f"file:{quote(str(path))}?mode=ro&immutable=1"
    try:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.Error as err:
        reason = "missing" if not path.exists() else f"cannot open: {err}"
        raise ApprovalIndexError(f"{path.name}: {reason}") from err


def _read_meta(
    connection: sqlite3.Connection, path: Path, jws_sha256: bytes | None, file_id: str | None
) -> dict[str, str]:
    try:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error as err:
        raise ApprovalIndexError(f"{path.name}: not an approval list index: {err}") from err
    if meta.get("format") != FORMAT_VERSION:
        raise ApprovalIndexError(
            f"{path.name}: format {shown(meta.get('format'))}, expected {FORMAT_VERSION!r}"
        )
    if jws_sha256 is not None and meta.get("jws_sha256") != jws_sha256.hex():
        raise ApprovalIndexError(f"{path.name}: made for other content")
    if file_id is not None and meta.get("file_id") != file_id:
        raise ApprovalIndexError(f"{path.name}: made for another file")
    if not all(type(value) is str for value in meta.values()):
        raise ApprovalIndexError(f"{path.name}: damaged meta: not all text")
    return meta


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    offset = moment.utcoffset()
    if offset is None or offset:
        raise ValueError(f"not a UTC time: {text!r}")
    return moment


def remove_stale(state_dir: Path, keep: bytes) -> list[Path]:
    """Remove the indexes of other content than the file whose binding hash is ``keep``, and
    the temporaries of builds that died; the paths removed."""
    current = index_path(state_dir, keep)
    removed = [
        path
        for path in sorted(state_dir.glob(f"{PREFIX}*{SUFFIX}"))
        if path != current and _unlink(path)
    ]
    return removed + remove_abandoned_temporaries(state_dir)


def remove_abandoned_temporaries(state_dir: Path) -> list[Path]:
    """Remove the temporaries of index builds that died (a live build holds its lock); the
    paths removed."""
    return [
        path
        for path in sorted(state_dir.glob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}"))
        if remove_abandoned(path)
    ]


def remove_abandoned(temporary: Path) -> bool:
    """Remove ``temporary`` unless the process writing it lives (it holds its lock)."""
    try:
        fd = os.open(temporary, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live build holds it
        return _unlink(temporary)  # while holding it: see _claim
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):  # read-only: nothing to lose
            os.close(fd)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except OSError:
        return False
    return True


if __name__ == "__main__":
    # the child's side of a rebuild lives with the parent's (rebuild imports this module)
    from firmware.approvals.rebuild import main

    sys.exit(main())
