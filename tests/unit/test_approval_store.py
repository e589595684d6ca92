"""The installed list: every file operation of an install failed in turn (and a crash at each)
leaves the old list or the new one, never a broken one; the list is re-verified at each start
(key removed, expired, damaged, another service area: no list, default deny); rollbacks are
refused across restarts."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from firmware.approvals import ApprovalError
from firmware.approvals.approval_list import Status
from firmware.approvals.index import index_path
from firmware.approvals.install_lock import LOCK_NAME
from firmware.approvals.jws import UtilityKey, sign_es256, utility_key
from firmware.approvals.store import (
    FILE_NAME,
    TEMPORARY_NAME,
    ApprovalRefused,
    ApprovalStore,
    ApprovalStoreError,
)
from hil.utility import new_key, signed_list

AREA = "MOCK-UTILITY-NORTH"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEY = new_key()
ROTATED = new_key()
FILE_OPERATIONS = ("open", "write", "fsync", "replace", "close")


def _key(private: Any = KEY) -> UtilityKey:
    return utility_key(private.public_key(), "test")


def _list(version: int, private: Any = KEY, **fields: Any) -> str:
    fields.setdefault("issued_at", NOW - timedelta(days=1))
    fields.setdefault("expires_at", NOW + timedelta(days=30))
    fields.setdefault("approve", {f"ISM-{version}": 7200})
    return signed_list(private, service_area=AREA, version=version, **fields)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _store(directory: Path, keys: list[UtilityKey] | None = None, **kw: Any) -> ApprovalStore:
    clock: Callable[[], datetime] = kw.pop("clock", lambda: NOW)
    return ApprovalStore(directory, keys or [_key()], kw.pop("area", AREA), clock)


def _index_name(token: str) -> str:
    """The index an install of ``token`` writes: named by the bytes it writes."""
    return index_path(Path(), hashlib.sha256(token.encode() + b"\n").digest()).name


def _on_disk(directory: Path) -> int | None:
    """The version a restarted store finds in force; it must not report a broken file."""
    restarted = _store(directory)
    loaded = restarted.load_installed()
    assert restarted.problem is None, restarted.problem
    return None if loaded is None else loaded.version


class Crash(BaseException):
    """Power lost: nothing after this point runs, no cleanup either."""


class FailAt:
    """Wraps the os functions an install uses; the ``fail_at``-th call raises (a write
    writes half its bytes first: a torn write)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int, error: type) -> None:
        self.calls: list[str] = []
        self.fail_at, self.error = fail_at, error
        for name in FILE_OPERATIONS:
            monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if len(self.calls) - 1 != self.fail_at:
                return real(*args, **kwargs)
            if name == "write":
                real(args[0], bytes(args[1][: len(args[1]) // 2]))
            if name == "close":
                real(*args)  # the descriptor is gone all the same
            if self.error is Crash:
                raise Crash(name)
            raise OSError(errno.EIO, f"injected failure of os.{name}")

        return call


LEFTOVER_CHECKS = range(6, 10)  # the calls that find the install's own temporaries alive


def _trace_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    directory = tmp_path / "trace"
    directory.mkdir()
    with monkeypatch.context() as patch:
        tracer = FailAt(patch, fail_at=-1, error=OSError)
        _store(directory).install(_list(1))
    return tracer.calls


def test_an_install_uses_every_file_operation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _trace_install(tmp_path, monkeypatch)
    # before the lock, the list's temporary file (open, the token, its newline, fsync) and
    # the index's (open; SQLite writes it through its own descriptor; fsync), both held
    # open and locked; under the lock, the leftovers' check finds both alive (open, close
    # each); the index's rename, the directory's fsync, its close; the list's rename, the
    # directory's fsync, its close
    written = ["open", "write", "write", "fsync", "open", "fsync"]
    leftovers = ["open", "close", "open", "close"]
    assert range(len(written), len(written) + len(leftovers)) == LEFTOVER_CHECKS
    index = ["replace", "open", "fsync", "close", "close"]
    jws = ["replace", "open", "fsync", "close", "close"]
    assert calls == written + leftovers + index + jws


@pytest.mark.parametrize("error", [OSError, Crash], ids=["error", "crash"])
def test_failing_each_file_operation_leaves_the_old_or_the_new_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type
) -> None:
    calls = _trace_install(tmp_path, monkeypatch)
    renamed_at = len(calls) - 1 - calls[::-1].index("replace")  # the list's, after the index's
    for k, operation in enumerate(calls):
        directory = tmp_path / f"k{k}"
        directory.mkdir()
        store = _store(directory)
        store.install(_list(5))
        where = f"failing call {k} (os.{operation})"
        caught: BaseException | None = None
        with monkeypatch.context() as patch:
            FailAt(patch, fail_at=k, error=error)
            try:
                store.install(_list(6))
            except (ApprovalStoreError, Crash) as err:
                caught = err
        expected = 5 if k <= renamed_at else 6  # the rename itself failing: still the old
        if caught is None:  # only the leftovers' check may fail harmlessly: it removes nothing
            assert error is OSError and k in LEFTOVER_CHECKS, where
            expected = 6
        assert _on_disk(directory) == expected, where
        if caught is not None and error is OSError:
            assert isinstance(caught, ApprovalStoreError), where
            assert "cannot write" in str(caught), where
            assert store.current is not None and store.current.version == expected, where
            assert not (directory / TEMPORARY_NAME).exists(), where
            assert not list(directory.glob("*.tmp")), where
        # after a crash the next install still succeeds, over any stale temporary file, and
        # removes the stale indexes and temporaries
        seven = _list(7)
        assert _store(directory).install(seven).version == 7, where
        listed = sorted(p.name for p in directory.iterdir())
        assert listed == [_index_name(seven), FILE_NAME, LOCK_NAME], where


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:100])))
    big = _list(1, approve={f"ISM-{n:05d}": n for n in range(500)})
    _store(tmp_path).install(big)
    monkeypatch.undo()
    assert (tmp_path / FILE_NAME).read_text() == big + "\n"
    assert _on_disk(tmp_path) == 1


def test_a_stale_temporary_file_is_ignored_at_start(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(3))
    (tmp_path / TEMPORARY_NAME).write_text(_list(9)[:50])  # a crash mid-write
    assert _on_disk(tmp_path) == 3


# --- start: the installed list is re-verified -----------------------------------------------


def test_a_restart_re_verifies_and_loads_the_installed_list(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(4, revoke=["ISM-X"]))
    restarted = _store(tmp_path)
    assert restarted.current is None, "nothing is in force before load_installed"
    loaded = restarted.load_installed()
    assert loaded is not None and loaded.version == 4 and restarted.problem is None
    assert restarted.status_of("ISM-4") is Status.APPROVED
    assert restarted.status_of("ISM-X") is Status.REVOKED


def test_no_installed_list_is_no_list_without_a_problem(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.load_installed() is None and store.problem is None
    assert store.status_of("ISM-1") is Status.NOT_LISTED


def test_a_removed_key_makes_the_installed_list_void(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(4))
    before = (tmp_path / FILE_NAME).read_bytes()
    restarted = _store(tmp_path, keys=[_key(ROTATED)])
    assert restarted.load_installed() is None and restarted.current is None
    assert restarted.problem is not None
    assert restarted.problem.startswith("installed list refused: unknown utility key")
    assert restarted.status_of("ISM-4") is Status.NOT_LISTED  # default deny
    assert (tmp_path / FILE_NAME).read_bytes() == before, "kept, for when the key returns"


def test_an_expired_installed_list_is_loaded_but_not_in_force_at_start(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(4))
    later = Clock()
    later.now = NOW + timedelta(days=30)
    restarted = _store(tmp_path, clock=later)
    assert restarted.load_installed() is not None and restarted.problem is None
    assert restarted.in_force() is None and restarted.status_of("ISM-4") is Status.NOT_LISTED
    assert restarted.date_problem == "list version 4 expired at 2026-07-01T12:00:00Z"


def test_a_board_whose_clock_is_behind_at_boot_uses_the_list_once_it_is_corrected(
    tmp_path: Path,
) -> None:
    """No RTC: the board boots a year behind, the list is not valid yet by its clock; NTP
    corrects the clock and the list counts at the next question, with no reinstall or
    restart (this project once refused it until one)."""
    _store(tmp_path).install(_list(4))
    clock = Clock()
    clock.now = NOW - timedelta(days=365)
    booted = _store(tmp_path, clock=clock)
    booted.load_installed()
    assert booted.in_force() is None
    assert booted.date_problem == "list version 4 is not valid before 2026-05-31T12:00:00Z"
    clock.now = NOW  # the clock is stepped
    assert booted.in_force() is not None and booted.status_of("ISM-4") is Status.APPROVED
    assert booted.date_problem is None


def test_a_list_published_ahead_waits_for_its_issued_at(tmp_path: Path) -> None:
    """The utility publishes version 5 a day ahead: version 4 stays in force until then,
    and version 5 takes over at its issued_at, without a reload."""
    clock = Clock()
    daemon = _store(tmp_path, clock=clock)
    daemon.install(_list(4))
    ahead = _list(5, issued_at=NOW + timedelta(days=1), expires_at=NOW + timedelta(days=40))
    (tmp_path / "approvals.jws").write_text(ahead + "\n")
    assert daemon.load_installed() is None
    current = daemon.in_force()
    assert current is not None and current.version == 4
    clock.now = NOW + timedelta(days=1, seconds=1)
    current = daemon.in_force()
    assert current is not None and current.version == 5 and daemon.problem is None


def test_a_list_that_expires_while_running_stops_approving(tmp_path: Path) -> None:
    clock = Clock()
    store = _store(tmp_path, clock=clock)
    store.install(_list(4))
    assert store.status_of("ISM-4") is Status.APPROVED
    clock.now = NOW + timedelta(days=30)
    assert store.in_force() is None and store.status_of("ISM-4") is Status.NOT_LISTED


def test_a_damaged_installed_file_is_void_at_start(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(4))
    path = tmp_path / FILE_NAME
    path.write_bytes(path.read_bytes()[:-20])
    restarted = _store(tmp_path)
    assert restarted.load_installed() is None
    assert restarted.problem is not None and restarted.problem.startswith("installed list refused")


def test_a_changed_service_area_makes_the_installed_list_void(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(4))
    restarted = _store(tmp_path, area="MOCK-UTILITY-SOUTH")
    assert restarted.load_installed() is None
    assert restarted.problem == (
        "installed list refused: list is for service area 'MOCK-UTILITY-NORTH', "
        "this site is in 'MOCK-UTILITY-SOUTH'"
    )


def test_no_service_area_configured_refuses_every_list(tmp_path: Path) -> None:
    with pytest.raises(ApprovalRefused, match=r"^\[site\] service_area is not set$"):
        _store(tmp_path, area="").install(_list(1))
    assert list(tmp_path.iterdir()) == []


# --- versions across restarts ---------------------------------------------------------------


def test_a_rollback_is_refused_after_a_restart(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(8))
    restarted = _store(tmp_path)
    with pytest.raises(ApprovalRefused, match="version 7 is older than the installed version 8"):
        restarted.install(_list(7))
    assert restarted.install(_list(9)).version == 9


def test_an_expired_installed_list_still_sets_the_floor(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(8))
    later = Clock()
    later.now = NOW + timedelta(days=31)
    store = _store(tmp_path, clock=later)
    fresh = {"issued_at": later.now, "expires_at": later.now + timedelta(days=1)}
    with pytest.raises(ApprovalRefused, match="older than the installed version 8"):
        store.install(_list(2, **fresh))
    assert store.install(_list(9, **fresh)).version == 9


def test_a_list_no_configured_key_vouches_for_sets_no_floor(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(8))
    rotated = _store(tmp_path, keys=[_key(ROTATED)])
    assert rotated.install(_list(1, private=ROTATED)).version == 1
    assert _store(tmp_path, keys=[_key(ROTATED)]).load_installed() is not None


def test_an_unreadable_installed_file_blocks_installs(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).mkdir()  # reading it fails: a rollback cannot be ruled out
    with pytest.raises(ApprovalStoreError, match="cannot read"):
        _store(tmp_path).install(_list(1))
    assert (tmp_path / FILE_NAME).is_dir()


def test_install_reads_the_floor_from_disk_not_memory(tmp_path: Path) -> None:
    daemon = _store(tmp_path)
    daemon.install(_list(3))
    _store(tmp_path).install(_list(5))  # another process (the CLI) installs a newer list
    with pytest.raises(ApprovalRefused, match="older than the installed version 5"):
        daemon.install(_list(4))


def test_the_rollback_check_reads_the_installed_list_from_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installing over a list reads only the new one: the installed one's version and
    payload come from its index (a million entries took seconds more to read again)."""
    from firmware.approvals import store as store_module

    _store(tmp_path).install(_list(1))
    parsed: list[object] = []
    real = store_module.decode

    def counting(source: Any, sink: int | None = None) -> Any:
        parsed.append(source)
        return real(source, sink)

    monkeypatch.setattr(store_module, "decode", counting)
    _store(tmp_path).install(_list(2))
    assert len(parsed) == 1, "only the new list is read"
    with pytest.raises(ApprovalRefused, match="older than the installed version 2"):
        _store(tmp_path).install(_list(1))
    other = _list(2, approve={"ISM-OTHER": 3300})
    with pytest.raises(ApprovalRefused, match="installed with other content"):
        _store(tmp_path).install(other)
    assert len(parsed) == 3, "each candidate read once, the installed one never"


def test_an_index_without_the_payload_hash_falls_back_to_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index made before it recorded the payload's hash: the installed list is parsed,
    and a rollback is still refused."""
    import sqlite3

    token = _list(2)
    _store(tmp_path).install(token)
    path = index_path(tmp_path, hashlib.sha256((token + "\n").encode()).digest())
    path.chmod(0o644)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE key = 'payload_sha256'")
    with pytest.raises(ApprovalRefused, match="older than the installed version 2"):
        _store(tmp_path).install(_list(1))


# --- the switch by the file's identity, and its confirmation ---------------------------------


def test_a_load_reads_no_list_file_and_its_confirmation_hashes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's switch opens the index the install made for the file as it is (inode,
    size, mtime) and verifies the signature over the digest recorded there; the file itself
    is read afterwards, by ``confirm_installed``."""
    from firmware.approvals import store as store_module

    _store(tmp_path).install(_list(4))
    daemon = _store(tmp_path)
    reads: list[Path] = []
    real_scan = store_module.scan
    monkeypatch.setattr(store_module, "scan", lambda path: reads.append(path) or real_scan(path))
    loaded = daemon.load_installed()
    assert loaded is not None and loaded.version == 4 and reads == []
    assert daemon.confirm_installed() is True and reads == [tmp_path / FILE_NAME]
    assert daemon.confirm_installed() is True and len(reads) == 1, "once per load"


def test_a_file_changed_in_place_under_its_identity_is_caught_by_the_confirmation(
    tmp_path: Path,
) -> None:
    """Same inode, size and mtime, other bytes (damage, or a tool that restores the mtime):
    the switch takes the index, the confirmation finds the file is not what it was built
    from, removes the index and reads the file: its signature no longer verifies, so no
    list is in force (default deny)."""
    _store(tmp_path).install(_list(4))
    path = tmp_path / FILE_NAME
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[-3] = ord("A") if data[-3] != ord("A") else ord("B")  # in the signature
    with path.open("r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    daemon = _store(tmp_path)
    assert daemon.load_installed() is not None, "by its identity, the file looks unchanged"
    assert daemon.confirm_installed() is False
    assert daemon.in_force() is None
    assert daemon.problem is not None and "signature" in daemon.problem
    assert not list(tmp_path.glob("approvals-*.index.sqlite3")), "the index is gone"


def test_an_index_is_not_taken_once_its_key_is_removed(tmp_path: Path) -> None:
    """The switch verifies the signature again over the recorded digest: a list whose key
    is no longer configured is refused without reading the file."""
    _store(tmp_path).install(_list(4))
    other = _store(tmp_path, keys=[utility_key(new_key().public_key(), "other.pem")])
    assert other.load_installed() is None
    assert other.problem is not None and "installed list refused" in other.problem


def _damage_meta(directory: Path, key: str, value: str) -> None:
    import sqlite3

    for path in directory.glob("approvals-*.index.sqlite3"):
        with sqlite3.connect(path) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
        db.close()


@pytest.mark.parametrize("value", ["0" * 64, "00"], ids=["another digest", "a short digest"])
def test_a_damaged_binding_falls_back_to_the_files_own_reading(tmp_path: Path, value: str) -> None:
    """An index whose recorded digest no longer verifies (or cannot be one) is not taken by
    identity: the file is read, verified and its index opened by hash, and the floor of a
    rollback check is the file's own version, never "no floor"."""
    _store(tmp_path).install(_list(3))
    _damage_meta(tmp_path, "signing_sha256", value)
    daemon = _store(tmp_path)
    loaded = daemon.load_installed()
    assert loaded is not None and loaded.version == 3 and daemon.problem is None
    assert daemon.confirm_installed() is True, "nothing loaded by identity: nothing to confirm"
    with pytest.raises(ApprovalRefused, match="version 2 is older than the installed version 3"):
        _store(tmp_path).install(_list(2))


def test_a_disagreement_never_leaves_the_index_in_force_even_if_it_cannot_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file damaged in place under its identity, and the index cannot be removed (a
    read-only file system): the reload after the disagreement reads the file, not the index
    by identity again, so nothing stays in force unconfirmed."""
    _store(tmp_path).install(_list(4))
    path = tmp_path / FILE_NAME
    before, data = path.stat(), bytearray(path.read_bytes())
    data[-3] = ord("A") if data[-3] != ord("A") else ord("B")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    daemon = _store(tmp_path)
    assert daemon.load_installed() is not None
    real_unlink = Path.unlink

    def read_only(self: Path, missing_ok: bool = False) -> None:
        if self.name.endswith(".index.sqlite3"):
            raise OSError(errno.EROFS, "Read-only file system")
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    assert daemon.confirm_installed() is False
    assert daemon.in_force() is None and daemon.status_of("ISM-0001") is Status.NOT_LISTED
    assert daemon.confirm_installed() is True, "nothing left unconfirmed"


def test_an_install_between_the_switch_and_its_confirmation_is_no_disagreement(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _store(tmp_path).install(_list(1))
    daemon = _store(tmp_path)
    assert daemon.load_installed() is not None
    _store(tmp_path).install(_list(2))
    assert daemon.confirm_installed() is True
    assert "approvals.index_disagrees" not in caplog.text
    loaded = daemon.load_installed()  # the watch's next look: the new file
    assert loaded is not None and loaded.version == 2 and daemon.confirm_installed() is True


def test_unsigned_bytes_after_the_signature_are_refused_however_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from firmware.approvals import installed_file

    monkeypatch.setattr(installed_file, "CHUNK_BYTES", 4096)  # the junk chunks away
    store = _store(tmp_path)
    token = _list(1)
    at_a_chunk = " " * (4096 * 20 - len(token))  # the junk starts a chunk of its own
    for tail in (" x", " " * 70_000 + "GARBAGE-not-signed", "\n\nmore", at_a_chunk + "AAAA"):
        with pytest.raises(ApprovalError, match="JWS signature is not base64url"):
            store.install(token + tail)
    assert not (tmp_path / FILE_NAME).exists()
    assert store.install(token + " \n\t").version == 1, "whitespace alone is no part"


def test_a_payload_nested_too_deeply_is_refused_in_one_line(tmp_path: Path) -> None:
    from hil.utility import approval_payload

    data = approval_payload(service_area=AREA, version=1)
    text = json.dumps(data).replace('"entries": []', '"entries": ' + "[" * 3000 + "]" * 3000)
    token = sign_es256(text.encode(), KEY)  # a payload no dict can give
    with pytest.raises(ApprovalError, match="payload is nested too deeply"):
        _store(tmp_path).install(token)
