"""The permanent-fault record: round trip, atomic replacement, damaged records refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.charger.faults import FaultKind
from firmware.fault_store import FaultStore, FaultStoreError, PermanentFault


def test_round_trip_and_clear(tmp_path: Path) -> None:
    store = FaultStore(tmp_path)
    assert store.load() is None
    fault = PermanentFault(FaultKind.MAIN_WELDED, "2026-11-22T03:00:00+00:00")
    store.save(fault)
    assert store.load() == fault
    assert FaultStore(tmp_path).load() == fault, "read back by a new process"
    assert store.clear() is True
    assert store.load() is None and store.clear() is False


def test_save_replaces_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    store = FaultStore(tmp_path)
    store.save(PermanentFault(FaultKind.MAIN_WELDED, "a"))
    store.save(PermanentFault(FaultKind.DISCHARGE_WELDED, "b"))
    assert [p.name for p in tmp_path.iterdir()] == ["inoperative.json"]
    loaded = store.load()
    assert loaded is not None and loaded.kind is FaultKind.DISCHARGE_WELDED


@pytest.mark.parametrize(
    "content", ["{not json", "[]", '{"kind": "teapot", "at": "x"}', '{"at": "x"}']
)
def test_a_damaged_record_is_an_error_not_a_clean_slate(tmp_path: Path, content: str) -> None:
    (tmp_path / "inoperative.json").write_text(content)
    with pytest.raises(FaultStoreError, match="not a fault record"):
        FaultStore(tmp_path).load()


def test_an_unwritable_state_dir_is_an_error(tmp_path: Path) -> None:
    store = FaultStore(tmp_path / "missing")
    with pytest.raises(FaultStoreError, match="cannot write"):
        store.save(PermanentFault(FaultKind.MAIN_WELDED, "x"))
