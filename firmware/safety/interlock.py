"""The safety interlock: the only path from software to the relays.

It runs its checks in the sampler thread, on every sample, and never waits for the event
loop: when the confirmed pilot leaves C (or D with ventilation), on E, F, a pilot or diode
fault, an RCD trip or a contactor feedback mismatch, it opens both relays at once. The loop
asks it to close a relay; it refuses unless every condition holds at that instant. It keeps
its own latches, so a fault holds even if the loop is slow to hear of it. It does no logging:
it returns what it did and the sampler posts that to the loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from firmware.charger.faults import FaultKind
from firmware.pilot.confirm import PilotChange
from firmware.pilot.levels import PilotState
from firmware.pilot.proximity import Proximity
from hal import (
    SAFE_PILOT,
    Board,
    Contacts,
    FeedbackKind,
    PilotOutput,
    RcdState,
    Relay,
)

MS = 1_000_000
FEEDBACK_TIMEOUT_NS = 250 * MS  # docs/j1772.md "Contactors and other safety inputs"
FEEDBACK_DEBOUNCE_NS = 10 * MS  # a mismatch must persist this long
# The diode check needs PWM (docs/j1772.md "Low-plateau checks"): never close onto a
# vehicle whose diode has not been seen under PWM; a sample that failed the check shows as
# an unconfirmed reading, which also blocks a closing.
DIODE_CHECKED_SAMPLES = 2
DEADMAN_LAPSED = "deadman_lapsed"  # a trip reason: the sampler stalled past the dead-man

_MISMATCH = {
    (Relay.MAIN, False): FaultKind.MAIN_WELDED,
    (Relay.MAIN, True): FaultKind.MAIN_FAILED_TO_CLOSE,
    (Relay.DISCHARGE, False): FaultKind.DISCHARGE_WELDED,
    (Relay.DISCHARGE, True): FaultKind.DISCHARGE_FAILED_TO_CLOSE,
}


def _reason(pilot: PilotState) -> str:
    """A stable lower-case word for a pilot state: pilot_a ... pilot_f, pilot_fault, diode_fault."""
    return f"pilot_{pilot.value.lower()}" if len(pilot.value) == 1 else pilot.value


@dataclass(frozen=True, slots=True)
class Trip:
    """The interlock opened the relays. ``reason`` is a stable word for logs and tests."""

    reason: str
    t_ns: int
    contactor_fault: FaultKind | None = None


class Interlock:
    def __init__(
        self, board: Board, ventilation: bool, now_ns: int, *, sabotaged: bool = False
    ) -> None:
        self._board = board
        self._sabotaged = sabotaged  # TEST ONLY (mock board): trips and refuses nothing
        self._ventilation = ventilation
        self._lock = threading.Lock()
        self._pilot = SAFE_PILOT
        self._commanded = dict.fromkeys(Relay, False)
        self._commanded_at = dict.fromkeys(Relay, now_ns)
        self._mismatch_since: dict[Relay, int | None] = dict.fromkeys(Relay)
        self.confirmed = PilotState.A
        self.rcd = RcdState.CLEAR
        self.latched: set[str] = set()  # clears in A with the RCD clear
        self.permanent: FaultKind | None = None  # contactor faults: never clears
        self.armed_at_ns = now_ns + FEEDBACK_TIMEOUT_NS + 2 * FEEDBACK_DEBOUNCE_NS
        self.trip_count = 0
        self._pwm_samples = 0  # consecutive samples taken under PWM
        self._settled = True
        self.proximity = Proximity.UNMONITORED
        for relay in Relay:
            board.set_relay(relay, False)
        board.set_pilot(SAFE_PILOT)

    # --- called from the event loop --------------------------------------------------------

    @property
    def pilot_output(self) -> PilotOutput:
        return self._pilot

    def set_pilot(self, output: PilotOutput) -> None:
        with self._lock:
            self._pilot = output
            self._board.set_pilot(output)

    def command(self, relay: Relay, closed: bool, now_ns: int) -> bool:
        """Drive one relay. Opening always succeeds; closing only when permitted now."""
        with self._lock:
            if not closed:
                if relay is Relay.MAIN:
                    self._set(Relay.DISCHARGE, False, now_ns)  # discharge never outlives main
                self._set(relay, False, now_ns)
                return True
            if not self._permitted(now_ns) and not self._sabotaged:
                return False
            if relay is Relay.DISCHARGE and not self._main_confirmed_closed():
                return False
            self._set(relay, True, now_ns)
            return True

    def deadman_lapsed(self, now_ns: int) -> Trip | None:
        """The sampler did not toggle the dead-man in time, so the hardware may have dropped
        the relay supply: command both relays open before the next toggle restores it, so
        nothing re-closes by itself and a dropped contact is not read as a failure to close
        (a weld still is: open commanded, contacts still closed)."""
        with self._lock:
            if not any(self._commanded.values()):
                return None
            self._open_all(now_ns)
            self.trip_count += 1
            return Trip(DEADMAN_LAPSED, now_ns)

    def latch_permanent(self, kind: FaultKind, now_ns: int) -> None:
        """A permanent fault from outside the interlock (the record, the RCD self-test)."""
        with self._lock:
            if self.permanent is None:
                self.permanent = kind
            self._open_all(now_ns)

    def open_all(self, now_ns: int) -> None:
        with self._lock:
            self._open_all(now_ns)

    def closed(self, relay: Relay) -> bool:
        return self._commanded[relay]

    # --- called from the sampler thread ----------------------------------------------------

    def evaluate(
        self,
        now_ns: int,
        confirmed: PilotState,
        rcd: RcdState,
        change: PilotChange | None = None,
        *,
        pwm_running: bool = False,
        settled: bool = True,
        proximity: Proximity = Proximity.UNMONITORED,
    ) -> Trip | None:
        """Run every check for one sample; open both relays and report if any fails.

        A pilot fault latches when it is newly confirmed from samples that observed the
        vehicle (not while we drove -12 V or 0 V ourselves). ``pwm_running``: the sample was
        taken under PWM, so the diode check ran on it. ``settled``: no different reading is
        waiting for its confirming sample. ``proximity``: the confirmed PP reading.
        """
        with self._lock:
            self.confirmed, self.rcd, self._settled = confirmed, rcd, settled
            self.proximity = proximity
            self._pwm_samples = self._pwm_samples + 1 if pwm_running else 0
            if change is not None and change.current.is_fault and not change.own_drive:
                self.latched.add(_reason(change.current))
            if rcd is not RcdState.CLEAR:
                self.latched.add(f"rcd_{rcd.value}")
            elif confirmed is PilotState.A:
                self.latched.clear()
            if self._sabotaged:
                return None
            fault = self._supervise_feedback(now_ns)
            if fault is not None and self.permanent is None:
                self.permanent = fault
                self._open_all(now_ns)
                self.trip_count += 1
                return Trip("contactor_mismatch", now_ns, fault)
            why = self._why_not_hold()
            if not any(self._commanded.values()) or not why:
                return None
            self._open_all(now_ns)
            self.trip_count += 1
            return Trip(why, now_ns)

    def armed(self, now_ns: int) -> bool:
        """True once the boot weld check has run its full window."""
        return now_ns >= self.armed_at_ns

    # --- internals (lock held) ----------------------------------------------------------

    def _permitted(self, now_ns: int) -> bool:
        """May the main path close now? (Stricter than staying closed.)"""
        return self._why_not_close(now_ns) == ""

    def _why_not_hold(self) -> str:
        """Empty while a closed main path may stay closed; else the first reason to open it.

        A withdrawn PWM is not one: the vehicle gets 6 s to stop (the controller's timer).
        """
        if self.permanent is not None:
            return self.permanent.value
        if self.latched:
            return sorted(self.latched)[0]
        pilot = self.confirmed
        if pilot is PilotState.D and not self._ventilation:
            return "ventilation_unavailable"
        if not pilot.requests_power:
            return _reason(pilot)
        if not self.proximity.allows_power:
            return f"pp_{self.proximity.value}"  # e.g. the latch release is pressed
        return ""

    def _why_not_close(self, now_ns: int) -> str:
        why = self._why_not_hold()
        if why:
            return why
        if not self.armed(now_ns):
            return "boot_check"
        if not self._pilot.pwm_running:
            return "pwm_off"
        if self._pwm_samples < DIODE_CHECKED_SAMPLES:
            return "diode_unchecked"
        if not self._settled:
            return "pilot_unsettled"
        return ""

    def _main_confirmed_closed(self) -> bool:
        if not self._commanded[Relay.MAIN]:
            return False
        return self._board.read_feedback(Relay.MAIN) in (Contacts.CLOSED, Contacts.UNKNOWN)

    def _set(self, relay: Relay, closed: bool, now_ns: int) -> None:
        if self._commanded[relay] != closed:
            self._commanded[relay] = closed
            self._commanded_at[relay] = now_ns
            self._mismatch_since[relay] = None
        self._board.set_relay(relay, closed)

    def _open_all(self, now_ns: int) -> None:
        self._set(Relay.DISCHARGE, False, now_ns)
        self._set(Relay.MAIN, False, now_ns)

    def _supervise_feedback(self, now_ns: int) -> FaultKind | None:
        caps = self._board.capabilities
        for relay in Relay:
            if caps.feedback(relay) is FeedbackKind.NONE:
                continue
            commanded = self._commanded[relay]
            expected = Contacts.CLOSED if commanded else Contacts.OPEN
            if self._board.read_feedback(relay) is expected:
                self._mismatch_since[relay] = None
                continue
            if now_ns - self._commanded_at[relay] < FEEDBACK_TIMEOUT_NS:
                continue  # the contacts may still be moving
            since = self._mismatch_since[relay]
            if since is None:
                self._mismatch_since[relay] = now_ns
            elif now_ns - since >= FEEDBACK_DEBOUNCE_NS:
                return _MISMATCH[(relay, commanded)]
        return None
