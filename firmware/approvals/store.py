"""The installed approval list: checked before it is written, written atomically, verified
again at every start and after every install, and the list in force in memory.

Owns ``<state_dir>/approvals.jws``, which holds the compact JWS exactly as received (followed
by one newline) so that it can be re-verified against the keys configured at each start, and
the list in force. An install (the CLI, in its own process) reads the list in chunks
(``installed_file.decode``): the token goes to a temporary file of its own as it is read, the
signature is verified over the digest, and the payload is read in batches into the list's
SQLite index (``index.build_from_payload``, ``fast_list``), under a temporary name too; no
list is ever held as Python objects. Then, under the install lock, the version check, the
index's rename and the file's, each fsynced with its directory: a crash at any point leaves
the old list or the new one, never a broken one; the indexes of other content are removed
after. An installed list that no longer verifies (key removed, file damaged, expired, another
service area) is reported and not put in force: default deny. It does not fetch lists
(``cli``).

``load_installed`` (the daemon, in a worker thread) is the switch: it finds the index the
install made for the installed file as it is now (``index.file_id``: device, inode, size,
mtime), verifies the signature over the digest recorded there and checks the service area;
the list replaces the one in force in one assignment, with no read of the file at any size.
``confirm_installed`` then hashes the file in chunks (hashlib lets go of the GIL) against
what the index was built from; on a disagreement the index goes and the file is read the
full way: verified in chunks, its index opened by that hash or rebuilt by a child process
(``rebuild``). Dates are checked by ``in_force`` against the clock of the moment. The list
in force stays in force while it works and when the file is refused; only a deleted file
takes it away (docs/design.md, "The approval list in force").

Versions: lower than the installed one is refused (rollback); equal with the same payload is
a no-op (fetching the list in force again is harmless); equal with another payload is refused
(the utility must raise the version). The installed version is a floor only while its
signature still verifies with a configured key and it is for this service area: a list that
nothing vouches for any more cannot hold the site back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from firmware.approvals import ApprovalError
from firmware.approvals.approval_list import Status
from firmware.approvals.durable import discard, fsync_directory
from firmware.approvals.fast_list import ListHeader, header_of
from firmware.approvals.index import (
    ApprovalIndexError,
    Binding,
    BuiltIndex,
    IndexedList,
    build_from_payload,
    claim_temporary,
    file_id,
    open_by_file_id,
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
from firmware.approvals.installed_file import ScannedJws, WriteFailed, decode, scan
from firmware.approvals.jws import UtilityKey, verify_es256_prehashed
from firmware.approvals.rebuild import rebuild_index, rebuild_locked
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
    header: ListHeader
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
        # _current and _pending change together: the watch's thread loads and confirms while
        # the event loop's in_force may promote the pending list
        self._swap = threading.RLock()
        # loaded by the file's identity only (that identity): confirm_installed checks it
        self._unconfirmed: tuple[IndexedList, str] | None = None

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
        with self._swap:
            pending = self._pending
            if pending is not None and pending.valid_at(now):
                self._current, self._pending, self._problem = pending, None, None  # its time
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
        nothing is in force any more. The index is found by the file's identity when one
        names it (``confirm_installed`` then checks the file's hash), else by its hash."""
        return self._load(by_identity=True)

    def load_confirmed(self) -> ListView | None:
        """``load_installed``, then ``confirm_installed`` (the file's hash, a fraction of a
        second in chunks): the list loaded, or, after a disagreement, what is in force once
        the file was read the full way. For whoever has no use for the switch alone."""
        loaded = self.load_installed()
        return loaded if self.confirm_installed() else self.in_force()

    def _load(self, by_identity: bool) -> ListView | None:
        try:
            loaded = self._load_indexed(by_identity)
            self._keep_the_valid_one(loaded)
        except ApprovalError as err:
            self._problem = f"installed list refused: {err}"
            logger.warning("approvals.installed_refused path=%s reason=%s", self.path, err)
            return None
        with self._swap:
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
                with self._swap:
                    self._pending = loaded
            elif isinstance(loaded, IndexedList):
                loaded.close()  # expired: of no use, now or later
            raise ApprovalRefused(problem)

    def install(self, jws: str | bytes | Path) -> ListView:
        """Verify and check ``jws`` (a compact JWS: text, a file's bytes, or a file read in
        chunks), index it, then replace the installed list atomically; the list installed
        (or already installed). The token is written to a temporary file of its own and the
        index built beside it as they are read (never the list as Python objects: ``fast_list``);
        the version check and both renames happen under the install lock (``install_lock``):
        of two installs at once, the older is refused whichever comes last."""
        built: BuiltIndex | None = None
        try:
            with _claimed(self.state_dir) as (temporary, fd):
                candidate, built = self._verify_into(jws, fd)
                with self._locked():
                    installed = self._install_locked(candidate, built, temporary)
        except ApprovalStoreError as err:
            logger.warning("approvals.refused reason=%s", err)
            if built is not None and built.fd is None:  # the rename may have happened
                self.load_installed()  # keep memory as on disk
            raise
        except ApprovalError as err:
            logger.warning("approvals.refused reason=%s", err)
            raise
        finally:
            if built is not None:
                built.discard()  # committed already, unless the install stopped short
        if installed is not None:
            self._current, self._problem = installed, None
            return installed
        # the rename happened or not: keep memory as on disk (the rebuild locks by itself)
        self.load_installed()
        raise ApprovalStoreError(f"{self.path}: the installed list cannot be read back")

    def _verify_into(self, jws: str | bytes | Path, fd: int) -> tuple[_Verified, BuiltIndex]:
        """Read ``jws`` into the temporary ``fd``, verify its signature, check its header
        here and build its index under a temporary name."""
        try:
            decoded = decode(jws, fd)
        except WriteFailed as err:
            raise ApprovalStoreError(f"{self.path}: cannot write: {err}") from err
        except OSError as err:
            source = jws if isinstance(jws, Path) else "the list"
            raise ApprovalStoreError(f"{source}: cannot read: {err.strerror}") from err
        scanned = decoded.scanned
        scanned.verify(self._keys)
        try:
            os.fsync(fd)
            binding = Binding(file_id(os.fstat(fd)), scanned.signing_sha256, scanned.header,
                              scanned.signature)  # fmt: skip
        except OSError as err:
            raise ApprovalStoreError(f"{self.path}: cannot write: {err.strerror}") from err
        header, built = self._index(decoded.payload, scanned.file_sha256,
                                    decoded.payload_sha256, binding, self._check_here)  # fmt: skip
        return _Verified(header, decoded.payload_sha256, scanned.file_sha256), built

    def _index(
        self,
        payload: bytearray,
        file_sha256: bytes,
        payload_sha256: bytes,
        binding: Binding | None,
        check: Callable[[ListHeader], None],
    ) -> tuple[ListHeader, BuiltIndex]:
        try:
            return build_from_payload(self.state_dir, payload, file_sha256, payload_sha256,
                                      binding, check)  # fmt: skip
        except ApprovalIndexError as err:
            raise ApprovalStoreError(str(err)) from err

    def _install_locked(
        self, candidate: _Verified, built: BuiltIndex, temporary: Path
    ) -> IndexedList | None:
        """The install's part under the lock: the list now installed (None if it cannot be
        read back)."""
        for path in remove_leftovers(self.state_dir):
            logger.info("approvals.leftover_removed path=%s", path)
        installed = self._check_version(candidate)
        if installed is not None:
            logger.info("approvals.unchanged %s", _fields(candidate.header))
            kept = installed.file_sha256
            self._ensure_index(installed)
        else:
            try:
                built.commit()
            except ApprovalIndexError as err:
                raise ApprovalStoreError(str(err)) from err
            try:
                os.replace(temporary, self.path)
                fsync_directory(self.state_dir)
            except OSError as err:
                raise ApprovalStoreError(f"{self.path}: cannot write: {err.strerror}") from err
            logger.info("approvals.installed %s", _fields(candidate.header))
            kept = candidate.file_sha256
        remove_stale(self.state_dir, kept)
        try:
            return open_index(self.state_dir, kept)
        except ApprovalIndexError:
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
        scanned.verify(self._keys)
        return scanned

    def _load_indexed(self, by_identity: bool) -> IndexedList | None:
        found = self._open_by_identity() if by_identity else None
        if found is not None:
            indexed = found[0]
        else:
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
        if found is not None:
            self._unconfirmed = found  # confirm_installed hashes the file, off the switch
        return indexed

    def _open_by_identity(self) -> tuple[IndexedList, str] | None:
        """The index an install or a rebuild made for the installed file as it is now (its
        identity: ``index.file_id``) and that identity, the signature verified again over
        the digest recorded there: no read of the file. None when no single index names
        this file or anything about it fails: the file's own reading then decides."""
        try:
            identity = file_id(os.stat(self.path))
        except OSError:
            return None  # none installed, or unreadable: the full way says which
        indexed = open_by_file_id(self.state_dir, identity)
        if indexed is None:
            return None
        binding = indexed.binding
        try:
            if binding is None:
                raise ApprovalIndexError(f"{indexed.path.name}: no binding")
            verify_es256_prehashed(binding.header, binding.signature, binding.signing_sha256,
                                   self._keys)  # fmt: skip
        except (ApprovalError, ValueError) as err:
            indexed.close()
            logger.info("approvals.identity_refused index=%s reason=%s", indexed.path.name, err)
            return None
        return indexed, identity

    def confirm_installed(self) -> bool:
        """After a load that found the index by the file's identity: hash the file (in
        chunks, the GIL let go) and check it is what the index was built from. If not (the
        file changed in place, damage), the index is removed and the list loaded again by
        the file's own reading, which rebuilds the index from it. True if confirmed, or
        nothing to confirm (a file renamed in since is the watch's next load)."""
        found, self._unconfirmed = self._unconfirmed, None
        if found is None:
            return True
        indexed, identity = found
        try:
            if file_id(os.stat(self.path)) != identity:
                return True  # another install since: the watch loads and confirms it
            scanned = scan(self.path)
            if file_id(os.stat(self.path)) != identity:
                return True
            binding = indexed.binding
            if binding is not None and (scanned.file_sha256, scanned.signing_sha256) == (
                indexed.jws_sha256,
                binding.signing_sha256,
            ):
                return True
            reason = "the file is not what its index was built from"
        except (OSError, ApprovalError) as err:
            reason = f"cannot read the file again: {err}"
        log_event(logger, "approvals.index_disagrees", logging.ERROR, index=indexed.path.name,
                  reason=reason)  # fmt: skip
        with contextlib.suppress(OSError):
            indexed.path.unlink()
        with self._swap:  # in_force may be promoting it from pending this very moment
            if self._current is indexed:
                self._current = None  # default deny until the file's own reading is in force
            if self._pending is indexed:
                self._pending = None
        indexed.close()
        self._load(by_identity=False)  # the index is not to be trusted, even if still there
        return False

    def _open_index(self, file_sha256: bytes) -> IndexedList:
        try:
            return open_index(self.state_dir, file_sha256)
        except ApprovalIndexError as err:
            logger.info("approvals.index_rebuild path=%s reason=%s", self.path, err)
        rebuilt = rebuild_index(self.state_dir, self._keys, self._service_area)
        if rebuilt != file_sha256:
            raise ApprovalStoreError(f"{self.path}: changed while it was being verified")
        return open_index(self.state_dir, file_sha256)

    # --- the installed list's own reading, when its index cannot tell -----------------------

    def _read_installed(self) -> _Verified | None:
        """The installed file verified in full (its entries are not needed: the header)."""
        try:
            decoded = decode(self.path)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ApprovalStoreError(f"{self.path}: cannot read: {err.strerror}") from err
        scanned = decoded.scanned
        scanned.verify(self._keys)
        return _Verified(header_of(decoded.payload), decoded.payload_sha256,
                         scanned.file_sha256)  # fmt: skip

    def _check_here(self, candidate: ListHeader) -> None:
        """An install: the service area, and valid now (an operator's clock is checked)."""
        self._check_area(candidate)
        problem = candidate.validity_problem(self._clock())
        if problem is not None:
            raise ApprovalRefused(problem)

    def _check_area(self, candidate: ListHeader | ListView) -> None:
        problem = service_area_problem(candidate.service_area, self._service_area)
        if problem is not None:
            raise ApprovalRefused(problem)

    def _installed_floor(self) -> _Floor | _Verified | None:
        """The installed list for the rollback check: from its index when that is its own
        (the file hashed in chunks, the signature verified over the digest, the index
        opened by that hash: a fraction of a second at a million entries), else verified in
        full. Not by the file's identity: the floor must be the file's, not an index's."""
        scanned = self._scan_verified()
        if scanned is None:
            return None
        try:
            indexed = open_index(self.state_dir, scanned.file_sha256)
        except ApprovalIndexError:
            return self._read_installed()
        try:
            payload = indexed.payload_sha256
            if payload is None:
                return self._read_installed()
            return _Floor(indexed.version, indexed.service_area, payload, indexed.jws_sha256)
        finally:
            indexed.close()

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
            area, old = installed.header.service_area, installed.header.version
        else:
            area, old = installed.service_area, installed.version
        if area != self._service_area:
            return None
        new = candidate.header.version
        if new < old:
            raise ApprovalRefused(f"version {new} is older than the installed version {old}")
        if new == old and candidate.payload_sha256 != installed.payload_sha256:
            raise ApprovalRefused(
                f"version {new} is installed with other content: a new list needs a new version"
            )
        return installed if new == old else None

    # --- writing ----------------------------------------------------------------------------

    def _ensure_index(self, installed: _Floor | _Verified) -> None:
        """The installed file's index exists and is its own (it may have been removed)."""
        try:
            open_index(self.state_dir, installed.file_sha256).close()
        except ApprovalIndexError as err:
            logger.info("approvals.index_rebuild path=%s reason=%s", self.path, err)
            self._rebuild_locked()

    def _rebuild_locked(self) -> None:
        try:
            rebuild_locked(self.state_dir, self._keys, self._service_area)
        except ApprovalIndexError as err:
            raise ApprovalStoreError(str(err)) from err


@contextlib.contextmanager
def _claimed(state_dir: Path) -> Iterator[tuple[Path, int]]:
    """A new temporary file for the token, locked while the install lives (``install_lock``
    leaves a locked one alone) and removed on the way out unless renamed into place."""
    temporary, fd = _claim(state_dir)
    try:
        yield temporary, fd
    finally:
        discard(temporary)  # renamed already when installed: then nothing happens
        try:
            os.close(fd)
        except OSError as err:
            raise ApprovalStoreError(f"{temporary}: cannot write: {err.strerror}") from err


def _claim(state_dir: Path) -> tuple[Path, int]:
    try:
        temporary, fd = claim_temporary(state_dir, lambda: temporary_name(secrets.token_hex(8)))
    except OSError as err:
        raise ApprovalStoreError(f"{state_dir}: cannot write: {err.strerror}") from err
    try:
        hand_over(fd, state_dir)
    except OSError as err:
        discard(temporary)
        os.close(fd)
        raise ApprovalStoreError(f"{temporary}: cannot write: {err.strerror}") from err
    return temporary, fd


def _fields(approval_list: ListHeader | ListView) -> str:
    return (
        f"version={approval_list.version} service_area={approval_list.service_area} "
        + (f"entries={len(approval_list.entries)} " if hasattr(approval_list, "entries") else "")
        + f"expires_at={rfc3339(approval_list.expires_at)}"
    )
