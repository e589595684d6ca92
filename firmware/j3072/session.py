"""One vehicle's J3072 authorization over time: events and ``now`` in, actions out.

Pure (no I/O, no clock). The decision table (``decision.py``) says whether the vehicle may
discharge; this machine keeps that permission honest while the session lasts
(docs/v2g-ac-profile.md, "The session", steps 5-10):

- a grant authorizes; any later denial (new data, a list that revokes the ISM or expires)
  revokes with the denial's reasons;
- heartbeats (§4.8.1.1), and only they, tell whether the vehicle is there: 10 consecutive
  missed 1 s heartbeats revoke; after that, 3 consecutive on-time heartbeats re-authorize if
  the decision still grants. Both thresholds carry ``JITTER_NS`` of margin: a heartbeat is
  on time within 1.5 s of the previous one, and the loss is declared 10.5 s after the last.
  How the vehicle carries its requests (one TLS connection, or one per request) is its
  business;
- ``inverterStatus = 2`` (sleeping) revokes; waking re-authorizes after 3 heartbeats;
- the EVSE's meter (§4.8.1.2): discharge above the limit in effect (the gate's, with
  ``METER_TOLERANCE`` of it) revokes at once, and the violation holds for the rest of the
  plug-in; discharge while not authorized opens the main contactor, after a 3 s grace
  following a revocation (the vehicle must stop within 3 s);
- a denial or a revocation holds for ``hold_ns`` (config) before a grant can authorize
  again, so a vehicle changing its data cannot cycle the discharge path;
- the pilot leaving C/D (after it was there) revokes; back in C/D, 3 heartbeats resume;
- the EVSE's meter unhealthy (docs/meter.md "Health"): the limits cannot be enforced, so
  nothing authorizes and an authorized session is revoked with the meter's reason; healthy
  again, 3 heartbeats resume;
- the end of the session (PLC link lost, unplug) revokes for good.

Actions: ``Energize`` (the DefaultDERControl.opModEnergize the vehicle sees, and the
permission the discharge relay follows), ``OpenMain`` and ``SessionNote`` (for the journal).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from firmware.j3072.decision import Decision

S = 1_000_000_000
HEARTBEAT_PERIOD_NS = 1 * S  # §4.8.1.1: one DERStatus a second
JITTER_NS = S // 2  # our margin on both thresholds: scheduling and network jitter
HEARTBEAT_LOSS_NS = 10 * HEARTBEAT_PERIOD_NS + JITTER_NS  # 10 consecutive missed
ON_TIME_NS = HEARTBEAT_PERIOD_NS + JITTER_NS  # a heartbeat this soon after the last counts
HEARTBEATS_TO_RESUME = 3  # consecutive and on time
STOP_GRACE_NS = 3 * S  # §4.8.1.2: the PEV must stop within 3 s of a revocation
DISCHARGE_NOISE_W = 50  # the meter reading below which nothing is flowing out
# over the limit means over it by more than a class 1 meter's error (1 %), and never by less
# than the noise floor: a vehicle at its limit is not a violation
METER_TOLERANCE = 0.01
INVERTER_SLEEPING = 2


class Hold(enum.Enum):
    """What keeps a granted session from being authorized, and what lifts it."""

    HEARTBEATS = "heartbeats"  # lifted by 3 good heartbeats
    SLEEPING = "sleeping"  # lifted by a heartbeat with the inverter awake
    VIOLATED = "violated"  # over the limit once: never lifted this plug-in
    PILOT = "pilot"  # out of C/D: lifted back in C/D
    COOLING = "cooling"  # a denial or revocation less than hold_ns ago: lifted by time
    METER = "meter"  # the EVSE's meter cannot be trusted: lifted when it can again


@dataclass(frozen=True, slots=True)
class Energize:
    value: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenMain:
    reason: str


@dataclass(frozen=True, slots=True)
class SessionNote:
    event: str
    detail: str = ""


Action = Energize | OpenMain | SessionNote


class J3072Session:
    def __init__(self, lfdi: str, now_ns: int, hold_ns: int = 0) -> None:
        self.lfdi = lfdi
        self.decision: Decision | None = None
        self.authorized = False
        self.reasons: tuple[str, ...] = ("exchange not complete",)
        self.ended = False
        self._last_heartbeat_ns = now_ns
        self.holds: set[Hold] = set()
        self._good_heartbeats = 0  # since the last revocation
        self._revoked_at_ns: int | None = None
        self._was_in_cd = False
        self._hold_ns = hold_ns
        self._cooling_until_ns = 0
        self._meter_fault: str | None = None

    # --- events ------------------------------------------------------------------------

    def on_decision(self, decision: Decision, now_ns: int) -> list[Action]:
        """A (new) decision: the exchange completed, its data changed, or the list did."""
        self.decision = decision
        actions: list[Action] = [SessionNote("decision", _describe(decision))]
        if self.ended:
            return actions
        if not decision.granted:
            self._cool(now_ns)
            return actions + self._revoke(decision.reasons, now_ns)
        if not self.authorized and not self.holds:
            if self._revoked_at_ns is None:  # the first grant of the session
                self._last_heartbeat_ns = now_ns  # heartbeats are counted from the grant
                actions += self._authorize(now_ns)
            else:  # after a revocation only 3 heartbeats re-authorize (§4.8.1.1)
                actions += self._resume(now_ns)
        elif Hold.METER in self.holds and self._meter_fault is not None:
            self.reasons = (self._meter_fault,)
        elif Hold.COOLING in self.holds and Hold.VIOLATED not in self.holds:
            wait_s = (self._cooling_until_ns - now_ns) / S
            self.reasons = (f"granted, held {wait_s:.1f} s more after a denial or revocation",)
        return actions

    def on_heartbeat(self, inverter_status: int | None, now_ns: int) -> list[Action]:
        on_time = now_ns - self._last_heartbeat_ns <= ON_TIME_NS
        self._last_heartbeat_ns = now_ns
        if not on_time:
            self._good_heartbeats = 0  # "consecutive": a late one starts the count again
        if inverter_status == INVERTER_SLEEPING:
            self.holds.add(Hold.SLEEPING)
            return self._revoke(("the vehicle's inverter is sleeping",), now_ns)
        self.holds.discard(Hold.SLEEPING)
        self._good_heartbeats += 1
        if self._good_heartbeats >= HEARTBEATS_TO_RESUME:
            self.holds.discard(Hold.HEARTBEATS)
        return self._resume(now_ns)

    def on_pilot(self, in_c_or_d: bool, now_ns: int) -> list[Action]:
        """The confirmed pilot entered or left C/D (only leaving after being there counts:
        the exchange itself usually runs in B)."""
        if in_c_or_d:
            self._was_in_cd = True
            self.holds.discard(Hold.PILOT)
            return self._resume(now_ns)
        if not self._was_in_cd:
            return []
        self._was_in_cd = False
        self.holds.add(Hold.PILOT)
        return self._revoke(("the pilot left C/D",), now_ns)

    def on_meter(self, export_w: float, limit_w: int | None, now_ns: int) -> list[Action]:
        """The EVSE's own meter; positive = from the vehicle to the grid. ``limit_w``: the
        limit in effect now (the gate's minimum of every limit that applies)."""
        if export_w <= DISCHARGE_NOISE_W:
            return []
        if self.authorized and limit_w is not None and export_w > over_limit_w(limit_w):
            why = f"discharge {export_w:.0f} W over the {limit_w} W in effect"
            return self.violated(why, now_ns)
        if self.authorized:
            return []
        revoked = self._revoked_at_ns
        if revoked is not None and now_ns < revoked + STOP_GRACE_NS:
            return []
        return [OpenMain(f"discharge {export_w:.0f} W while not authorized")]

    def on_meter_health(self, fault: str | None, now_ns: int) -> list[Action]:
        """The EVSE's meter cannot be trusted (``fault`` says why), or can again (None).
        Without it the discharge limits cannot be enforced (§4.8.1.2)."""
        if fault is None:
            self._meter_fault = None
            if Hold.METER not in self.holds:
                return []
            self.holds.discard(Hold.METER)
            return self._resume(now_ns)
        self._meter_fault = f"the meter is unhealthy: {fault}"
        self.holds.add(Hold.METER)
        if not self.authorized and (self.decision is None or not self.decision.granted):
            return []  # a pending or denied session keeps its own reasons
        return self._revoke((self._meter_fault,), now_ns)

    def violated(self, why: str, now_ns: int) -> list[Action]:
        """A violation: revoked, and never authorized again in this session (the gate
        carries it over to any later session of the same plug-in)."""
        self.holds.add(Hold.VIOLATED)
        return self._revoke((why,), now_ns)  # which keeps the reason even if not authorized

    def end(self, why: str, now_ns: int) -> list[Action]:
        """The session is over (pilot out of C/D, link or TLS lost, unplug)."""
        actions = self._revoke((why,), now_ns)
        self.ended = True
        return actions

    def poll(self, now_ns: int) -> list[Action]:
        if self.authorized and now_ns >= self._last_heartbeat_ns + HEARTBEAT_LOSS_NS:
            self.holds.add(Hold.HEARTBEATS)
            return self._revoke(("10 heartbeats missed",), now_ns)
        if Hold.COOLING in self.holds and now_ns >= self._cooling_until_ns:
            self.holds.discard(Hold.COOLING)
            return self._resume(now_ns)  # the heartbeats' word still counts
        return []

    def next_deadline_ns(self) -> int | None:
        if self.authorized:
            return self._last_heartbeat_ns + HEARTBEAT_LOSS_NS
        return self._cooling_until_ns if Hold.COOLING in self.holds else None

    # --- internals ---------------------------------------------------------------------

    def _resume(self, now_ns: int) -> list[Action]:
        """Authorize again after a revocation: still granted, nothing held, 3 heartbeats."""
        granted = self.decision is not None and self.decision.granted
        if not granted or self.authorized or self.holds or self.ended:
            return []
        if self._good_heartbeats < HEARTBEATS_TO_RESUME:
            return []
        if now_ns - self._last_heartbeat_ns > ON_TIME_NS:
            return []  # the vehicle has gone quiet since: its next heartbeat decides
        return self._authorize(now_ns)

    def _authorize(self, now_ns: int) -> list[Action]:
        self.authorized, self.reasons, self._revoked_at_ns = True, (), None
        return [Energize(True), SessionNote("authorized", _describe(self.decision))]

    def _cool(self, now_ns: int) -> None:
        if self._hold_ns > 0:
            self.holds.add(Hold.COOLING)
            self._cooling_until_ns = now_ns + self._hold_ns

    def _revoke(self, reasons: tuple[str, ...], now_ns: int) -> list[Action]:
        self.reasons = reasons
        if not self.authorized:
            return []
        self.authorized, self._revoked_at_ns, self._good_heartbeats = False, now_ns, 0
        if Hold.PILOT not in self.holds:  # the vehicle pausing its charge is no doubt
            self._cool(now_ns)
        return [Energize(False, reasons), SessionNote("revoked", "; ".join(reasons))]


def over_limit_w(limit_w: int) -> float:
    """The reading above which discharge is over ``limit_w``."""
    return limit_w + max(limit_w * METER_TOLERANCE, DISCHARGE_NOISE_W)


def _describe(decision: Decision | None) -> str:
    if decision is None:
        return ""
    if decision.granted:
        return f"granted ism={decision.ism} limit_w={decision.limit_w}"
    return f"denied ism={decision.ism}: " + "; ".join(decision.reasons)
