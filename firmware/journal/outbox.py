"""The OCPP station's outbox: the events for the CSMS, kept in the journal until the CSMS has
answered them, so that neither a CSMS that is away nor a restart loses one.

Each event is a row (sequence, message, payload, sent_at): appended on the loop, taken in
sequence order by the sender, marked sent once the CSMS answered. Bounded at ``limit`` unsent
rows: when full, the oldest *routine* row (a periodic meter sample) goes, logged; an
*essential* row (a J3072 decision or revocation, a transaction's start or end, a connector
status, a dispatch's Responses) is never dropped: the bound is exceeded instead, and said.
Sent rows are kept for the operator's inspection, the newest ``KEEP_SENT``.

Without a journal (it could not be opened) the same queue lives in memory only.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from firmware.journal.store import Journal, JournalError
from firmware.logs import log_event

logger = logging.getLogger(__name__)
KEEP_SENT = 10_000


@dataclass(frozen=True, slots=True)
class Queued:
    seq: int
    message: str  # the OCPP action: "TransactionEvent", "NotifyEvent", ...
    payload: dict[str, Any]  # as sent on the wire (camelCase)
    essential: bool


class Outbox:
    def __init__(self, journal: Journal | None, limit: int) -> None:
        self._journal = journal
        self._limit = limit
        self._memory: deque[Queued] = deque()
        self._next_seq = 1
        self._over_bound_said = False
        self.dropped = 0  # routine events dropped to keep the bound (since start)

    def put(self, message: str, payload: dict[str, Any], essential: bool) -> int:
        """Append one event; its sequence number."""
        text = json.dumps(payload, separators=(",", ":"))
        if self._journal is None:
            return self._put_memory(message, payload, essential)
        with self._journal.transaction() as db:
            (unsent,) = db.execute("SELECT count(*) FROM ocpp_outbox WHERE sent_at IS NULL")
            if unsent[0] >= self._limit:
                self._make_room(db, essential)
            seq = db.execute(
                "INSERT INTO ocpp_outbox (queued_at, message, payload, essential)"
                " VALUES (?, ?, ?, ?)",
                (self._journal.now(), message, text, essential),
            ).lastrowid
        assert seq is not None
        return seq

    def _make_room(self, db: Any, essential: bool) -> None:
        oldest = db.execute(
            "SELECT seq, message FROM ocpp_outbox WHERE sent_at IS NULL AND essential = 0"
            " ORDER BY seq LIMIT 1"
        ).fetchone()
        if oldest is not None:
            db.execute("DELETE FROM ocpp_outbox WHERE seq = ?", (oldest[0],))
            self._said_dropped(oldest[0], oldest[1])
        elif not self._over_bound_said:
            self._over_bound_said = True
            log_event(logger, "ocpp.queue_over_bound", logging.WARNING, limit=self._limit,
                      why="only essential events are queued: none is dropped")  # fmt: skip

    def _said_dropped(self, seq: int, message: str) -> None:
        self.dropped += 1
        log_event(logger, "ocpp.queue_dropped", logging.WARNING, seq=seq, message=message,
                  limit=self._limit, dropped=self.dropped)  # fmt: skip

    def _put_memory(self, message: str, payload: dict[str, Any], essential: bool) -> int:
        if len(self._memory) >= self._limit:
            routine = next((q for q in self._memory if not q.essential), None)
            if routine is not None:
                self._memory.remove(routine)
                self._said_dropped(routine.seq, routine.message)
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        self._memory.append(Queued(seq, message, payload, essential))
        return seq

    def next(self) -> Queued | None:
        """The oldest unsent event."""
        if self._journal is None:
            return self._memory[0] if self._memory else None
        with self._journal.transaction() as db:
            row = db.execute(
                "SELECT seq, message, payload, essential FROM ocpp_outbox"
                " WHERE sent_at IS NULL ORDER BY seq LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        try:
            payload = json.loads(row[2])
        except ValueError as err:
            raise JournalError(f"ocpp_outbox {row[0]}: payload is not JSON") from err
        return Queued(row[0], row[1], payload, bool(row[3]))

    def sent(self, seq: int, result: str) -> None:
        """The CSMS answered ``seq`` (``result``: "accepted" or its CallError)."""
        if self._journal is None:
            if self._memory and self._memory[0].seq == seq:
                self._memory.popleft()
            return
        with self._journal.transaction() as db:
            db.execute("UPDATE ocpp_outbox SET sent_at = ?, result = ? WHERE seq = ?",
                       (self._journal.now(), result, seq))  # fmt: skip
            db.execute(
                "DELETE FROM ocpp_outbox WHERE sent_at IS NOT NULL AND seq <= ?",
                (seq - KEEP_SENT,),
            )
        self._over_bound_said = False

    def unsent(self) -> int:
        if self._journal is None:
            return len(self._memory)
        with self._journal.transaction() as db:
            (row,) = db.execute("SELECT count(*) FROM ocpp_outbox WHERE sent_at IS NULL")
        return int(row[0])
