"""The installed approval list: checked before it is written, written atomically, re-verified
at every start.

Owns ``<state_dir>/approvals.jws``, which holds the compact JWS exactly as received so that it
can be re-verified against the keys configured at each start, and the list in force in memory.
An install runs every check before it touches the disk, then writes a temporary file in the
same directory, fsyncs it, renames it over the old file and fsyncs the directory: a crash at
any point leaves the old list or the new one, never a broken one. An installed list that no
longer verifies at start (key removed, file damaged, expired, another service area) is
reported and treated as no list: default deny. It does not fetch lists (``cli``).

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
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from firmware.approvals import ApprovalError
from firmware.approvals.approval_list import (
    ApprovalList,
    Status,
    parse_approval_list,
    rfc3339,
)
from firmware.approvals.jws import UtilityKey, ascii_token, shown, verify_es256

logger = logging.getLogger(__name__)

FILE_NAME = "approvals.jws"
TEMPORARY_NAME = FILE_NAME + ".tmp"  # same directory, so the rename is atomic
MAX_JWS_BYTES = 256 * 1024 * 1024  # a million entries take ~90 MB

Clock = Callable[[], datetime]


class ApprovalRefused(ApprovalError):
    """Raised when a signed, well-formed list may not be installed here: another service
    area, not valid now, older than the installed version, or the installed version with
    another payload."""


class ApprovalStoreError(ApprovalError):
    """Raised when the installed list cannot be read, or the new one cannot be written (the
    old list, or the new one if the rename happened, is then on disk)."""


@dataclass(frozen=True, slots=True)
class _Verified:
    approval_list: ApprovalList
    payload_sha256: bytes  # to tell the installed payload again from another one


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
        self.path = state_dir / FILE_NAME
        self._keys = tuple(keys)
        self._service_area = service_area
        self._clock = clock
        self._current: ApprovalList | None = None
        self._problem: str | None = None

    @property
    def current(self) -> ApprovalList | None:
        """The list loaded or installed last (it may have expired since: see ``in_force``)."""
        return self._current

    @property
    def problem(self) -> str | None:
        """Why the installed file is not in force, after ``load_installed``; None if it is."""
        return self._problem

    def in_force(self) -> ApprovalList | None:
        current = self._current
        return current if current is not None and current.valid_at(self._clock()) else None

    def status_of(self, ism: str) -> Status:
        """Default deny: with no list in force, every ISM is not listed."""
        current = self.in_force()
        return Status.NOT_LISTED if current is None else current.status_of(ism)

    def load_installed(self) -> ApprovalList | None:
        """Re-verify the installed file; None (and ``problem`` says why) if it is refused."""
        self._current, self._problem = None, None
        try:
            installed = self._read_installed()
            if installed is not None:
                self._check_here(installed.approval_list)
        except ApprovalError as err:
            self._problem = f"installed list refused: {err}"
            logger.warning("approvals.installed_refused path=%s reason=%s", self.path, err)
            return None
        if installed is None:
            return None
        self._current = installed.approval_list
        logger.info("approvals.loaded %s", _fields(self._current))
        return self._current

    def install(self, jws: str | bytes) -> ApprovalList:
        """Verify and check ``jws`` (a compact JWS, as text or a file's bytes), then replace
        the installed list atomically."""
        try:
            candidate = self._verify(jws)
            self._check_here(candidate.approval_list)
            unchanged = self._check_version(candidate)
        except ApprovalError as err:
            logger.warning("approvals.refused reason=%s", err)
            raise
        if unchanged:
            logger.info("approvals.unchanged %s", _fields(candidate.approval_list))
        else:
            try:
                self._write(ascii_token(jws) + b"\n")
            except ApprovalStoreError:
                self.load_installed()  # the old list or the new one: keep memory as on disk
                raise
            logger.info("approvals.installed %s", _fields(candidate.approval_list))
        self._current, self._problem = candidate.approval_list, None
        return candidate.approval_list

    def _verify(self, jws: str | bytes) -> _Verified:
        if len(jws) > MAX_JWS_BYTES:
            raise ApprovalRefused(f"list is larger than {MAX_JWS_BYTES} bytes")
        payload = verify_es256(jws, self._keys).payload
        return _Verified(parse_approval_list(payload), hashlib.sha256(payload).digest())

    def _read_installed(self) -> _Verified | None:
        try:
            with self.path.open("rb") as handle:
                data = handle.read(MAX_JWS_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ApprovalStoreError(f"{self.path}: cannot read: {err.strerror}") from err
        return self._verify(data)

    def _check_here(self, candidate: ApprovalList) -> None:
        if not self._service_area:
            raise ApprovalRefused("[site] service_area is not set")
        if candidate.service_area != self._service_area:
            raise ApprovalRefused(
                f"list is for service area {shown(candidate.service_area)}, "
                f"this site is in {shown(self._service_area)}"
            )
        problem = candidate.validity_problem(self._clock())
        if problem is not None:
            raise ApprovalRefused(problem)

    def _check_version(self, candidate: _Verified) -> bool:
        """Refuse a rollback; True when exactly this payload is installed already."""
        try:
            installed = self._read_installed()
        except ApprovalStoreError:
            raise  # unreadable: cannot tell a rollback, so nothing is replaced
        except ApprovalError as err:
            logger.info("approvals.no_floor reason=%s", err)
            return False
        if installed is None or installed.approval_list.service_area != self._service_area:
            return False
        new, old = candidate.approval_list.version, installed.approval_list.version
        if new < old:
            raise ApprovalRefused(f"version {new} is older than the installed version {old}")
        if new == old and candidate.payload_sha256 != installed.payload_sha256:
            raise ApprovalRefused(
                f"version {new} is installed with other content: a new list needs a new version"
            )
        return new == old

    def _write(self, data: bytes) -> None:
        temporary = self.path.with_name(TEMPORARY_NAME)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
            _fsync_directory(self.path.parent)
        except OSError as err:
            _discard(temporary)
            raise ApprovalStoreError(f"{self.path}: cannot write: {err.strerror}") from err


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_directory(directory: Path) -> None:
    # the rename is durable only once the directory entry is on disk
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(temporary: Path) -> None:
    # already renamed, or never created: then there is nothing to clean up
    with contextlib.suppress(OSError):
        temporary.unlink()


def _fields(approval_list: ApprovalList) -> str:
    return (
        f"version={approval_list.version} service_area={approval_list.service_area} "
        f"entries={len(approval_list.entries)} expires_at={rfc3339(approval_list.expires_at)}"
    )
