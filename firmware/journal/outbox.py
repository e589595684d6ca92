"""The OCPP station's outbox: the events for the CSMS, kept in the journal until the CSMS has
answered them, so that neither a CSMS that is away nor a restart loses one.

Each event is a row (sequence, message, payload, sent_at): appended on the loop, taken in
sequence order by the sender, marked sent once the CSMS answered. The number of unsent rows
is kept in memory (read once at start), so appending costs one insert and one commit however
long the queue is. Bounded at ``limit`` unsent rows: when full, the oldest *routine* row (a
meter sample, an acknowledgement of something the CSMS asked) goes, logged. An *essential*
row (a J3072 decision or revocation, a transaction's start or end, a connector status) is
kept beyond ``limit``, up to ``ESSENTIAL_FACTOR`` times it; past that the oldest essential
row goes too, logged: the bound holds whatever is sent. docs/ocpp.md "Offline queue".

Sent rows are kept for the operator's inspection, the newest ``KEEP_SENT``. A journal that
fails (a full or failing disk) costs the event, never the caller: ``put`` logs it once and
counts it in ``failed``; the gate and the loop never see the error.

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
ESSENTIAL_FACTOR = 2  # essential rows may fill the queue to twice its limit, never more
NOT_KEPT = (0, "")


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
        self._failed_said = False
        self.dropped = 0  # events dropped to keep the bound (since start)
        self.failed = 0  # events the journal could not take (since start)
        self._unsent = self._count()

    def _count(self) -> int:
        if self._journal is None:
            return 0
        try:
            with self._journal.transaction() as db:
                (row,) = db.execute("SELECT count(*) FROM ocpp_outbox WHERE sent_at IS NULL")
        except JournalError as err:
            self._failed_once("count", err)
            return 0
        return int(row[0])

    def put(self, message: str, payload: dict[str, Any], essential: bool) -> int | None:
        """Append one event; its sequence number, None if it was not kept (the queue is full
        of essential events and it is routine, or the journal failed: said once)."""
        if self._journal is None:
            return self._put_memory(message, payload, essential)
        text = json.dumps(payload, separators=(",", ":"))
        try:
            with self._journal.transaction() as db:
                victim = self._victim(db, essential) if self._unsent >= self._limit else None
                if victim == NOT_KEPT:
                    self._said_dropped(0, message)
                    return None
                if victim is not None:
                    db.execute("DELETE FROM ocpp_outbox WHERE seq = ?", (victim[0],))
                seq = db.execute(
                    "INSERT INTO ocpp_outbox (queued_at, message, payload, essential)"
                    " VALUES (?, ?, ?, ?)",
                    (self._journal.now(), message, text, essential),
                ).lastrowid
        except JournalError as err:
            self._failed_once("put", err)
            return None
        if victim is None:
            self._unsent += 1
        else:
            self._said_dropped(*victim)
        assert seq is not None
        return seq

    def _victim(self, db: Any, essential: bool) -> tuple[int, str] | None:
        """The row that goes to make room (the queue is full): the oldest routine one; for an
        essential event with none, nothing (over the limit) until twice the limit, then the
        oldest of all. ``NOT_KEPT``: the new, routine event is the one that goes."""
        routine = self._oldest(db, "AND essential = 0")
        if routine is not None:
            return routine
        if not essential:
            return NOT_KEPT
        if self._unsent < self._limit * ESSENTIAL_FACTOR:
            self._said_over_bound()
            return None
        return self._oldest(db, "")

    @staticmethod
    def _oldest(db: Any, where: str) -> tuple[int, str] | None:
        row = db.execute(
            f"SELECT seq, message FROM ocpp_outbox WHERE sent_at IS NULL {where}"
            " ORDER BY seq LIMIT 1"
        ).fetchone()
        return (int(row[0]), str(row[1])) if row is not None else None

    def _said_over_bound(self) -> None:
        if not self._over_bound_said:
            self._over_bound_said = True
            log_event(logger, "ocpp.queue_over_bound", logging.WARNING, limit=self._limit,
                      why="only essential events queued: kept up to twice the limit")  # fmt: skip

    def _said_dropped(self, seq: int, message: str) -> None:
        self.dropped += 1
        log_event(logger, "ocpp.queue_dropped", logging.WARNING, seq=seq, message=message,
                  limit=self._limit, dropped=self.dropped)  # fmt: skip

    def _failed_once(self, what: str, err: JournalError) -> None:
        self.failed += what == "put"
        if not self._failed_said:
            self._failed_said = True
            log_event(logger, "ocpp.queue_write_failed", logging.ERROR, action=what,
                      error=str(err), why="the event is lost, the gate unaffected")  # fmt: skip

    def _put_memory(self, message: str, payload: dict[str, Any], essential: bool) -> int | None:
        memory = self._memory
        if len(memory) >= self._limit:
            victim = next((q for q in memory if not q.essential), None)
            if victim is None and not essential:
                self._said_dropped(0, message)
                return None
            if victim is None and len(memory) >= self._limit * ESSENTIAL_FACTOR:
                victim = memory[0]
            if victim is not None:
                memory.remove(victim)
                self._said_dropped(victim.seq, victim.message)
            else:
                self._said_over_bound()
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        memory.append(Queued(seq, message, payload, essential))
        return seq

    def next(self) -> Queued | None:
        """The oldest unsent event (JournalError if the journal cannot say: the sender's
        connection ends and is retried)."""
        if self._journal is None:
            return self._memory[0] if self._memory else None
        with self._journal.transaction() as db:
            row = db.execute(
                "SELECT seq, message, payload, essential FROM ocpp_outbox"
                " WHERE sent_at IS NULL ORDER BY seq LIMIT 1"
            ).fetchone()
        if row is None:
            self._unsent = 0
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
            marked = db.execute(
                "UPDATE ocpp_outbox SET sent_at = ?, result = ? WHERE seq = ? AND sent_at IS NULL",
                (self._journal.now(), result, seq),
            ).rowcount
            db.execute(
                "DELETE FROM ocpp_outbox WHERE sent_at IS NOT NULL AND seq <= ?",
                (seq - KEEP_SENT,),
            )
        self._unsent = max(0, self._unsent - marked)
        self._over_bound_said = False

    def open_transactions(self) -> dict[str, int]:
        """The transactions a TransactionEvent Started was queued for and no Ended (a run that
        ended with a vehicle plugged in), each with the last seqNo queued for it."""
        if self._journal is None:
            return {}
        try:
            with self._journal.transaction() as db:
                rows = db.execute(
                    "SELECT json_extract(payload, '$.transactionInfo.transactionId') AS tx,"
                    " max(json_extract(payload, '$.seqNo')),"
                    " sum(json_extract(payload, '$.eventType') = 'Started'),"
                    " sum(json_extract(payload, '$.eventType') = 'Ended')"
                    " FROM ocpp_outbox WHERE message = 'TransactionEvent' GROUP BY tx"
                ).fetchall()
        except JournalError as err:
            self._failed_once("read", err)
            return {}
        return {str(tx): int(seq) for tx, seq, started, ended in rows if started and not ended}

    def unsent(self) -> int:
        """Unsent events (from memory: no journal access)."""
        return len(self._memory) if self._journal is None else self._unsent
