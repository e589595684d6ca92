"""The permanent-fault record: makes "inoperative" survive a restart or a power cycle.

A welded or failed-to-close contactor, or a failed RCD self-test, is written to
``<state_dir>/inoperative.json`` before it is reported and read at start, so that no later
power-on closes anything until ``evse-gatekeeper faults clear``. Default deny: an unreadable
record counts as a fault, and so does what a save interrupted before its rename left behind.

The safety process must record a fault with the disk full or every fd taken: ``prepare()``
reserves at start a directory fd and a reserve file of zeros, held open; ``save()`` writes the
record into it, fsyncs and renames it: no new fd, no new block (except on copy-on-write
filesystems). Unprepared (the CLI), a save goes through a temporary file.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from firmware.charger.faults import FaultKind
from firmware.errors import GatekeeperError

FILE_NAME = "inoperative.json"
TEMPORARY_NAME = "inoperative.tmp"  # the unprepared save's temporary file
RESERVE_NAME = "inoperative.reserve"
RESERVE_SIZE = 4096  # one block: far more than a record needs
MAX_RECORD_BYTES = 65536  # a record is ~70 bytes; larger is not ours, and reading it is bounded
_CHUNK = 65536
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}
_LEFTOVER = "left by an interrupted save: counts as a fault until `faults clear`"


class FaultStoreError(GatekeeperError):
    """The record, a leftover or the state directory cannot be used (one line, naming it)."""


@dataclass(frozen=True, slots=True)
class PermanentFault:
    kind: FaultKind
    at: str  # ISO 8601 UTC wall-clock time, for the technician


class FaultStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / FILE_NAME
        self._dir_fd: int | None = None
        self._reserve_fd: int | None = None
        # the safety process saves from a thread of its own while others may load: one at a
        # time, so that no one reads or closes the reserve fd under another
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Reserve the directory fd and the reserve file a later save() needs; idempotent.

        Creates the state directory. A reserve holding non-zero bytes is the evidence of an
        interrupted save: it is left as it is and refused (load() counts it as a fault).
        """
        with self._lock:
            if self._reserve_fd is not None:
                return
            try:
                if self._dir_fd is None:
                    self._dir_fd = _open_dir(self.state_dir)
            except OSError as err:
                raise FaultStoreError(f"{self.state_dir}: cannot use: {_why(err)}") from err
            self._reserve_fd = _make_reserve(self._dir_fd, self.state_dir / RESERVE_NAME)

    def close(self) -> None:
        """Give back what prepare() reserved (the reserve file stays for the next start)."""
        with self._lock:
            self._release_reserve()
            if self._dir_fd is not None:
                fd, self._dir_fd = self._dir_fd, None
                os.close(fd)

    def load(self) -> PermanentFault | None:
        """The recorded fault, None when there is none; FaultStoreError (a fault) when the
        record is unreadable or not a record, or an interrupted save left its file behind.

        After prepare(), finding no record needs no new file descriptor.
        """
        with self._lock:
            recorded = self._lexists(FILE_NAME)
            if self._lexists(TEMPORARY_NAME):
                raise FaultStoreError(f"{self.state_dir / TEMPORARY_NAME}: {_LEFTOVER}")
            if self._reserve_dirty():
                raise FaultStoreError(f"{self.state_dir / RESERVE_NAME}: {_LEFTOVER}")
            if not recorded:
                return None
            try:
                raw = self._read(FILE_NAME)
            except OSError as err:
                raise FaultStoreError(f"{self.path}: cannot read: {_why(err)}") from err
            return _parse(self.path, raw)

    def save(self, fault: PermanentFault) -> None:
        """Write the record durably (file and directory fsynced) before returning.

        After prepare() the reserve is written and renamed, and so consumed: the next save
        goes through a temporary file unless prepare() is called again.
        """
        with self._lock:
            body = (json.dumps({"kind": fault.kind.value, "at": fault.at}) + "\n").encode()
            if self._reserve_usable(len(body)):
                try:
                    self._save_into_reserve(body)
                    return
                except OSError:
                    # a second chance: whatever the reserve holds now counts as a fault anyway
                    self._release_reserve()
            self._save_via_temporary(body)

    def clear(self) -> bool:
        """Remove the record, any leftover of an interrupted save and the reserve, then fsync
        the directory; True when a record or a leftover was removed."""
        with self._lock:
            try:
                leftover = self._reserve_dirty()
            except FaultStoreError:
                leftover = True  # unreadable: removed all the same
            removed = [self._unlink(name) for name in (FILE_NAME, TEMPORARY_NAME, RESERVE_NAME)]
            self._release_reserve()  # its file is gone: the next prepare() makes a new one
            if any(removed):
                self._fsync_dir()
            return removed[0] or removed[1] or (removed[2] and leftover)

    # --- the reserve ------------------------------------------------------------------------

    def _reserve_usable(self, size: int) -> bool:
        """The held reserve is still the file under the reserve's name (a `faults clear`
        while the daemon runs removes it) and the record fits in it."""
        if self._reserve_fd is None or size > RESERVE_SIZE:
            return False
        try:
            named = os.stat(RESERVE_NAME, dir_fd=self._dir_fd, follow_symlinks=False)
            held = os.fstat(self._reserve_fd)
        except OSError:
            return False
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def _save_into_reserve(self, body: bytes) -> None:
        fd, dir_fd = self._reserve_fd, self._dir_fd
        assert fd is not None and dir_fd is not None
        if os.pwrite(fd, body, 0) != len(body):
            raise OSError(errno.EIO, "short write")
        os.ftruncate(fd, len(body))
        os.fsync(fd)
        os.rename(RESERVE_NAME, FILE_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        self._release_reserve()
        os.fsync(dir_fd)

    def _release_reserve(self) -> None:
        if self._reserve_fd is not None:
            fd, self._reserve_fd = self._reserve_fd, None
            os.close(fd)

    def _reserve_dirty(self) -> bool:
        """A reserve with any non-zero byte: a save interrupted before its rename."""
        if not self._lexists(RESERVE_NAME):
            return False
        path = self.state_dir / RESERVE_NAME
        try:
            if self._reserve_usable(0):
                assert self._reserve_fd is not None
                return _has_nonzero(self._reserve_fd)  # no new fd
            fd = self._open(RESERVE_NAME, os.O_NOFOLLOW)
            try:
                return _has_nonzero(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise FaultStoreError(f"{path}: cannot read: {_why(err)}") from err

    # --- files by name, relative to the held directory fd once prepared ---------------------

    def _target(self, name: str) -> str | Path:
        """The name relative to the held directory fd once prepared, else the full path."""
        return name if self._dir_fd is not None else self.state_dir / name

    def _lexists(self, name: str) -> bool:
        """Whether anything is at ``name`` (a dangling link too); stat needs no fd."""
        try:
            os.stat(self._target(name), dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise FaultStoreError(f"{self.state_dir / name}: cannot read: {_why(err)}") from err
        return True

    def _open(self, name: str, flags: int = 0) -> int:
        """Open for reading a regular file only: a FIFO would block, a device is not ours."""
        fd = os.open(self._target(name), os.O_RDONLY | os.O_NONBLOCK | flags, dir_fd=self._dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file")
        return fd

    def _read(self, name: str) -> bytes:
        with os.fdopen(self._open(name), "rb") as handle:  # takes the fd, opens no other
            return handle.read(MAX_RECORD_BYTES + 1)

    def _unlink(self, name: str) -> bool:
        try:
            os.unlink(self._target(name), dir_fd=self._dir_fd)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise FaultStoreError(f"{self.state_dir / name}: cannot remove: {_why(err)}") from err
        return True

    def _fsync_dir(self) -> None:
        try:
            fd = self._dir_fd
            if fd is None:
                fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                if fd != self._dir_fd:
                    os.close(fd)
        except OSError as err:
            raise FaultStoreError(f"{self.state_dir}: cannot sync: {_why(err)}") from err

    def _save_via_temporary(self, body: bytes) -> None:
        """Write, fsync, rename, fsync the directory. A temporary file left by a failure stays
        on purpose: load() counts it as a fault, so the fault is not forgotten."""
        temporary = self.state_dir / TEMPORARY_NAME
        try:
            with temporary.open("wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as err:
            raise FaultStoreError(f"{self.path}: cannot write: {_why(err)}") from err
        self._fsync_dir()


def _open_dir(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        path.mkdir(parents=True, exist_ok=True)  # the daemon's start creates the state dir
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def _make_reserve(dir_fd: int, path: Path) -> int:
    """Open (or create) the reserve, allocate RESERVE_SIZE zeros and fsync it; its fd."""
    try:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(RESERVE_NAME, flags, 0o644, dir_fd=dir_fd)
    except OSError as err:
        raise FaultStoreError(f"{path}: cannot reserve: {_why(err)}") from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if _has_nonzero(fd):
            # never zero it: these bytes are what is left of a fault being recorded
            raise FaultStoreError(f"{path}: {_LEFTOVER}")
        _allocate(fd)
        os.fsync(fd)
        os.fsync(dir_fd)
        return fd
    except BaseException as err:
        os.close(fd)
        if isinstance(err, OSError):
            raise FaultStoreError(f"{path}: cannot reserve: {_why(err)}") from err
        raise


def _allocate(fd: int) -> None:
    """Take the reserve's blocks now, so that writing the record later needs none."""
    try:
        os.posix_fallocate(fd, 0, RESERVE_SIZE)
    except (AttributeError, OSError) as err:  # not on every platform nor filesystem
        if isinstance(err, OSError) and err.errno not in _NO_FALLOCATE:
            raise
        if os.pwrite(fd, bytes(RESERVE_SIZE), 0) != RESERVE_SIZE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from err


def _has_nonzero(fd: int) -> bool:
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        if chunk.count(0) != len(chunk):
            return True
        offset += len(chunk)
    return False


def _parse(path: Path, raw: bytes) -> PermanentFault:
    if len(raw) > MAX_RECORD_BYTES:
        raise FaultStoreError(f"{path}: not a fault record: over {MAX_RECORD_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FaultStoreError(f"{path}: not a fault record: not valid UTF-8 ({err})") from err
    try:
        data = json.loads(text)
        return PermanentFault(FaultKind(data["kind"]), str(data["at"]))
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        raise FaultStoreError(f"{path}: not a fault record: {err}") from err


def _why(err: OSError) -> str:
    return err.strerror or str(err)
