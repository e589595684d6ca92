"""The daemon's refresh of the approval list from the utility's server (``[approvals] url``).

Every ``refresh_s`` it asks the server for the list conditionally (``conditional_fetch``: the
ETag and Last-Modified of the last list it accepted, so an unchanged list costs a 304 and
changes nothing), has the store install what arrives out of the daemon's process
(``install_child``: the same checks and atomic write as ``approvals install``), and journals
each outcome: installed version N, unchanged (the list in force again), not modified, refused
(the list or the answer is unusable: bad signature, older version, too large ...) or failed
(the server is down, times out, answers 5xx or another status). After a failure it retries
with exponential backoff, from ``RETRY_FIRST_S`` doubling up to ``refresh_s``, each delay
drawn between half and all of it (jitter: a fleet of chargers that lost the server together
does not return in step); after a refusal it waits the full interval (the same answer would
be refused again). Nothing it does touches the list in force: the daemon's watch puts a newly
installed list in force as after any install, and on every failure the list in force stays.

It runs as one task on the daemon's loop, which it never holds for long: the network I/O is
aiohttp's, the install a child process. The scheduling is pure (``retry_delay_s``,
``Refresher.attempt`` with an injected clock and random source), so tests run it in virtual
time; the composition root builds one only with ``[approvals] url`` set.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.approvals import ApprovalError
from firmware.approvals.conditional_fetch import (
    AnswerRefused,
    Downloaded,
    Validators,
)
from firmware.approvals.durable import discard
from firmware.approvals.install_child import Installed, InstallRefused
from firmware.approvals.view import rfc3339
from firmware.logs import log_event

if TYPE_CHECKING:
    import ssl

    from firmware.approvals.config import ApprovalsConfig
    from firmware.approvals.jws import UtilityKey

logger = logging.getLogger(__name__)

RETRY_FIRST_S = 30.0  # the first retry after a failure; each further failure doubles it
MAX_DOUBLINGS = 16  # far past any refresh_s: the delay is capped there long before
DOWNLOAD_NAME = "approvals-download.tmp"  # in the state directory, beside the installed list

Fetch = Callable[[Validators, Path], Awaitable[Downloaded | None]]
Install = Callable[[Path], Awaitable[Installed]]


class FetchResult(enum.StrEnum):
    INSTALLED = "installed"
    UNCHANGED = "unchanged"  # a 200 with exactly the list installed
    NOT_MODIFIED = "not_modified"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    at: datetime
    result: FetchResult
    version: int | None = None  # installed or unchanged
    reason: str | None = None  # refused or failed
    installed: Installed | None = None  # what the install said, when it ran and succeeded


Journal = Callable[[str, Outcome], None]  # the URL and the outcome, written before logging


def utc_now() -> datetime:
    return datetime.now(UTC)


def retry_delay_s(failures: int, refresh_s: float, draw: float) -> float:
    """The wait after ``failures`` failures in a row: exponential from ``RETRY_FIRST_S``,
    at most ``refresh_s``, times 0.5 + ``draw`` / 2 (``draw`` in [0, 1))."""
    doublings = min(max(failures, 1) - 1, MAX_DOUBLINGS)
    ceiling = min(refresh_s, RETRY_FIRST_S * 2.0**doublings)
    return ceiling * (0.5 + draw / 2)


class Refresher:
    def __init__(
        self,
        url: str,
        refresh_s: float,
        download: Path,
        fetch: Fetch,
        install: Install,
        journal: Journal,
        clock: Callable[[], datetime],
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.url, self.refresh_s, self._download = url, refresh_s, download
        self._fetch, self._install, self._journal = fetch, install, journal
        self._clock, self._draw = clock, draw
        self.validators = Validators()  # of the last list accepted; none: unconditional
        self.failures = 0  # in a row
        self.last: Outcome | None = None
        self.next_at = clock()  # the first attempt at start

    async def run(self) -> None:
        """Attempt at ``next_at``, forever (the daemon cancels it at shutdown)."""
        while True:
            await asyncio.sleep(max(0.0, (self.next_at - self._clock()).total_seconds()))
            await self.attempt()

    async def attempt(self) -> Outcome:
        """One fetch and, for a new list, its install; the outcome, journaled and logged,
        and ``next_at`` set from it."""
        try:
            outcome = await self._fetch_and_install()
        except ApprovalError as err:
            refused = isinstance(err, AnswerRefused | InstallRefused)
            outcome = self._outcome(FetchResult.REFUSED if refused else FetchResult.FAILED,
                                    reason=str(err))  # fmt: skip
        except Exception as err:  # a bug must not end the refresh: counted as a failure
            logger.exception("approvals.fetch_crashed error=%r", err)
            outcome = self._outcome(FetchResult.FAILED, reason=f"internal error: {err!r}")
        finally:
            discard(self._download)
        self._schedule(outcome)
        self._journal(self.url, outcome)
        self._log(outcome)
        return outcome

    def status(self) -> dict[str, Any]:
        """For ``status``: where from, how often, the last fetch and the next attempt."""
        last = self.last
        return {
            "url": self.url,
            "refresh_s": self.refresh_s,
            "last": None if last is None else {
                "at": rfc3339(last.at), "result": last.result.value,
                "version": last.version, "reason": last.reason,
            },
            "next_attempt": rfc3339(self.next_at),
            "failures": self.failures,
        }  # fmt: skip

    async def _fetch_and_install(self) -> Outcome:
        downloaded = await self._fetch(self.validators, self._download)
        if downloaded is None:
            return self._outcome(FetchResult.NOT_MODIFIED)
        installed = await self._install(downloaded.path)
        # only a list accepted identifies what the server has: after a refusal the next
        # request is unconditional again, so a 304 never stands for a list that was refused
        self.validators = downloaded.validators
        result = FetchResult.INSTALLED if installed.changed else FetchResult.UNCHANGED
        return self._outcome(result, version=installed.version, installed=installed)

    def _outcome(self, result: FetchResult, **fields: Any) -> Outcome:
        return Outcome(self._clock(), result, **fields)

    def _schedule(self, outcome: Outcome) -> None:
        self.last = outcome
        if outcome.result is FetchResult.FAILED:
            self.failures += 1
            delay_s = retry_delay_s(self.failures, self.refresh_s, self._draw())
        else:
            self.failures = 0
            delay_s = self.refresh_s
        self.next_at = outcome.at + timedelta(seconds=delay_s)

    def _log(self, outcome: Outcome) -> None:
        level = logging.INFO
        fields: dict[str, object] = {"result": outcome.result.value}
        if outcome.version is not None:
            fields["version"] = outcome.version
        if outcome.reason is not None:
            level, fields["reason"] = logging.WARNING, outcome.reason
        if self.failures:
            fields["failures"] = self.failures
        wait_s = (self.next_at - outcome.at).total_seconds()
        log_event(logger, "approvals.fetch", level, **fields, url=self.url,
                  next_in_s=round(wait_s, 1))  # fmt: skip


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The server must chain to ``ca_file`` (the system's store when None); it loads a file,
    so the daemon calls it in a worker thread."""
    import ssl

    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def refresher_for(
    settings: ApprovalsConfig,
    state_dir: Path,
    keys: Sequence[UtilityKey],
    service_area: str,
    context: ssl.SSLContext,
    journal: Journal,
    clock: Callable[[], datetime] = utc_now,
    draw: Callable[[], float] = random.random,
) -> Refresher:
    """The refresher of ``[approvals] url`` into the store in ``state_dir``: the real fetch
    and install."""
    from firmware.approvals import conditional_fetch, install_child

    url = settings.url
    assert url is not None, "built only with [approvals] url"

    async def fetch(validators: Validators, into: Path) -> Downloaded | None:
        return await conditional_fetch.fetch(
            url, context, settings.fetch_timeout_s, validators, into
        )

    async def install(download: Path) -> Installed:
        return await install_child.install(download, state_dir, keys, service_area)

    return Refresher(url, settings.refresh_s, state_dir / DOWNLOAD_NAME, fetch, install,
                     journal, clock, draw)  # fmt: skip
