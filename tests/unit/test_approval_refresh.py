"""The refresh's pure parts with a virtual clock: the backoff, what each outcome schedules and
journals, the validators sent, the expiry warning rule, the ``[approvals]`` keys it reads, the
bounded journal of fetches and how ``status`` renders it. No network, no sleeps."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from firmware.approvals.conditional_fetch import AnswerRefused, Downloaded, FetchFailed, Validators
from firmware.approvals.config import ApprovalsConfig, read_approvals
from firmware.approvals.expiry import expiry_warning, warning_from
from firmware.approvals.install_child import Installed, InstallRefused
from firmware.approvals.refresh import FetchResult, Outcome, Refresher, retry_delay_s
from firmware.config.reader import SectionReader
from firmware.daemon.control_socket import render
from firmware.journal import store as journal_store
from firmware.journal.store import Journal
from hil.utility import keygen

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
URL = "https://utility.example/list.jws"


# --- the backoff --------------------------------------------------------------------------------


def test_the_retry_delay_doubles_up_to_the_interval_with_jitter() -> None:
    ceilings = [retry_delay_s(n, 3600, 0.999999) for n in range(1, 10)]
    assert [round(c) for c in ceilings] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert [retry_delay_s(n, 3600, 0.0) for n in (1, 2, 9)] == [15.0, 30.0, 1800.0]
    assert retry_delay_s(10_000, 60, 0.5) == 45.0, "bounded however long the outage"


# --- the refresher with fakes -------------------------------------------------------------------


class Fakes:
    """The server and the install as the refresher sees them, and a virtual clock."""

    def __init__(self, download: Path) -> None:
        self.now = T0
        self.download = download
        self.answers: list[Any] = []  # per attempt: a Downloaded, None (304) or an exception
        self.installs: list[Any] = []  # per install: an Installed or an exception
        self.sent: list[Validators] = []
        self.journaled: list[Outcome] = []

    async def fetch(self, validators: Validators, into: Path) -> Downloaded | None:
        self.sent.append(validators)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        into.write_bytes(b"a list")
        return answer  # type: ignore[no-any-return]

    async def install(self, download: Path) -> Installed:
        assert download == self.download and download.exists()
        answer = self.installs.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    def refresher(self) -> Refresher:
        return Refresher(URL, 3600, self.download, self.fetch, self.install,
                         lambda url, outcome: self.journaled.append(outcome),
                         lambda: self.now, lambda: 0.5)  # fmt: skip


def _installed(version: int, changed: bool = True) -> Installed:
    return Installed(version, "TEST utility", "AREA", "2026-07-01T00:00:00Z", 3, changed)


def _downloaded(path: Path, etag: str) -> Downloaded:
    return Downloaded(path, 6, Validators(etag, "Mon, 01 Jun 2026 00:00:00 GMT"))


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path / "approvals-download.tmp")


def _attempt(refresher: Refresher) -> Outcome:
    return asyncio.run(refresher.attempt())


def test_an_installed_list_sets_the_validators_and_the_next_interval(fakes: Fakes) -> None:
    refresher = fakes.refresher()
    assert refresher.next_at == T0, "the first attempt at start"
    fakes.answers = [_downloaded(fakes.download, '"a"'), None]
    fakes.installs = [_installed(7)]
    outcome = _attempt(refresher)
    assert (outcome.result, outcome.version, outcome.at) == (FetchResult.INSTALLED, 7, T0)
    assert refresher.next_at == T0 + timedelta(hours=1)
    assert not fakes.download.exists(), "the download is removed"
    fakes.now = refresher.next_at
    assert _attempt(refresher).result is FetchResult.NOT_MODIFIED
    assert fakes.sent == [Validators(), Validators('"a"', "Mon, 01 Jun 2026 00:00:00 GMT")]
    assert [o.result for o in fakes.journaled] == ["installed", "not_modified"]
    assert refresher.status() == {
        "url": URL, "refresh_s": 3600, "failures": 0,
        "last": {"at": "2026-06-01T13:00:00Z", "result": "not_modified", "version": None,
                 "reason": None},
        "next_attempt": "2026-06-01T14:00:00Z",
    }  # fmt: skip


def test_the_list_in_force_again_is_unchanged(fakes: Fakes) -> None:
    fakes.answers, fakes.installs = [_downloaded(fakes.download, '"a"')], [_installed(7, False)]
    assert _attempt(fakes.refresher()).result is FetchResult.UNCHANGED


def test_a_refused_list_keeps_no_validator_and_waits_the_interval(fakes: Fakes) -> None:
    refresher = fakes.refresher()
    fakes.answers = [_downloaded(fakes.download, '"bad"'), _downloaded(fakes.download, '"x"')]
    fakes.installs = [InstallRefused("signature does not verify"), _installed(8)]
    outcome = _attempt(refresher)
    assert (outcome.result, outcome.reason) == (FetchResult.REFUSED,
                                                "signature does not verify")  # fmt: skip
    assert refresher.next_at == T0 + timedelta(hours=1) and refresher.failures == 0
    _attempt(refresher)
    assert fakes.sent == [Validators(), Validators()], "the refused body's ETag is not sent"


def test_failures_back_off_and_a_success_resets(fakes: Fakes) -> None:
    refresher = fakes.refresher()
    fakes.answers = [FetchFailed("HTTP 503"), FetchFailed("cannot fetch: refused"),
                     AnswerRefused("list is larger than 9 bytes"),
                     FetchFailed("HTTP 502"), _downloaded(fakes.download, '"a"')]  # fmt: skip
    fakes.installs = [_installed(2)]
    waits = []
    for _ in range(5):
        outcome = _attempt(refresher)
        waits.append((outcome.result.value, (refresher.next_at - outcome.at).total_seconds()))
        fakes.now = refresher.next_at
    # jitter 0.5 draws three quarters of each ceiling; a refusal neither counts nor resets
    assert waits == [("failed", 22.5), ("failed", 45.0), ("refused", 3600.0),
                     ("failed", 22.5), ("installed", 3600.0)]  # fmt: skip
    assert refresher.failures == 0 and refresher.validators.etag == '"a"'


def test_a_bug_in_an_attempt_is_a_failure_not_the_end(
    fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    refresher = fakes.refresher()
    fakes.answers = [RuntimeError("boom")]
    with caplog.at_level(logging.ERROR):
        outcome = _attempt(refresher)
    assert outcome.result is FetchResult.FAILED and outcome.reason is not None
    assert "boom" in outcome.reason and refresher.failures == 1
    assert "approvals.fetch_crashed" in caplog.text


# --- the expiry warning -------------------------------------------------------------------------


def test_a_list_warns_for_the_lesser_of_a_day_and_a_tenth_of_its_validity() -> None:
    month, day = T0 + timedelta(days=30), T0 + timedelta(days=1)
    assert warning_from(T0, month) == month - timedelta(hours=24)
    assert warning_from(T0, day) == day - timedelta(hours=2.4)
    assert expiry_warning(T0, month, month - timedelta(hours=25)) is None
    assert expiry_warning(T0, month, month - timedelta(hours=3, minutes=5)) == (
        "expires in 3 h 05 min: a newer list is needed"
    )
    assert expiry_warning(T0, day, day - timedelta(seconds=30)) == (
        "expires in under a minute: a newer list is needed"
    )
    assert expiry_warning(T0, day, day) is None, "expired: out of force, not a warning"


# --- the config ---------------------------------------------------------------------------------


def _read(table: dict[str, Any]) -> tuple[ApprovalsConfig, list[str]]:
    problems: list[str] = []
    return read_approvals(SectionReader("approvals", table, problems)), problems


def test_the_refresh_keys_are_read_and_checked(tmp_path: Path) -> None:
    _, pem = keygen(tmp_path / "keys")
    keys = [str(pem)]
    config, problems = _read({"utility_keys": keys, "url": URL, "refresh_s": 600})
    assert problems == [] and (config.url, config.refresh_s, config.ca_file) == (URL, 600, None)
    assert _read({})[0] == ApprovalsConfig(), "no url: no refresh"
    assert ApprovalsConfig().refresh_s == 3600
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    _, problems = _read({"utility_keys": keys, "url": "http://utility.example/l.jws",
                         "refresh_s": 5, "ca_file": str(junk)})  # fmt: skip
    assert problems == [
        "approvals.url: must be an https:// URL, got 'http://utility.example/l.jws'",
        "approvals.refresh_s: must be between 60 and 86400, got 5",
        f"approvals.ca_file: {junk}: not a PEM CA bundle (NO_CERTIFICATE_OR_CRL_FOUND)",
    ]
    _, problems = _read({"url": "https://user:pw@utility.example/", "ca_file": "/nonexistent"})
    assert problems == [
        "approvals.url: must not carry credentials (they would be logged)",
        "approvals.ca_file: /nonexistent: cannot read: No such file or directory",
    ]
    _, problems = _read({"url": URL})
    assert problems == ["approvals.url: needs utility_keys to verify what it fetches"]
    _, problems = _read({"utility_keys": keys, "url": "https:///no-host"})
    assert problems == ["approvals.url: has no host"]


# --- the journal --------------------------------------------------------------------------------


def test_the_journal_keeps_only_the_newest_fetches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_store, "MAX_APPROVAL_FETCHES", 3)
    with Journal(tmp_path / "j.sqlite3", lambda: T0) as journal:
        for n in range(5):
            journal.record_approval_fetch(None, URL, "failed", None, f"HTTP 50{n}")
        journal.record_approval_fetch(None, URL, "installed", 9, None)
        rows = journal.approval_fetches(10)
    assert [(r.result, r.version, r.reason) for r in rows] == [
        ("installed", 9, None),
        ("failed", None, "HTTP 504"),
        ("failed", None, "HTTP 503"),
    ]
    with pytest.raises(ValueError, match="CHECK constraint"), Journal(tmp_path / "j.sqlite3") as j:
        j.record_approval_fetch(None, URL, "maybe", None, None)


def test_a_journal_of_the_previous_schema_gains_the_fetches(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # schema 1 as a previous firmware left it
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        for statement in journal_store.MIGRATIONS[0]:
            db.execute(statement)
    with Journal(path, lambda: T0) as journal:
        journal.record_approval_fetch(None, URL, "not_modified", None, None)
        assert journal.approval_fetches(1)[0].at == "2026-06-01T12:00:00.000+00:00"


# --- status -------------------------------------------------------------------------------------


def test_status_shows_the_last_fetch_the_next_attempt_and_the_warning() -> None:
    approvals = {
        "version": 3, "issuer": "U", "entries": 2, "in_force": True,
        "expires_at": "2026-06-02T00:00:00Z", "problem": None,
        "expiry_warning": "expires in 3 h 05 min: a newer list is needed",
        "refresh": {"url": URL, "refresh_s": 3600, "failures": 2,
                    "last": {"at": "2026-06-01T12:00:00Z", "result": "failed", "version": None,
                             "reason": "HTTP 503 Service Unavailable"},
                    "next_attempt": "2026-06-01T12:01:00Z"},
    }  # fmt: skip
    text = render({"approvals": approvals})
    assert "               WARNING: expires in 3 h 05 min: a newer list is needed" in text
    assert f"               refresh: {URL} every 3600 s" in text
    assert "last fetch 2026-06-01T12:00:00Z: failed: HTTP 503 Service Unavailable" in text
    assert "next attempt 2026-06-01T12:01:00Z (a retry after 2 failures in a row)" in text
    approvals["refresh"] = None
    assert "refresh: off (no [approvals] url)" in render({"approvals": approvals})
