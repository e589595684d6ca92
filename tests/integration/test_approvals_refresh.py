"""The daemon's refresh of the approval list against a real HTTPS server on 127.0.0.1 whose
certificate a TEST CA signed: in process with a virtual clock (the real conditional fetch,
the real install in a child process, the real store and journal), and in the running daemon
(``status`` shows what it fetched, and a list about to expire)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from firmware.approvals import conditional_fetch
from firmware.approvals.jws import utility_key
from firmware.approvals.refresh import FetchResult, Outcome, Refresher, refresher_for, tls_context
from firmware.approvals.store import FILE_NAME, ApprovalStore
from firmware.daemon.control_socket import query, render
from firmware.journal.store import Journal
from hil.utility import new_key, public_pem, signed_list
from tests.integration.conftest import StartDaemon
from tests.integration.utility_server import UtilityServer

pytestmark = pytest.mark.integration

AREA = "TEST-AREA-NORTH"
KEY = new_key()


def _list(version: int, key: Any = KEY, **fields: Any) -> str:
    return signed_list(key, service_area=AREA, version=version,
                       approve={"ISM-2025-0001": 5000}, **fields)  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Site:
    """A state directory with version 1 installed, the refresher of ``server`` into it, and
    the journal it writes to."""

    def __init__(self, directory: Path, server: UtilityServer) -> None:
        self.state = directory / "state"
        self.state.mkdir()
        self.keys = [utility_key(KEY.public_key(), "utility.pem")]
        self.v1 = _list(1)  # kept: signed again a second later, its issued_at would differ
        self.store().install(self.v1)
        self.clock = Clock()
        self.journal = Journal.in_state_dir(self.state)
        settings = _settings(server.url, server.ca)

        def journal(url: str, outcome: Outcome) -> None:
            self.journal.record_approval_fetch(None, url, outcome.result.value,
                                               outcome.version, outcome.reason)  # fmt: skip

        self.draw = 0.999  # the longest jitter: a delay is its ceiling
        self.refresher: Refresher = refresher_for(  # virtual time: attempts run one by one
            settings, self.state, self.keys, AREA, tls_context(server.ca), journal,
            self.clock, lambda: self.draw,
        )  # fmt: skip

    def store(self) -> ApprovalStore:
        return ApprovalStore(self.state, self.keys, AREA)

    def attempt(self) -> Outcome:
        return asyncio.run(self.refresher.attempt())

    def installed_version(self) -> int | None:
        loaded = self.store().load_installed()
        return None if loaded is None else loaded.version

    def fetches(self) -> list[tuple[str, int | None, str | None]]:
        return [(r.result, r.version, r.reason) for r in self.journal.approval_fetches(20)][::-1]


def _settings(url: str, ca: Path) -> Any:
    from firmware.approvals.config import ApprovalsConfig

    return ApprovalsConfig(utility_keys=(Path("utility.pem"),), fetch_timeout_s=5.0, url=url,
                           refresh_s=3600, ca_file=ca)  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UtilityServer]:
    made = UtilityServer(tmp_path)
    yield made
    made.stop()


@pytest.fixture
def site(tmp_path: Path, server: UtilityServer) -> Iterator[Site]:
    made = Site(tmp_path, server)
    yield made
    made.journal.close()


def test_a_new_version_is_installed_then_not_modified(site: Site, server: UtilityServer) -> None:
    server.publish(_list(2), '"v2"')
    outcome = site.attempt()
    assert (outcome.result, outcome.version) == (FetchResult.INSTALLED, 2)
    assert site.installed_version() == 2
    assert site.refresher.next_at == outcome.at + timedelta(seconds=3600)
    on_disk = (site.state / FILE_NAME).read_bytes()
    # the next request names what the server said of version 2; it answers 304
    assert site.attempt().result is FetchResult.NOT_MODIFIED
    assert server.requests == [(None, None), ('"v2"', server.last_modified)]
    assert (site.state / FILE_NAME).read_bytes() == on_disk, "a 304 changes nothing"
    assert site.fetches() == [("installed", 2, None), ("not_modified", None, None)]
    assert not (site.state / "approvals-download.tmp").exists()


def test_the_same_list_again_is_unchanged(site: Site, server: UtilityServer) -> None:
    server.publish(site.v1, '"v1"')
    outcome = site.attempt()
    assert (outcome.result, outcome.version) == (FetchResult.UNCHANGED, 1)
    assert site.installed_version() == 1


def test_a_bad_signature_is_refused_and_the_list_in_force_kept(
    site: Site, server: UtilityServer
) -> None:
    before = (site.state / FILE_NAME).read_bytes()
    server.publish(_list(5, key=new_key()), '"forged"')
    outcome = site.attempt()
    assert outcome.result is FetchResult.REFUSED
    assert outcome.reason is not None and outcome.reason.startswith("unknown utility key")
    assert (site.state / FILE_NAME).read_bytes() == before and site.installed_version() == 1
    assert site.fetches() == [("refused", None, outcome.reason)]
    # a refused body is never a validator: the next request is unconditional again
    site.attempt()
    assert server.requests == [(None, None), (None, None)]
    assert site.refresher.failures == 0, "a refusal waits the full interval"
    assert site.refresher.next_at == site.clock.now + timedelta(seconds=3600)


def test_an_older_version_is_refused(site: Site, server: UtilityServer) -> None:
    server.publish(_list(3), '"v3"')
    assert site.attempt().result is FetchResult.INSTALLED
    server.publish(_list(2), '"v2"')
    outcome = site.attempt()
    assert outcome.result is FetchResult.REFUSED
    assert outcome.reason == "version 2 is older than the installed version 3"
    assert site.installed_version() == 3


def test_an_oversized_body_is_refused_unwritten(
    site: Site, server: UtilityServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conditional_fetch, "MAX_JWS_BYTES", 100)
    server.publish(_list(2), '"v2"')
    outcome = site.attempt()
    assert (outcome.result, outcome.reason) == (FetchResult.REFUSED,
                                                "list is larger than 100 bytes")  # fmt: skip
    assert site.installed_version() == 1
    assert not (site.state / "approvals-download.tmp").exists()


def test_a_server_that_is_down_is_retried_with_growing_delays(
    site: Site, server: UtilityServer
) -> None:
    server.down = True
    delays = []
    for _ in range(3):
        outcome = site.attempt()
        assert outcome.result is FetchResult.FAILED and outcome.reason == (
            "HTTP 503 Service Unavailable"
        )
        delays.append(round((site.refresher.next_at - outcome.at).total_seconds()))
    server.stop()  # now nobody listens at all
    outcome = site.attempt()
    assert outcome.result is FetchResult.FAILED and "cannot fetch" in (outcome.reason or "")
    delays.append(round((site.refresher.next_at - outcome.at).total_seconds()))
    assert delays == [30, 60, 120, 240] and site.refresher.failures == 4
    assert site.installed_version() == 1, "the list in force is kept"
    assert [row[0] for row in site.fetches()] == ["failed"] * 4


# --- the running daemon -----------------------------------------------------------------------


def _wait_status(socket: Path, ready: Any, timeout_s: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = query(socket)
        if ready(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def _daemon(start_daemon: StartDaemon, tmp_path: Path, **approvals: Any) -> tuple[Any, Path]:
    pem = tmp_path / "utility.pem"
    pem.write_bytes(public_pem(KEY))
    state = tmp_path / "daemon-state"
    running = start_daemon(
        approvals={"utility_keys": [str(pem)], **approvals},
        site={"service_area": AREA},
        paths={"state_dir": str(state)},
    )
    return running, state


def test_the_daemon_fetches_installs_and_shows_it(
    start_daemon: StartDaemon, tmp_path: Path, server: UtilityServer
) -> None:
    server.publish(_list(4), '"v4"')
    running, state = _daemon(start_daemon, tmp_path, url=server.url, ca_file=str(server.ca),
                             refresh_s=60)  # fmt: skip
    status = _wait_status(state / "control.sock",
                          lambda s: s["approvals"]["version"] == 4)  # fmt: skip
    approvals = status["approvals"]
    assert approvals["version"] == 4 and approvals["in_force"] is True
    refresh = approvals["refresh"]
    assert refresh["last"]["result"] == "installed" and refresh["last"]["version"] == 4
    assert refresh["url"] == server.url and refresh["failures"] == 0
    last_at = datetime.fromisoformat(refresh["last"]["at"])
    assert datetime.fromisoformat(refresh["next_attempt"]) == last_at + timedelta(seconds=60)
    assert "last fetch" in render(status) and "installed version 4" in render(status)
    running.daemon.wait_for("approvals.loaded version=4")
    with Journal.in_state_dir(state) as journal:
        assert [(r.result, r.version) for r in journal.approval_fetches(5)] == [("installed", 4)]
        assert [r.version for r in journal.approval_installs(5)] == [4]


def test_the_daemon_warns_of_an_expiry_without_a_url(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    from firmware.approvals.jws import load_utility_keys

    pem = tmp_path / "utility.pem"
    pem.write_bytes(public_pem(KEY))
    state = tmp_path / "daemon-state"
    state.mkdir()
    now = datetime.now(UTC).replace(microsecond=0)
    # valid 25 h, 1 h left: under a tenth of its validity (2.5 h)
    soon = _list(1, issued_at=now - timedelta(hours=24), expires_at=now + timedelta(hours=1))
    ApprovalStore(state, load_utility_keys([pem]), AREA).install(soon)
    running, _ = _daemon(start_daemon, tmp_path)
    running.daemon.wait_for("approvals.expiring version=1")
    approvals = query(state / "control.sock")["approvals"]
    assert approvals["in_force"] is True and approvals["refresh"] is None
    assert re.fullmatch(r"expires in (59 min|1 h 00 min): a newer list is needed",
                        approvals["expiry_warning"])  # fmt: skip
    assert "WARNING: expires in" in render(query(state / "control.sock"))
    time.sleep(1.0)
    lines = [line for line in running.daemon.lines if "approvals.expiring" in line]
    assert len(lines) == 1, "logged once"
