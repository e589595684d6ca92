"""The installed approval list: checked before it is written, written atomically, verified
again at every start and after every install, and the list in force in memory.

Owns ``<state_dir>/approvals.jws``, which holds the compact JWS exactly as received (followed
by one newline) so that it can be re-verified against the keys configured at each start, and
the list in force. An install (the CLI, in its own process) runs every check and the full
parse before it touches the disk, builds the list's SQLite index (``index``, named by the
SHA-256 of the exact bytes it is about to write), then writes a temporary file in the same
directory, fsyncs it, renames it over the old file and fsyncs the directory: a crash at any
point leaves the old list or the new one, never a broken one; the indexes of other content
are removed after. An installed list that no longer verifies (key removed, file damaged,
expired, another service area) is reported and not put in force: default deny. It does not
fetch lists (``cli``).

``load_installed`` (the daemon, in a worker thread) never holds the GIL long: it reads the file
in chunks, hashing it on the way (``installed_file.scan``), verifies the signature over the
hash (``jws.verify_es256_prehashed``), opens the index of exactly those bytes, or has a child
process rebuild it (``rebuild``), and checks service area and dates from the index. The list
in force stays in force while it works and when the file is refused; the new one replaces it
in one assignment once verified. Only a deleted file takes the list in force away
(docs/design.md, "The approval list in force").

Versions: lower than the installed one is refused (rollback); equal with the same payload is
a no-op (fetching the list in force again is harmless); equal with another payload is refused
(the utility must raise the version). The installed version is a floor only while its
signature still verifies with a configured key and it is for this service area: a list that
nothing vouches for any more cannot hold the site back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from firmware.approvals import ApprovalError
from firmware.approvals.approval_list import ApprovalList, Status, parse_approval_list
from firmware.approvals.durable import replace_durably
from firmware.approvals.index import (
    ApprovalIndexError,
    IndexedList,
    build_index,
    open_index,
    remove_stale,
)
from firmware.approvals.install_lock import (
    LOCK_NAME,
    install_lock,
    remove_leftovers,
    temporary_name,
)
from firmware.approvals.installed_file import FILE_NAME as FILE_NAME
from firmware.approvals.installed_file import MAX_JWS_BYTES as MAX_JWS_BYTES
from firmware.approvals.installed_file import ScannedJws, read_whole, scan
from firmware.approvals.jws import UtilityKey, ascii_token, verify_es256, verify_es256_prehashed
from firmware.approvals.rebuild import rebuild_index
from firmware.approvals.view import ListView, rfc3339, service_area_problem
from firmware.logs import log_event
from firmware.state_owner import hand_over

logger = logging.getLogger(__name__)

TEMPORARY_NAME = FILE_NAME + ".tmp"  # what installs before the lock left behind

Clock = Callable[[], datetime]


class ApprovalRefused(ApprovalError):
    """Raised when a signed, well-formed list may not be installed here: another service
    area, not valid now, older than the installed version, or the installed version with
    another payload."""


class ApprovalStoreError(ApprovalError):
    """Raised when the installed list cannot be read, or the new one (or its index) cannot be
    written (the old list, or the new one if the rename happened, is then on disk)."""


@dataclass(frozen=True, slots=True)
class _Floor:
    """What the installed list says of itself, read from its index: enough for the rollback
    check, without parsing the installed list again."""

    version: int
    service_area: str
    payload_sha256: bytes
    file_sha256: bytes


@dataclass(frozen=True, slots=True)
class _Verified:
    approval_list: ApprovalList
    payload_sha256: bytes  # to tell the installed payload again from another one
    file_sha256: bytes  # the binding hash of the file's bytes (installed_file), names the index


def utc_now() -> datetime:
    return datetime.now(UTC)


class ApprovalStore:
    def __init__(
        self,
        state_dir: Path,
        keys: Sequence[UtilityKey],
        service_area: str,
        clock: Clock = utc_now,
    ) -> None:
        self.state_dir = state_dir
        self.path = state_dir / FILE_NAME
        self._keys = tuple(keys)
        self._service_area = service_area
        self._clock = clock
        self._current: ListView | None = None
        self._problem: str | None = None
        self._date_problem: str | None = None
        self._pending: ListView | None = None  # verified, waiting for its issued_at

    @property
    def current(self) -> ListView | None:
        """The list loaded or installed last (it may have expired since: see ``in_force``)."""
        return self._current

    @property
    def problem(self) -> str | None:
        """Why the installed file is not in force, after ``load_installed``; None if it is."""
        return self._problem

    def in_force(self) -> ListView | None:
        """The list loaded last, while the clock says it is valid: its dates are read against
        the clock at every call, so a clock corrected after boot (no RTC, NTP late) or a list
        reaching its own ``issued_at`` or ``expires_at`` counts at once, with no reinstall."""
        now = self._clock()
        pending = self._pending
        if pending is not None and pending.valid_at(now):
            self._current, self._pending, self._problem = pending, None, None  # its time came
            log_event(logger, "approvals.pending_in_force", version=pending.version)
        current = self._current
        if current is None:
            return None
        problem = current.validity_problem(now)
        if problem != self._date_problem:
            self._date_problem = problem
            if problem is None:
                log_event(logger, "approvals.in_force", version=current.version)
            else:
                log_event(logger, "approvals.not_in_force", logging.WARNING, reason=problem)
        return current if problem is None else None

    @property
    def date_problem(self) -> str | None:
        """Why the loaded list is not in force by its dates now (after ``in_force``)."""
        return self._date_problem

    def status_of(self, ism: str) -> Status:
        """Default deny: with no list in force, every ISM is not listed."""
        current = self.in_force()
        return Status.NOT_LISTED if current is None else current.status_of(ism)

    def load_installed(self) -> ListView | None:
        """Verify the installed file again and put it in force; None (and ``problem`` says
        why) if it is refused, when the list in force stays, or if there is none, when
        nothing is in force any more."""
        try:
            loaded = self._load_indexed()
            self._keep_the_valid_one(loaded)
        except ApprovalError as err:
            self._problem = f"installed list refused: {err}"
            logger.warning("approvals.installed_refused path=%s reason=%s", self.path, err)
            return None
        self._problem, self._pending = None, None
        # the swap: one assignment; the list it replaces closes when its last reader lets go
        self._current = loaded
        if loaded is not None:
            logger.info("approvals.loaded %s", _fields(loaded))
        return loaded

    def _keep_the_valid_one(self, loaded: ListView | None) -> None:
        """A list that its dates keep out of force now does not replace one in force: it
        waits (``in_force`` puts it in force at its ``issued_at``). With none in force (a
        start, a clock still wrong) it is loaded, and its dates are read at every question."""
        if loaded is None or self.in_force() is None:
            return
        now = self._clock()
        problem = loaded.validity_problem(now)
        if problem is not None:
            if now < loaded.issued_at:
                self._pending = loaded
            elif isinstance(loaded, IndexedList):
                loaded.close()  # expired: of no use, now or later
            raise ApprovalRefused(problem)

    def install(self, jws: str | bytes) -> ApprovalList:
        """Verify and check ``jws`` (a compact JWS, as text or a file's bytes), index it, then
        replace the installed list atomically. The version check, the index and the rename
        happen under the install lock (``install_lock``): of two installs at once, the older
        is refused whichever comes last."""
        try:
            candidate = self._verify(jws)
            self._check_here(candidate.approval_list)
        except ApprovalError as err:
            logger.warning("approvals.refused reason=%s", err)
            raise
        try:
            with self._locked():
                failed_write = self._install_locked(candidate, ascii_token(jws) + b"\n")
        except ApprovalError as err:
            logger.warning("approvals.refused reason=%s", err)
            raise
        if failed_write is not None:
            # the old list or the new one: keep memory as on disk (after the lock is let go:
            # an index rebuild takes it in a child process)
            self.load_installed()
            raise failed_write
        self._current, self._problem = candidate.approval_list, None
        return candidate.approval_list

    def _install_locked(self, candidate: _Verified, data: bytes) -> ApprovalStoreError | None:
        """The install's part under the lock; the write's failure, if the write failed."""
        for path in remove_leftovers(self.state_dir):
            logger.info("approvals.leftover_removed path=%s", path)
        installed = self._check_version(candidate)
        if isinstance(installed, _Verified):
            self._ensure_index(installed)
        if installed is not None:
            logger.info("approvals.unchanged %s", _fields(candidate.approval_list))
        else:
            self._build_index(candidate)
            try:
                self._write(data)
            except ApprovalStoreError as err:
                return err
            logger.info("approvals.installed %s", _fields(candidate.approval_list))
        kept = candidate if installed is None else installed
        remove_stale(self.state_dir, kept.file_sha256)
        return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(install_lock(self.state_dir))
            except OSError as err:
                lock = self.state_dir / LOCK_NAME
                raise ApprovalStoreError(f"{lock}: cannot lock: {err.strerror}") from err
            yield

    # --- the daemon's load: chunked, prehashed, indexed -------------------------------------

    def _scan_verified(self) -> ScannedJws | None:
        """The installed file read in chunks and its signature verified over the digest
        (none installed: None)."""
        try:
            scanned = scan(self.path)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ApprovalStoreError(f"{self.path}: cannot read: {err.strerror}") from err
        verify_es256_prehashed(
            scanned.header, scanned.signature, scanned.signing_sha256, self._keys
        )
        return scanned

    def _load_indexed(self) -> IndexedList | None:
        scanned = self._scan_verified()
        if scanned is None:
            return None
        indexed = self._open_index(scanned.file_sha256)
        try:
            # its dates are not checked here but by ``in_force``, against the clock of the
            # moment: a board whose clock is wrong at start would otherwise refuse it for good
            self._check_area(indexed)
        except ApprovalError:
            indexed.close()  # never in force: nobody else holds it
            raise
        return indexed

    def _open_index(self, file_sha256: bytes) -> IndexedList:
        try:
            return open_index(self.state_dir, file_sha256)
        except ApprovalIndexError as err:
            logger.info("approvals.index_rebuild path=%s reason=%s", self.path, err)
        rebuilt = rebuild_index(self.state_dir, self._keys, self._service_area)
        if rebuilt != file_sha256:
            raise ApprovalStoreError(f"{self.path}: changed while it was being verified")
        return open_index(self.state_dir, file_sha256)

    # --- the install's full verification ----------------------------------------------------

    def _verify(self, jws: str | bytes, file_bytes: bytes | None = None) -> _Verified:
        """Verify ``jws`` in full. ``file_bytes``: what the installed file holds for it; by
        default what an install writes (the token and a newline). Their hash binds the index."""
        if len(jws) > MAX_JWS_BYTES:
            raise ApprovalRefused(f"list is larger than {MAX_JWS_BYTES} bytes")
        payload = verify_es256(jws, self._keys).payload
        if file_bytes is None:
            file_bytes = ascii_token(jws) + b"\n"
        return _Verified(
            parse_approval_list(payload),
            hashlib.sha256(payload).digest(),
            hashlib.sha256(file_bytes).digest(),
        )

    def _read_installed(self) -> _Verified | None:
        try:
            data = read_whole(self.path)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ApprovalStoreError(f"{self.path}: cannot read: {err.strerror}") from err
        return self._verify(data, data)

    def _check_here(self, candidate: ListView) -> None:
        """An install: the service area, and valid now (an operator's clock is checked)."""
        self._check_area(candidate)
        problem = candidate.validity_problem(self._clock())
        if problem is not None:
            raise ApprovalRefused(problem)

    def _check_area(self, candidate: ListView) -> None:
        problem = service_area_problem(candidate.service_area, self._service_area)
        if problem is not None:
            raise ApprovalRefused(problem)

    def _installed_floor(self) -> _Floor | _Verified | None:
        """The installed list for the rollback check: from its index when that is its own
        (the file hashed in chunks, the signature verified over the digest, the index opened:
        a fraction of a second at a million entries), else verified and parsed in full."""
        scanned = self._scan_verified()
        if scanned is None:
            return None
        try:
            index = open_index(self.state_dir, scanned.file_sha256)
        except ApprovalIndexError:
            return self._read_installed()
        try:
            payload = index.payload_sha256
            floor = _Floor(index.version, index.service_area, payload or b"",
                           scanned.file_sha256)  # fmt: skip
        finally:
            index.close()
        return floor if payload is not None else self._read_installed()

    def _check_version(self, candidate: _Verified) -> _Floor | _Verified | None:
        """Refuse a rollback; the installed list when exactly this payload is installed."""
        try:
            installed = self._installed_floor()
        except ApprovalStoreError:
            raise  # unreadable: cannot tell a rollback, so nothing is replaced
        except ApprovalError as err:
            logger.info("approvals.no_floor reason=%s", err)
            return None
        if installed is None:
            return None
        if isinstance(installed, _Verified):
            area, old = installed.approval_list.service_area, installed.approval_list.version
        else:
            area, old = installed.service_area, installed.version
        if area != self._service_area:
            return None
        new = candidate.approval_list.version
        if new < old:
            raise ApprovalRefused(f"version {new} is older than the installed version {old}")
        if new == old and candidate.payload_sha256 != installed.payload_sha256:
            raise ApprovalRefused(
                f"version {new} is installed with other content: a new list needs a new version"
            )
        return installed if new == old else None

    # --- writing ----------------------------------------------------------------------------

    def _build_index(self, verified: _Verified) -> None:
        try:
            build_index(self.state_dir, verified.approval_list, verified.file_sha256,
                        verified.payload_sha256)  # fmt: skip
        except ApprovalIndexError as err:
            raise ApprovalStoreError(str(err)) from err

    def _ensure_index(self, installed: _Verified) -> None:
        """The installed file's index exists and is its own (it may have been removed)."""
        try:
            open_index(self.state_dir, installed.file_sha256).close()
        except ApprovalIndexError as err:
            logger.info("approvals.index_rebuild path=%s reason=%s", self.path, err)
            self._build_index(installed)

    def _write(self, data: bytes) -> None:
        # a name of its own (the lock makes the last install's rename the newest anyway, and
        # a killed install's leftover is then plainly abandoned: install_lock)
        temporary = self.path.with_name(temporary_name(secrets.token_hex(8)))
        try:
            replace_durably(self.path, temporary, data, 0o644, exclusive=True,
                            prepare=lambda fd: hand_over(fd, self.state_dir))  # fmt: skip
        except OSError as err:
            raise ApprovalStoreError(f"{self.path}: cannot write: {err.strerror}") from err


def _fields(approval_list: ListView) -> str:
    return (
        f"version={approval_list.version} service_area={approval_list.service_area} "
        f"entries={len(approval_list.entries)} expires_at={rfc3339(approval_list.expires_at)}"
    )
