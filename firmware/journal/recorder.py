"""What the daemon writes to the journal (``firmware.journal.store``): sessions from plug-in to
plug-out with the EV MAC SLAC learned, every relay action with its reason, every fault, and
each approval-list fetch with its outcome (and the install, when it installed one).

Each record is committed before the caller logs the action as done (docs/design.md
"Principles"). The journal is not on the safety path: the relays have already been commanded
through the interlock when a record is written, and a journal that fails is logged once per
failure kind and never stops the charger. A J3072 grant is the exception: it takes effect
only once its record is written (``decision`` returns False otherwise, and the gate denies).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from firmware.j3072.decision import Decision
from firmware.journal.store import ENDED_BY_RESTART, Journal, JournalError
from firmware.logs import log_event

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Recorder:
    def __init__(self, journal: Journal | None) -> None:
        self.journal = journal
        self.session_id: int | None = None
        self._failed: set[str] = set()
        self._relays: dict[str, bool] = {}  # what the journal last recorded of each relay

    @classmethod
    def open(cls, state_dir: Path) -> Recorder:
        """The daemon's journal at start; sessions its death left open are closed, ended by
        the restart (nobody else would close them: the vehicle may have left long ago)."""
        try:
            journal = Journal.in_state_dir(state_dir)
        except JournalError as err:
            log_event(logger, "journal.unavailable", logging.ERROR, error=str(err))
            return cls(None)
        recorder = cls(journal)
        ended = recorder._write("session", lambda j: j.end_open_sessions(None, ENDED_BY_RESTART))
        if ended:
            log_event(logger, "journal.sessions_ended", logging.WARNING,
                      by=ENDED_BY_RESTART, ids=",".join(map(str, ended)))  # fmt: skip
        return recorder

    def plugged(self, present: bool) -> None:
        """Pilot out of A opens a session; back to A closes it."""
        if present and self.session_id is None:
            self.session_id = self._write("session", lambda j: j.open_session(None))
        elif not present and self.session_id is not None:
            session, self.session_id = self.session_id, None
            self._write("session", lambda j: j.close_session(session, None))

    def ev_mac(self, mac: str) -> None:
        session = self.session_id
        if session is not None:
            self._write("session", lambda j: j.update_session(session, ev_mac=mac))

    def identify(self, **fields: str | None) -> None:
        """The session's vehicle: ``lfdi``, ``ism``, ``vin``."""
        session = self.session_id
        if session is not None:
            self._write("session", lambda j: j.update_session(session, **fields))

    def decision(self, decision: Decision) -> bool:
        """Journal a J3072 decision; True only once it is on disk (a grant waits for it)."""
        session = self.session_id
        if session is None or self.journal is None:
            return False
        written = self._write("decision", lambda j: j.record_decision(session, None, decision))
        return written is not None

    def relay(self, relay: str, closed: bool, reason: str) -> None:
        session = self.session_id
        self._relays[relay] = closed
        self._write("relay", lambda j: j.record_relay(None, relay, closed, reason, session))

    def journaled_closed(self, relay: str) -> bool:
        """Whether the last row for ``relay`` says closed (so an opening is owed a row)."""
        return self._relays.get(relay, False)

    def fault(self, kind: str, detail: str) -> None:
        self._write("fault", lambda j: j.record_fault(None, kind, detail))

    def approval_fetch(
        self, url: str, result: str, version: int | None, reason: str | None
    ) -> None:
        self._write(
            "approval_fetch", lambda j: j.record_approval_fetch(None, url, result, version, reason)
        )

    def approval_install(
        self, version: int, issuer: str, service_area: str, expires_at: str, entries: int
    ) -> None:
        self._write("approval_install", lambda j: j.record_approval_install(
            None, version, issuer, service_area, expires_at, entries))  # fmt: skip

    def control(self, function: str, set_by: str) -> None:
        """A control put in effect at run time, and who set it (site owner, CSMS)."""
        session = self.session_id
        self._write("control", lambda j: j.record_control(None, session, function, set_by))

    def close(self) -> None:
        if self.journal is not None:
            self.plugged(False)
            self.journal.close()

    def _write(self, what: str, write: Callable[[Journal], T]) -> T | None:
        if self.journal is None:
            return None
        try:
            result = write(self.journal)
        except (JournalError, ValueError) as err:
            if what not in self._failed:  # once per kind, not once per record
                self._failed.add(what)
                log_event(logger, "journal.write_failed", logging.ERROR, record=what,
                          error=str(err))  # fmt: skip
            return None
        self._failed.discard(what)
        return result
