"""Two-sample confirmation of pilot states (rejects one-sample glitches).

A new state is confirmed when two consecutive samples agree on it. The second sample is taken
early (one PWM period after the first) so that detection stays well inside the interlock's
budget; a glitch shorter than that period is still rejected. Pure: the caller passes samples.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware.pilot.levels import PilotState, classify


@dataclass(frozen=True, slots=True)
class PilotChange:
    """A newly confirmed state. ``own_drive``: one of its samples was taken while the EVSE
    itself held the pilot at -12 V or 0 V, so it says nothing about the vehicle."""

    previous: PilotState
    current: PilotState
    t_ns: int
    own_drive: bool = False


class PilotConfirmer:
    def __init__(self, initial: PilotState = PilotState.A) -> None:
        self.confirmed = initial
        self.candidate: PilotState | None = None
        self._own_drive = False

    def feed(
        self, high_mv: int, low_mv: int, t_ns: int, pwm_running: bool, own_drive: bool = False
    ) -> PilotChange | None:
        """Classify one sample; return the change once a new state is confirmed."""
        own_before, self._own_drive = self._own_drive, own_drive
        state = classify(high_mv, low_mv, self.confirmed, pwm_running)
        if state is self.confirmed:
            self.candidate = None
            return None
        if state is not self.candidate:
            self.candidate = state
            return None
        change = PilotChange(self.confirmed, state, t_ns, own_drive or own_before)
        self.confirmed = state
        self.candidate = None
        return change

    @property
    def confirming(self) -> bool:
        """True while a candidate waits for its second sample."""
        return self.candidate is not None
