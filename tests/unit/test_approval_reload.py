"""The daemon's reload (``ApprovalStore.load_installed``): the list in force stays in force while
a new one is verified and when the new one is refused, and is replaced in one step; only a
deleted file takes it away. An install removes the stale indexes and the temporaries of
killed builds, and an unchanged re-install puts a missing index back.

These need no index rebuild (every list here is installed through ``install``, which builds
its index); the rebuild in a child process is tested in tests/integration."""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from firmware.approvals import store as store_module
from firmware.approvals.index import IndexedList, index_path
from firmware.approvals.install_lock import LOCK_NAME
from firmware.approvals.jws import utility_key
from firmware.approvals.store import FILE_NAME, ApprovalStore
from firmware.approvals.view import Status
from firmware.approvals.watch import ApprovalWatch
from hil.utility import new_key, signed_list

AREA = "MOCK-UTILITY-NORTH"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEY = new_key()
STRANGER = new_key()


def _list(version: int, entries: int = 10, private: Any = KEY, **fields: Any) -> str:
    fields.setdefault("issued_at", NOW - timedelta(days=1))
    fields.setdefault("expires_at", NOW + timedelta(days=30))
    approve = {f"ISM-{n:06d}": 7200 + version for n in range(entries)}
    return signed_list(private, service_area=AREA, version=version, approve=approve, **fields)


def _store(directory: Path) -> ApprovalStore:
    return ApprovalStore(directory, [utility_key(KEY.public_key(), "k")], AREA, lambda: NOW)


def _index_of(token: str, directory: Path) -> Path:
    return index_path(directory, hashlib.sha256(token.encode() + b"\n").digest())


@pytest.fixture
def daemon(tmp_path: Path) -> ApprovalStore:
    """A daemon's store with version 1 in force, installed by another store (the CLI)."""
    _store(tmp_path).install(_list(1))
    store = _store(tmp_path)
    loaded = store.load_installed()
    assert isinstance(loaded, IndexedList) and loaded.version == 1
    return store


@pytest.fixture
def fast_switching() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns often: a window of no list would show
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("fast_switching")
def test_a_reload_never_leaves_no_list_in_force(tmp_path: Path) -> None:
    _store(tmp_path).install(_list(1, entries=20_000))
    daemon = _store(tmp_path)
    daemon.load_installed()
    _store(tmp_path).install(_list(2, entries=20_000))
    seen: list[int | None] = []
    loading, done, polled_mid_load = threading.Event(), threading.Event(), threading.Event()
    polls_while_loading = [0]

    def poll() -> None:
        while not done.is_set():
            current = daemon.in_force()
            version = None if current is None else current.version
            if not seen or seen[-1] != version:
                seen.append(version)
            if loading.is_set():
                polls_while_loading[0] += 1
                polled_mid_load.set()

    # the load waits, half-way (its index opened next), until the poller has asked during it:
    # the check is never vacuous, however the threads are scheduled
    open_index = daemon._open_by_identity

    def opened_after_a_poll() -> IndexedList | None:
        polled_mid_load.wait(5)
        return open_index()

    daemon._open_by_identity = opened_after_a_poll  # type: ignore[method-assign]
    poller = threading.Thread(target=poll)
    poller.start()
    loading.set()
    loaded = daemon.load_installed()
    loading.clear()
    deadline = time.monotonic() + 5
    while seen[-1] != 2 and time.monotonic() < deadline:
        time.sleep(0.001)  # until the poller has seen the swap
    done.set()
    poller.join()
    assert loaded is not None and loaded.version == 2
    assert seen == [1, 2], "the old list, then the new one, and never none"
    assert polls_while_loading[0] > 0


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bad signature", "signature does not verify with the utility key"),
        ("unknown key", "unknown utility key"),
        ("damaged", "compact JWS has 2 part(s), expected 3"),
        ("unreadable", "cannot read: Is a directory"),
    ],
)
def test_a_refused_file_leaves_the_list_in_force(
    daemon: ApprovalStore, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, reason: str
) -> None:
    before = daemon.current
    path = tmp_path / FILE_NAME
    head, body, signature = _list(2).split(".")
    if name == "unreadable":
        path.unlink()
        path.mkdir()
    else:
        token = {
            "bad signature": f"{head}.{body}.{signature[:-3]}AAA",
            "unknown key": _list(2, private=STRANGER),
            "damaged": f"{head}.{body}",
        }[name]
        path.write_text(token + "\n")
    with caplog.at_level(logging.WARNING):
        assert daemon.load_installed() is None
    assert daemon.current is before and daemon.in_force() is before
    assert daemon.status_of("ISM-000001") is Status.APPROVED
    assert daemon.problem is not None and daemon.problem.startswith("installed list refused: ")
    assert reason in daemon.problem
    assert any("approvals.installed_refused" in m for m in caplog.messages)


def test_a_deleted_file_takes_the_list_away(daemon: ApprovalStore, tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).unlink()
    assert daemon.load_installed() is None
    assert daemon.current is None and daemon.problem is None
    assert daemon.status_of("ISM-000001") is Status.NOT_LISTED


def test_a_good_file_after_a_refused_one_clears_the_problem(
    daemon: ApprovalStore, tmp_path: Path
) -> None:
    (tmp_path / FILE_NAME).write_text(_list(2, private=STRANGER) + "\n")
    daemon.load_installed()
    assert daemon.problem is not None
    _store(tmp_path).install(_list(3))
    loaded = daemon.load_installed()
    assert loaded is not None and loaded.version == 3 and daemon.problem is None


def test_the_watch_says_the_list_in_force_was_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _store(tmp_path).install(_list(1))
    watch = ApprovalWatch(_store(tmp_path))
    assert watch.check() and watch.store.current is not None
    (tmp_path / FILE_NAME).write_text(_list(2, private=STRANGER) + "\n")
    with caplog.at_level(logging.WARNING):
        assert watch.check()
    assert any(m.startswith("approvals.kept version=1 reason=") for m in caplog.messages)
    (tmp_path / FILE_NAME).unlink()
    with caplog.at_level(logging.WARNING):
        assert watch.check()
    assert 'approvals.none reason="no list installed"' in caplog.messages[-1]


def test_a_file_that_changes_during_a_rebuild_is_refused(
    daemon: ApprovalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _list(2)
    _store(tmp_path).install(token)
    _index_of(token, tmp_path).unlink()
    # the child indexed another file than the one verified here (a newer install)
    monkeypatch.setattr(store_module, "rebuild_index", lambda *args: b"\0" * 32)
    before = daemon.current
    assert daemon.load_installed() is None and daemon.current is before
    assert daemon.problem == (
        f"installed list refused: {tmp_path / FILE_NAME}: changed while it was being verified"
    )


# --- what an install leaves in the state directory ------------------------------------------


def test_an_install_removes_stale_indexes_and_dead_temporaries(tmp_path: Path) -> None:
    one, two = _list(1), _list(2)
    _store(tmp_path).install(one)
    assert _index_of(one, tmp_path).exists()
    (tmp_path / "approvals-index-0011223344556677.tmp").write_bytes(b"a killed build's")
    _store(tmp_path).install(two)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [FILE_NAME, LOCK_NAME, _index_of(two, tmp_path).name]
    )


def test_an_unchanged_reinstall_puts_a_missing_index_back(tmp_path: Path) -> None:
    token = _list(4)
    _store(tmp_path).install(token)
    index = _index_of(token, tmp_path)
    index.unlink()
    again = _list(4)  # the same payload, signed again: another file, the installed one stays
    assert again != token
    _store(tmp_path).install(again)
    assert (tmp_path / FILE_NAME).read_text() == token + "\n"
    assert index.exists() and not _index_of(again, tmp_path).exists()
    loaded = _store(tmp_path).load_installed()
    assert isinstance(loaded, IndexedList) and loaded.path == index
