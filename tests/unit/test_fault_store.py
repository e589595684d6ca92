"""The permanent-fault record: round trip, atomic replacement, damaged records and leftovers of
an interrupted save refused, and a prepared save that needs no new fd and no new disk block."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.charger.faults import FaultKind
from firmware.safety.inoperative import (
    RESERVE_SIZE,
    FaultStore,
    FaultStoreError,
    PermanentFault,
)

REPO = Path(__file__).resolve().parents[2]
FAULT = PermanentFault(FaultKind.MAIN_WELDED, "2026-11-22T03:00:00+00:00")


@pytest.fixture
def prepared(tmp_path: Path) -> Iterator[FaultStore]:
    store = FaultStore(tmp_path)
    store.prepare()
    yield store
    store.close()


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_round_trip_and_clear(tmp_path: Path) -> None:
    store = FaultStore(tmp_path)
    assert store.load() is None
    store.save(FAULT)
    assert store.load() == FAULT
    assert FaultStore(tmp_path).load() == FAULT, "read back by a new process"
    assert store.clear() is True
    assert store.load() is None and store.clear() is False


def test_save_replaces_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    store = FaultStore(tmp_path)
    store.save(PermanentFault(FaultKind.MAIN_WELDED, "a"))
    store.save(PermanentFault(FaultKind.DISCHARGE_WELDED, "b"))
    assert names(tmp_path) == ["inoperative.json"]
    loaded = store.load()
    assert loaded is not None and loaded.kind is FaultKind.DISCHARGE_WELDED


def test_prepare_reserves_a_block_of_zeros_that_is_no_fault(tmp_path: Path) -> None:
    store = FaultStore(tmp_path / "created")
    store.prepare()
    reserve = tmp_path / "created" / "inoperative.reserve"
    inode = reserve.stat().st_ino
    store.prepare()  # idempotent: the same reserve
    assert reserve.read_bytes() == bytes(RESERVE_SIZE) and reserve.stat().st_ino == inode
    assert store.load() is None and FaultStore(reserve.parent).load() is None
    store.close()
    again = FaultStore(reserve.parent)
    again.prepare()  # the next start reuses an unused reserve
    assert reserve.stat().st_ino == inode
    again.close()


def test_a_prepared_save_renames_the_reserve_and_consumes_it(prepared: FaultStore) -> None:
    prepared.save(FAULT)
    assert names(prepared.state_dir) == ["inoperative.json"]
    assert FaultStore(prepared.state_dir).load() == FAULT
    later = PermanentFault(FaultKind.DISCHARGE_WELDED, "later")
    prepared.save(later)  # no reserve left: through a temporary file
    assert names(prepared.state_dir) == ["inoperative.json"]
    assert prepared.load() == later
    prepared.prepare()
    assert names(prepared.state_dir) == ["inoperative.json", "inoperative.reserve"]


def test_a_reserve_removed_under_a_prepared_store_falls_back(prepared: FaultStore) -> None:
    # `faults clear` run while the daemon holds its reserve removes the file it holds
    assert FaultStore(prepared.state_dir).clear() is False
    prepared.save(FAULT)
    assert names(prepared.state_dir) == ["inoperative.json"]
    assert prepared.load() == FAULT


NO_FD_LEFT = """
import errno, os, resource, sys
from pathlib import Path
from firmware.charger.faults import FaultKind
from firmware.safety.inoperative import FaultStore, FaultStoreError, PermanentFault

fault = PermanentFault(FaultKind.MAIN_FAILED_TO_CLOSE, "t")
store, unprepared = FaultStore(Path(sys.argv[1])), FaultStore(Path(sys.argv[2]))
store.prepare()
resource.setrlimit(resource.RLIMIT_NOFILE, (0, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
try:
    os.open(os.devnull, os.O_RDONLY)
    sys.exit("the limit does not bite")
except OSError as err:
    assert err.errno == errno.EMFILE, err
try:
    unprepared.save(fault)
    sys.exit("an unprepared save needed no fd")
except FaultStoreError:
    pass
assert store.load() is None  # finding no record needs no fd either
store.save(fault)
print("saved")
"""


def test_a_prepared_save_needs_no_new_file_descriptor(tmp_path: Path) -> None:
    (tmp_path / "unprepared").mkdir()
    run = subprocess.run(
        [sys.executable, "-c", NO_FD_LEFT, str(tmp_path / "s"), str(tmp_path / "unprepared")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert run.returncode == 0 and run.stdout == "saved\n", run.stderr
    assert FaultStore(tmp_path / "s").load() == PermanentFault(FaultKind.MAIN_FAILED_TO_CLOSE, "t")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount refused: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)]).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(directory: Path) -> None:
    with (directory / "filler").open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(4096))
        except OSError as err:
            assert err.errno == errno.ENOSPC


def test_a_prepared_save_succeeds_on_a_full_filesystem(small_tmpfs: Path) -> None:
    store = FaultStore(small_tmpfs / "state")
    unprepared = FaultStore(small_tmpfs / "unprepared")
    unprepared.state_dir.mkdir()
    try:
        store.prepare()
        fill(small_tmpfs)
        with pytest.raises(FaultStoreError, match="No space left"):
            unprepared.save(FAULT)  # the test bites: a new block is not to be had
        store.save(FAULT)
        assert FaultStore(store.state_dir).load() == FAULT
        with pytest.raises(FaultStoreError, match=r"inoperative\.tmp"):
            unprepared.load()  # and the failed save is not forgotten
    finally:
        store.close()


def test_a_reserve_with_a_record_in_it_is_a_fault(tmp_path: Path) -> None:
    reserve = tmp_path / "inoperative.reserve"
    reserve.write_bytes(bytes(100) + b"{" + bytes(RESERVE_SIZE - 101))
    with pytest.raises(FaultStoreError, match=r"inoperative\.reserve: left by an interrupted"):
        FaultStore(tmp_path).load()
    store = FaultStore(tmp_path)
    with pytest.raises(FaultStoreError, match="interrupted save"):
        store.prepare()  # never zeroed: it is the evidence
    store.close()
    assert reserve.read_bytes()[100:101] == b"{"


@pytest.mark.parametrize("content", [b"", b'{"kind": "main_welded", "at": "x"}\n'])
def test_a_leftover_temporary_record_is_a_fault(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "inoperative.tmp").write_bytes(content)
    with pytest.raises(FaultStoreError, match=r"inoperative\.tmp: left by an interrupted save"):
        FaultStore(tmp_path).load()


@pytest.mark.parametrize(
    "content", ["{not json", "[]", '{"kind": "teapot", "at": "x"}', '{"at": "x"}', "[" * 100000]
)
def test_a_damaged_record_is_an_error_not_a_clean_slate(tmp_path: Path, content: str) -> None:
    (tmp_path / "inoperative.json").write_text(content)
    with pytest.raises(FaultStoreError, match="not a fault record") as raised:
        FaultStore(tmp_path).load()
    assert "\n" not in str(raised.value)


def test_a_record_that_is_not_utf8_is_a_fault(tmp_path: Path) -> None:
    (tmp_path / "inoperative.json").write_bytes(b'{"kind": "main_welded", "at": "\xff"}')
    with pytest.raises(FaultStoreError, match="not valid UTF-8"):
        FaultStore(tmp_path).load()


def test_clear_removes_the_record_the_leftover_and_the_reserve(tmp_path: Path) -> None:
    for name in ("inoperative.json", "inoperative.tmp", "inoperative.reserve"):
        (tmp_path / name).write_bytes(b"x")
    assert FaultStore(tmp_path).clear() is True
    assert names(tmp_path) == []


def test_clearing_only_an_unused_reserve_is_not_a_fault_cleared(prepared: FaultStore) -> None:
    assert prepared.clear() is False
    assert names(prepared.state_dir) == []
    prepared.prepare()
    assert names(prepared.state_dir) == ["inoperative.reserve"]


def test_an_unwritable_state_dir_is_an_error(tmp_path: Path) -> None:
    store = FaultStore(tmp_path / "missing")
    with pytest.raises(FaultStoreError, match="cannot write"):
        store.save(PermanentFault(FaultKind.MAIN_WELDED, "x"))


def unusable_state_dir(tmp_path: Path, how: str) -> tuple[Path, str]:
    """A state directory that is not one, and the strerror it gives."""
    if how == "a file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file", "Not a directory"
    if how == "under a file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "state", "Not a directory"
    if how == "a symlink loop":
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        return tmp_path / "loop", "Too many levels of symbolic links"
    return tmp_path / ("x" * 300), "File name too long"


@pytest.mark.parametrize("how", ["a file", "under a file", "a symlink loop", "a long name"])
def test_an_unusable_state_dir_is_one_line_for_each_operation(tmp_path: Path, how: str) -> None:
    state_dir, reason = unusable_state_dir(tmp_path, how)
    store = FaultStore(state_dir)
    for operation in (store.load, store.clear, store.prepare, lambda: store.save(FAULT)):
        with pytest.raises(FaultStoreError, match=reason) as raised:
            operation()
        assert "\n" not in str(raised.value)


@pytest.mark.parametrize("name", ["inoperative.json", "inoperative.reserve"])
def test_a_directory_in_place_of_a_file_is_a_fault(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(FaultStoreError, match="not a regular file"):
        FaultStore(tmp_path).load()


def test_a_fifo_in_place_of_the_record_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "inoperative.json")
    with pytest.raises(FaultStoreError, match="not a regular file"):
        FaultStore(tmp_path).load()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode 000 file all the same")
def test_an_unreadable_record_is_a_fault(tmp_path: Path) -> None:
    record = tmp_path / "inoperative.json"
    record.write_text("{}")
    record.chmod(0)
    with pytest.raises(FaultStoreError, match="Permission denied"):
        FaultStore(tmp_path).load()


@pytest.mark.parametrize("missing", [False, True], ids=["unsupported", "absent"])
def test_without_fallocate_the_reserve_is_written_with_zeros(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: bool
) -> None:
    def unsupported(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    if missing:
        monkeypatch.delattr(os, "posix_fallocate")
    else:
        monkeypatch.setattr(os, "posix_fallocate", unsupported)
    store = FaultStore(tmp_path)
    store.prepare()
    assert (tmp_path / "inoperative.reserve").read_bytes() == bytes(RESERVE_SIZE)
    store.save(FAULT)
    store.close()
    assert names(tmp_path) == ["inoperative.json"] and FaultStore(tmp_path).load() == FAULT


def test_saves_from_two_threads_leave_one_record_and_no_leftover(prepared: FaultStore) -> None:
    kinds = [FaultKind.MAIN_WELDED, FaultKind.DISCHARGE_WELDED] * 4
    threads = [
        threading.Thread(target=prepared.save, args=(PermanentFault(kind, "t"),)) for kind in kinds
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert names(prepared.state_dir) == ["inoperative.json"]
    loaded = FaultStore(prepared.state_dir).load()
    assert loaded is not None and loaded.kind in kinds
