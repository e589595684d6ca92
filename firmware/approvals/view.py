"""What the firmware reads of an approval list, whichever form the list has.

Two forms answer the same questions: the list parsed into memory (``approval_list``, what an
install checks) and its SQLite index (``index``, what the daemon and ``approvals show|check``
read once the installed file has been verified again). This module owns what they share:
``Status`` and ``Entry`` (the answer for one ISM), the ``ListView`` protocol the store, the
gate and the CLI read through, ``ListReading`` (the answers derived from ``lookup`` and the
validity dates, written once for both forms) and the service area check.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from firmware.approvals.jws import shown


class Status(enum.StrEnum):
    """What the list says of an ISM (compares equal to its string)."""

    APPROVED = "approved"
    REVOKED = "revoked"
    NOT_LISTED = "not listed"  # never in an Entry: the answer for an ISM the list lacks


@dataclass(frozen=True, slots=True)
class Entry:
    status: Status  # APPROVED or REVOKED
    max_discharge_w: int | None = None  # the utility's cap for this ISM; None: no cap


class ListEntries(Protocol):
    """The entries as far as readers use them: how many, and the one for an ISM."""

    def __len__(self) -> int: ...
    def get(self, ism: str, /) -> Entry | None: ...


class ListView(Protocol):
    """A verified list, parsed or indexed."""

    @property
    def version(self) -> int: ...
    @property
    def issuer(self) -> str: ...
    @property
    def service_area(self) -> str: ...
    @property
    def issued_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def entries(self) -> ListEntries: ...
    def lookup(self, ism: str) -> Entry | None: ...
    def status_of(self, ism: str) -> Status: ...
    def valid_at(self, now: datetime) -> bool: ...
    def validity_problem(self, now: datetime) -> str | None: ...


class ListReading:
    """The answers every form gives alike, from its ``lookup`` and its dates."""

    __slots__ = ()
    version: int
    issued_at: datetime  # aware, UTC
    expires_at: datetime  # aware, UTC, after issued_at

    def lookup(self, ism: str) -> Entry | None:
        raise NotImplementedError

    def status_of(self, ism: str) -> Status:
        entry = self.lookup(ism)
        return Status.NOT_LISTED if entry is None else entry.status

    def valid_at(self, now: datetime) -> bool:
        return self.issued_at <= now < self.expires_at

    def validity_problem(self, now: datetime) -> str | None:
        """Why the list is not in force at ``now``; None when it is."""
        if now < self.issued_at:
            return f"list version {self.version} is not valid before {rfc3339(self.issued_at)}"
        if now >= self.expires_at:
            return f"list version {self.version} expired at {rfc3339(self.expires_at)}"
        return None


def service_area_problem(listed: str, site: str) -> str | None:
    """Why a list for ``listed`` may not be used at a site in ``site``; None when it may."""
    if not site:
        return "[site] service_area is not set"
    if listed != site:
        return f"list is for service area {shown(listed)}, this site is in {shown(site)}"
    return None


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
