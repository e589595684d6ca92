"""``evse-gatekeeper sessions`` over a real journal file: readable lines, ``--json``,
``--limit``, nothing recorded yet, and a broken journal refused in one line with exit 2.

The command runs as ``evse-gatekeeper sessions`` does, through the CLI's own parser and a
real ``Config``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from firmware.daemon.config import Config, parse_config
from firmware.j3072.decision import Decision
from firmware.journal.cli import add_parser, run
from firmware.journal.store import FILE_NAME, Journal

pytestmark = pytest.mark.integration

REASONS = ("not J3072-certified (mfModel='X')", "ISM ISM-2 revoked on the approval list")


def config(state_dir: Path) -> Config:
    return parse_config({"paths": {"state_dir": str(state_dir)}})


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evse-gatekeeper")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["sessions", *argv])


def sessions(
    state_dir: Path, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    code = run(parse(*argv), config(state_dir))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """Two sessions: the first granted and unplugged, the second denied and still plugged in."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    with Journal(state_dir / FILE_NAME) as journal:
        first = journal.open_session("2026-03-01T10:00:00.000+00:00", ev_mac="02:00:00:00:00:01")
        journal.update_session(first, lfdi="AB" * 20, ism="ISM-1", vin="VIN1")
        journal.record_decision(first, "2026-03-01T10:00:09.000+00:00", Decision(True, (), 6600))
        journal.close_session(first, "2026-03-01T11:00:00.000+00:00")
        second = journal.open_session("2026-03-01T12:00:00.000+00:00", ev_mac="02:00:00:00:00:02")
        journal.update_session(second, ism="ISM-2")
        denied = Decision(False, REASONS, None, "ISM-2")
        journal.record_decision(second, "2026-03-01T12:00:09.000+00:00", denied)
    return state_dir


def test_readable_lines_newest_first_with_every_reason(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = sessions(state, capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "session 2: plugged in 2026-03-01T12:00:00.000+00:00, still plugged in",
        "  ev_mac=02:00:00:00:00:02 lfdi=- ism=ISM-2 vin=-",
        "  2026-03-01T12:00:09.000+00:00 denied (ism=ISM-2):",
        *(f"    - {reason}" for reason in REASONS),
        "",
        "session 1: plugged in 2026-03-01T10:00:00.000+00:00, unplugged "
        "2026-03-01T11:00:00.000+00:00",
        f"  ev_mac=02:00:00:00:00:01 lfdi={'AB' * 20} ism=ISM-1 vin=VIN1",
        "  2026-03-01T10:00:09.000+00:00 granted, limit 6600 W (ism=-)",
    ]


def test_json_is_one_array_of_objects(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sessions(state, capsys, "--json")
    assert code == 0
    shown = json.loads(out)
    assert [item["id"] for item in shown] == [2, 1]
    assert shown[0] == {
        "id": 2,
        "plugged_in_at": "2026-03-01T12:00:00.000+00:00",
        "plugged_out_at": None,
        "ev_mac": "02:00:00:00:00:02",
        "lfdi": None,
        "ism": "ISM-2",
        "vin": None,
        "decisions": [
            {
                "at": "2026-03-01T12:00:09.000+00:00",
                "granted": False,
                "limit_w": None,
                "ism": "ISM-2",
                "reasons": list(REASONS),
            }
        ],
        "ended_by": None,
    }
    assert shown[1]["decisions"][0]["granted"] is True
    assert shown[1]["decisions"][0]["limit_w"] == 6600


def test_limit_shows_only_the_newest(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = sessions(state, capsys, "--limit", "1")
    assert out.startswith("session 2:") and "session 1" not in out
    _, out, _ = sessions(state, capsys, "--json", "--limit", "1")
    assert [item["id"] for item in json.loads(out)] == [2]


@pytest.mark.parametrize("bad", ["0", "10001", "-3", "many"])
def test_a_limit_out_of_range_is_bad_usage(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("--limit", bad)
    assert exited.value.code == 2 and "--limit" in capsys.readouterr().err
    assert parse().limit == 20 and parse("--limit", "10000").limit == 10000


def test_no_journal_yet_is_no_sessions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_dir = tmp_path / "never-run"
    assert sessions(state_dir, capsys) == (0, "no sessions\n", "")
    assert sessions(state_dir, capsys, "--json") == (0, "[]\n", "")
    assert not state_dir.exists(), "reading creates nothing"


def test_a_journal_without_sessions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Journal(tmp_path / FILE_NAME) as journal:
        journal.record_fault(None, "main_welded", "no session open")
    assert sessions(tmp_path, capsys) == (0, "no sessions\n", "")
    assert sessions(tmp_path, capsys, "--json") == (0, "[]\n", "")


def test_a_broken_journal_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"garbage, not SQLite\n" * 300)
    for argv in ((), ("--json",)):
        code, out, err = sessions(tmp_path, capsys, *argv)
        assert (code, out) == (2, "")
        assert len(err.splitlines()) == 1
        assert err.startswith("evse-gatekeeper: journal: ") and FILE_NAME in err
