"""One vehicle's J3072 authorization over time: events and ``now`` in, actions out.

Pure (no I/O, no clock). The decision table (``decision.py``) says whether the vehicle may
discharge; this machine keeps that permission honest while the session lasts
(docs/v2g-ac-profile.md, "The session", steps 5-10):

- a grant authorizes; any later denial (new data, a list that revokes the ISM or expires)
  revokes with the denial's reasons;
- heartbeats: 10 s without a DERStatus (10 missed at 1 s) revokes; after that, 3
  consecutive heartbeats re-authorize if the decision still grants;
- ``inverterStatus = 2`` (sleeping) revokes; waking re-authorizes after 3 heartbeats;
- the EVSE's meter: discharge above the authorized limit revokes at once; discharge
  while not authorized opens the main contactor, after a 3 s grace following a
  revocation (the vehicle must stop within 3 s);
- the pilot leaving C/D (after it was there) revokes; back in C/D, 3 heartbeats resume;
- the vehicle's last TLS connection closing revokes; heartbeats over a new one resume;
- the end of the session (PLC link lost, unplug) revokes for good.

Actions: ``Energize`` (the DefaultDERControl.opModEnergize the vehicle sees, and the
permission the discharge relay follows), ``OpenMain`` and ``SessionNote`` (for the journal).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from firmware.j3072.decision import Decision

S = 1_000_000_000
HEARTBEAT_LOSS_NS = 10 * S  # §4.8.1.1: 10 consecutive missed 1 s heartbeats
HEARTBEATS_TO_RESUME = 3
STOP_GRACE_NS = 3 * S  # §4.8.1.2: the PEV must stop within 3 s of a revocation
DISCHARGE_NOISE_W = 50  # the meter reading below which nothing is flowing out
INVERTER_SLEEPING = 2


class Hold(enum.Enum):
    """What keeps a granted session from being authorized, and what lifts it."""

    HEARTBEATS = "heartbeats"  # lifted by 3 good heartbeats
    SLEEPING = "sleeping"  # lifted by a heartbeat with the inverter awake
    VIOLATED = "violated"  # over the limit once: never lifted this session
    PILOT = "pilot"  # out of C/D: lifted back in C/D
    TLS = "tls"  # no TLS connection: lifted by a heartbeat over a new one


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
    def __init__(self, lfdi: str, now_ns: int) -> None:
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

    # --- events ------------------------------------------------------------------------

    def on_decision(self, decision: Decision, now_ns: int) -> list[Action]:
        """A (new) decision: the exchange completed, its data changed, or the list did."""
        self.decision = decision
        actions: list[Action] = [SessionNote("decision", _describe(decision))]
        if self.ended:
            return actions
        if not decision.granted:
            return actions + self._revoke(decision.reasons, now_ns)
        if not self.authorized and not self.holds:
            self._last_heartbeat_ns = now_ns  # heartbeats are counted from the grant
            actions += self._authorize(now_ns)
        return actions

    def on_heartbeat(self, inverter_status: int | None, now_ns: int) -> list[Action]:
        self._last_heartbeat_ns = now_ns
        self.holds.discard(Hold.TLS)  # it came over a live connection
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

    def on_tls(self, connected: bool, now_ns: int) -> list[Action]:
        """The vehicle's last TLS connection closed (``False``), or a new one opened."""
        if connected:
            return []  # the hold lifts with a heartbeat over it
        self.holds.add(Hold.TLS)
        return self._revoke(("the vehicle's TLS session is gone",), now_ns)

    def on_meter(self, export_w: float, now_ns: int) -> list[Action]:
        """The EVSE's own meter; positive = from the vehicle to the grid."""
        if export_w <= DISCHARGE_NOISE_W:
            return []
        limit = self.decision.limit_w if self.decision is not None else None
        if self.authorized and limit is not None and export_w > limit:
            self.holds.add(Hold.VIOLATED)
            why = f"discharge {export_w:.0f} W over the authorized {limit} W"
            return self._revoke((why,), now_ns)
        if self.authorized:
            return []
        revoked = self._revoked_at_ns
        if revoked is not None and now_ns < revoked + STOP_GRACE_NS:
            return []
        return [OpenMain(f"discharge {export_w:.0f} W while not authorized")]

    def end(self, why: str, now_ns: int) -> list[Action]:
        """The session is over (pilot out of C/D, link or TLS lost, unplug)."""
        actions = self._revoke((why,), now_ns)
        self.ended = True
        return actions

    def poll(self, now_ns: int) -> list[Action]:
        if self.authorized and now_ns >= self._last_heartbeat_ns + HEARTBEAT_LOSS_NS:
            self.holds.add(Hold.HEARTBEATS)
            return self._revoke(("10 heartbeats missed",), now_ns)
        return []

    def next_deadline_ns(self) -> int | None:
        return self._last_heartbeat_ns + HEARTBEAT_LOSS_NS if self.authorized else None

    # --- internals ---------------------------------------------------------------------

    def _resume(self, now_ns: int) -> list[Action]:
        """Authorize again after a revocation: still granted, nothing held, 3 heartbeats."""
        granted = self.decision is not None and self.decision.granted
        if not granted or self.authorized or self.holds or self.ended:
            return []
        if self._good_heartbeats < HEARTBEATS_TO_RESUME:
            return []
        return self._authorize(now_ns)

    def _authorize(self, now_ns: int) -> list[Action]:
        self.authorized, self.reasons, self._revoked_at_ns = True, (), None
        return [Energize(True), SessionNote("authorized", _describe(self.decision))]

    def _revoke(self, reasons: tuple[str, ...], now_ns: int) -> list[Action]:
        self.reasons = reasons
        if not self.authorized:
            return []
        self.authorized, self._revoked_at_ns, self._good_heartbeats = False, now_ns, 0
        return [Energize(False, reasons), SessionNote("revoked", "; ".join(reasons))]


def _describe(decision: Decision | None) -> str:
    if decision is None:
        return ""
    if decision.granted:
        return f"granted ism={decision.ism} limit_w={decision.limit_w}"
    return f"denied ism={decision.ism}: " + "; ".join(decision.reasons)
