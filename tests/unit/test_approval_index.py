"""The SQLite index of a verified list: every entry shape round-trips and every lookup, listed
or not, answers as the parsed list does; an index of another format or for other content is
refused; stale indexes and the temporaries of killed builds are removed, a live build's
temporary is not; a damaged or closed index approves nobody."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware.approvals import index as index_module
from firmware.approvals.approval_list import (
    MAX_INTEGER,
    MAX_ISM_CHARS,
    ApprovalList,
    Entry,
    Status,
    parse_approval_list,
)
from firmware.approvals.index import (
    ApprovalIndexError,
    IndexedList,
    build_index,
    index_path,
    open_index,
    remove_stale,
)
from hil.utility import approval_payload, encode_payload

AREA = "MOCK-UTILITY-NORTH"
ISSUED = datetime(2026, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC)  # fractions survive
SHA = hashlib.sha256(b"the installed file").digest()
ODD_ISMS = ["ISM-é-ü", "ISM-日本", "x" * MAX_ISM_CHARS, "a'b\"c%d_e", "0", "ISM-LAST-\U0001f50c"]


def _parsed(count: int = 3_000) -> ApprovalList:
    """A list with every entry shape: approved with a limit (0 and the largest included),
    approved without one, revoked; plain and unusual ISMs."""
    approve: dict[str, int | None] = {}
    for n in range(count):
        approve[f"ISM-{n:06d}"] = None if n % 7 == 0 else (n * 37) % 20_000
    approve.update({"ISM-ZERO": 0, "ISM-MAX": MAX_INTEGER})
    approve.update({ism: n for n, ism in enumerate(ODD_ISMS)})
    revoke = [f"REV-{n:05d}" for n in range(count // 10)]
    payload = approval_payload(
        service_area=AREA, version=42, approve=approve, revoke=revoke,
        issued_at=ISSUED, expires_at=ISSUED + timedelta(days=30),
        issuer="TEST utility \"quoted\", with\nnewline",
    )  # fmt: skip
    return parse_approval_list(encode_payload(payload))


UNLISTED = ["ISM-999999", "ism-000001", "ISM-00000", "ISM-000001 ", "", "REV-", "ISM-é"]


@pytest.fixture(scope="module")
def parsed() -> ApprovalList:
    return _parsed()


def test_every_entry_and_the_meta_round_trip(tmp_path: Path, parsed: ApprovalList) -> None:
    path = build_index(tmp_path, parsed, SHA)
    assert (
        path == index_path(tmp_path, SHA)
        and path.name == f"approvals-{SHA.hex()[:16]}.index.sqlite3"
    )
    indexed = open_index(tmp_path, SHA)
    for name in ("version", "issuer", "service_area", "issued_at", "expires_at"):
        assert getattr(indexed, name) == getattr(parsed, name), name
    assert len(indexed.entries) == len(parsed.entries)
    for ism, entry in parsed.entries.items():
        assert indexed.lookup(ism) == entry, ism
        assert indexed.entries.get(ism) == entry and indexed.status_of(ism) == entry.status
    for ism in UNLISTED:
        assert indexed.lookup(ism) is None and parsed.lookup(ism) is None, ism
        assert indexed.status_of(ism) is Status.NOT_LISTED
    for moment in (ISSUED - timedelta(seconds=1), ISSUED, ISSUED + timedelta(days=30)):
        assert indexed.valid_at(moment) == parsed.valid_at(moment)
        assert indexed.validity_problem(moment) == parsed.validity_problem(moment)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary left"
    indexed.close()


def test_lookups_share_one_entry_per_status_and_limit(tmp_path: Path) -> None:
    payload = approval_payload(
        service_area=AREA, version=1, approve={"A": 7200, "B": 7200, "C": None, "D": None},
        revoke=["R", "S"],
    )  # fmt: skip
    build_index(tmp_path, parse_approval_list(encode_payload(payload)), SHA)
    indexed = open_index(tmp_path, SHA)
    a, b, c, d, r, s = (indexed.lookup(ism) for ism in "ABCDRS")
    assert a is b and c is d and r is s and a == Entry(Status.APPROVED, 7200)
    assert r == Entry(Status.REVOKED) and c == Entry(Status.APPROVED)


def test_an_index_for_other_content_or_another_format_is_refused(
    tmp_path: Path, parsed: ApprovalList
) -> None:
    path = build_index(tmp_path, parsed, SHA)
    other = hashlib.sha256(b"other").digest()
    with pytest.raises(ApprovalIndexError, match=r"missing$"):
        open_index(tmp_path, other)
    path.rename(index_path(tmp_path, other))
    with pytest.raises(ApprovalIndexError, match=r"made for other content$"):
        open_index(tmp_path, other)
    index_path(tmp_path, other).rename(path)
    _set_meta(path, "format", "0")
    with pytest.raises(ApprovalIndexError, match=r"format '0', expected '2'$"):
        open_index(tmp_path, SHA)
    _set_meta(path, "format", "2")
    _set_meta(path, "issuer", b"\x00")  # a BLOB: not text
    with pytest.raises(ApprovalIndexError, match="damaged meta: not all text"):
        open_index(tmp_path, SHA)
    _set_meta(path, "issuer", "TEST utility")
    _set_meta(path, "expires_at", "soon")
    with pytest.raises(ApprovalIndexError, match="damaged meta"):
        open_index(tmp_path, SHA)
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(ApprovalIndexError, match="not an approval list index"):
        open_index(tmp_path, SHA)


def _set_meta(path: Path, key: str, value: str | bytes) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    connection.close()


def test_a_damaged_or_closed_index_approves_nobody(
    tmp_path: Path, parsed: ApprovalList, caplog: pytest.LogCaptureFixture
) -> None:
    path = build_index(tmp_path, parsed, SHA)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE entries SET status = 9 WHERE ism = 'ISM-000001'")
        connection.execute("UPDATE entries SET max_discharge_w = 5 WHERE ism = 'REV-00001'")
    connection.close()
    indexed = open_index(tmp_path, SHA)
    with caplog.at_level(logging.ERROR):
        assert indexed.lookup("ISM-000001") is None and indexed.lookup("REV-00001") is None
        assert indexed.lookup("ISM-000002") == parsed.lookup("ISM-000002")
        indexed.close()
        assert indexed.lookup("ISM-000002") is None
    assert sum("approvals.index_unreadable" in m for m in caplog.messages) == 3


def test_lookups_from_several_threads_all_answer_right(tmp_path: Path) -> None:
    parsed = _parsed(2_000)
    build_index(tmp_path, parsed, SHA)
    indexed = open_index(tmp_path, SHA)
    isms = sorted(parsed.entries)
    wrong: list[str] = []

    def ask(offset: int) -> None:
        for ism in isms[offset:] + isms[:offset]:
            if indexed.lookup(ism) != parsed.entries[ism]:
                wrong.append(ism)

    threads = [threading.Thread(target=ask, args=(n * 500,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_stale_indexes_and_dead_temporaries_are_removed(
    tmp_path: Path, parsed: ApprovalList
) -> None:
    small = _parsed(10)
    current = build_index(tmp_path, small, SHA)
    stale = [build_index(tmp_path, small, hashlib.sha256(bytes([n])).digest()) for n in range(2)]
    dead = tmp_path / "approvals-index-0123456789abcdef.tmp"
    dead.write_bytes(b"half an index")
    live = tmp_path / "approvals-index-fedcba9876543210.tmp"
    fd = os.open(live, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a build in progress holds its temporary's lock
    others = ["approvals.jws", "approvals.jws.tmp", "journal.sqlite3"]
    for name in others:
        (tmp_path / name).write_bytes(b"not ours to remove")
    try:
        removed = remove_stale(tmp_path, SHA)
    finally:
        os.close(fd)
    assert sorted(removed) == sorted([*stale, dead])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([current.name, live.name, *others])
    assert remove_stale(tmp_path, SHA) == [live], "once its build is gone"


def test_a_temporary_removed_before_its_build_locked_it_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_flock = fcntl.flock

    def cleaned_up_first(fd: int, operation: int) -> None:
        for path in tmp_path.glob("approvals-index-*.tmp"):
            path.unlink()  # as remove_stale would, between the build's open and its lock
        real_flock(fd, operation)

    monkeypatch.setattr(index_module.fcntl, "flock", cleaned_up_first)
    with pytest.raises(ApprovalIndexError, match="cannot write: removed while it was being built"):
        build_index(tmp_path, _parsed(10), SHA)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(index_module, "_fill", full)
    with pytest.raises(ApprovalIndexError, match=r"cannot write: database or disk is full$"):
        build_index(tmp_path, _parsed(10), SHA)
    assert list(tmp_path.iterdir()) == []


def test_an_indexed_list_is_read_only(tmp_path: Path, parsed: ApprovalList) -> None:
    path = build_index(tmp_path, parsed, SHA)
    before = path.read_bytes()
    indexed = IndexedList(path, SHA)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        indexed.entries._connection.execute("DELETE FROM entries")
    indexed.close()
    assert path.read_bytes() == before
