"""A relay with a mechanical delay, driven through a dead-man watchdog, and its aux contact.

Time is a value: every method takes ``now_ns`` and the model is evaluated lazily, so the
instant the contacts move is exact (command time + delay), whoever asks and however late.
Coil drive = commanded closed AND dead-man alive; contacts follow the coil after the delay.
"""

from __future__ import annotations

import enum
from collections import deque

from hal.contract import Contacts, FeedbackKind


class FeedbackMode(enum.Enum):
    FOLLOW = "FOLLOW"
    STUCK_CLOSED = "STUCK_CLOSED"  # the aux contact reads closed: a welded contactor
    STUCK_OPEN = "STUCK_OPEN"  # the aux contact reads open: failed to close


class RelayModel:
    def __init__(self, delay_ns: int, feedback: FeedbackKind, now_ns: int) -> None:
        self.delay_ns = delay_ns
        self.feedback_kind = feedback
        self.feedback_mode = FeedbackMode.FOLLOW
        self.commanded = False
        # coil transitions (t_ns, energized); starts de-energized, long enough ago to be settled
        self._coil: deque[tuple[int, bool]] = deque([(now_ns - delay_ns - 1, False)], maxlen=64)

    def set_coil(self, now_ns: int, energized: bool) -> None:
        if self._coil[-1][1] != energized:
            self._coil.append((now_ns, energized))

    def contacts_closed(self, now_ns: int) -> bool:
        return self._last_settled(now_ns)[1]

    def contacts_since_ns(self, now_ns: int) -> int:
        """When the contacts reached their present position."""
        return self._last_settled(now_ns)[0] + self.delay_ns

    def _last_settled(self, now_ns: int) -> tuple[int, bool]:
        horizon = now_ns - self.delay_ns
        for t, energized in reversed(self._coil):
            if t <= horizon:
                return t, energized
        return self._coil[0]

    def aux_pin_high(self, now_ns: int) -> bool:
        """The raw feedback input: the aux contact closed (NO follows, NC inverts)."""
        if self.feedback_mode is FeedbackMode.STUCK_CLOSED:
            closed = True
        elif self.feedback_mode is FeedbackMode.STUCK_OPEN:
            closed = False
        else:
            closed = self.contacts_closed(now_ns)
        return closed if self.feedback_kind is not FeedbackKind.NORMALLY_CLOSED else not closed

    def read_feedback(self, now_ns: int) -> Contacts:
        """What the board's input stage reports, given how the aux contact is wired."""
        if self.feedback_kind is FeedbackKind.NONE:
            return Contacts.UNKNOWN
        pin = self.aux_pin_high(now_ns)
        closed = pin if self.feedback_kind is FeedbackKind.NORMALLY_OPEN else not pin
        return Contacts.CLOSED if closed else Contacts.OPEN


class Deadman:
    """A retriggerable watchdog: alive while toggles arrive less than ``timeout_ns`` apart."""

    def __init__(self, timeout_ns: int) -> None:
        self.timeout_ns = timeout_ns
        self.last_kick_ns: int | None = None

    def alive(self, now_ns: int) -> bool:
        return self.last_kick_ns is not None and now_ns - self.last_kick_ns < self.timeout_ns

    def expiry_ns(self) -> int | None:
        return None if self.last_kick_ns is None else self.last_kick_ns + self.timeout_ns
