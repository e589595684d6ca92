"""The J3072 gate on the event loop: which vehicle this plug-in session is, what the decision
table says of it, and whether the discharge path may close.

It binds one vehicle per plug-in (by LFDI; with a PLC link, only the SLAC-matched vehicle on
the cable, ``PeerCheck``) and runs its ``J3072Session``. A violation (discharge over the
limit in effect, or while not authorized) is kept for the plug-in, across a daemon restart
too (``held``): a session that a lost link or a re-pairing starts later in the same plug-in
begins violated, and only the pilot showing the vehicle unplugged (state A) clears it. It
decides once the profile's exchange is complete (site limits read, PEV data PUT, controls
read, then every Response in or the first heartbeat) and again whenever an input changes:
the vehicle's data or Responses, a changed control's Responses falling due, or what the
approval list says of its ISM (asked on every poll, so a new list or an expiry counts within
the loop's period), or the clock's first synchronization since boot where the site requires
it (docs/time.md). It hands ``opModEnergize`` to the 2030.5 service and journals every
decision, revocation and re-authorization *before* acting on it: a grant the journal cannot
record is not a grant.

It does not drive a relay: ``authorized`` is one of the discharge relay's conditions, which
the composition root applies through the interlock (with main closed and the pilot in C/D),
and ``drain_open_main`` hands it the reasons to open the main contactor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from firmware.approvals.policy import ApprovalPolicy, PolicyKind
from firmware.j3072.config import J3072Config
from firmware.j3072.decision import (
    DEFAULT_POLICY,
    NO_VALID_LIST,
    Approval,
    Decision,
    DecisionInputs,
    decide,
    mapped,
)
from firmware.j3072.held import HeldViolation
from firmware.j3072.peer import PeerCheck
from firmware.j3072.session import (
    DISCHARGE_NOISE_W,
    INVERTER_SLEEPING,
    STOP_GRACE_NS,
    Action,
    Energize,
    Hold,
    J3072Session,
    OpenMain,
    SessionNote,
)
from firmware.logs import log_event
from firmware.pilot.levels import PilotState
from firmware.sep2.config import SiteConfig
from firmware.sep2.der import DERCapability, DERSettings
from firmware.sep2.der_status import DERAvailability, DERStatus
from firmware.sep2.device import DeviceInformation, PowerStatus
from firmware.sep2.functions import Mode
from firmware.sep2.response import STATUS_RECEIVED, STATUS_STARTED
from firmware.sep2.site import SessionProgram, watts
from firmware.sep2.store import (
    PevEvent,
    PevRecord,
    ResourcePut,
    ResponsePosted,
    SiteRead,
    SiteReadBy,
)

if TYPE_CHECKING:
    from firmware.approvals.store import ApprovalStore
    from firmware.sep2.service import Sep2Service

logger = logging.getLogger(__name__)
NOT_REREAD = "awake, but has not re-read its controls since it slept (§4.8.3)"

PEV_DATA = ("device_information", "der_capability", "der_settings", "der_availability",
            "power_status")  # fmt: skip
# a control changed at run time: its "received" and "started" Responses are due this long
# after it was published (five of the profile's 1 s polls, §4.1.4); missing then, they revoke
RESPONSES_DUE_NS = 5_000_000_000
METER_BLIND = "the meter cannot show that discharge stopped"  # why main opens for it
MAX_FOLLOWED = 16  # changes of one mode still being followed at once, looked back through


class DecisionJournal(Protocol):
    """Where decisions go before they take effect (``firmware.journal.recorder.Recorder``)."""

    def decision(self, decision: Decision) -> bool: ...

    def identify(self, **fields: str | None) -> None: ...


@dataclass(slots=True)
class Bound:
    """The vehicle of this plug-in session and what the gate knows of its exchange."""

    lfdi: str
    session: J3072Session
    settings_before_limits: bool = False
    exchanged: bool = False  # the profile's exchange is complete: decisions count from here
    approval: Approval | None = None  # what the last decision was told of the list
    recorded: Decision | None = None  # the last decision journaled
    identified: dict[str, str | None] = field(default_factory=dict)
    due: tuple[str, ...] = ()  # the controls whose Responses the last decision required
    slept_at_ns: int | None = None  # the last heartbeat that said the inverter sleeps
    clock_problem: str | None = None  # what the last decision was told of the clock


class Gate:
    def __init__(
        self,
        site: SiteConfig,
        j3072: J3072Config,
        sep2: Sep2Service | None,
        approvals: ApprovalStore | None,
        journal: DecisionJournal,
        clock: Callable[[], int],
        peer: PeerCheck | None = None,
        held: HeldViolation | None = None,
        policy: ApprovalPolicy = DEFAULT_POLICY,
        clock_problem: Callable[[], str | None] = lambda: None,
    ) -> None:
        """``peer``: with a PLC link, who may be bound (the vehicle SLAC matched, on the
        cable); None: no PLC configured, the first client of the plug-in. ``held``: where a
        violation is kept across a restart (None: in memory only). ``clock_problem``: why
        the wall clock cannot be trusted for a new authorization (``ClockWatch.problem``,
        where the site requires it). ``clock`` is the monotonic clock: every timer of the
        gate and its session (heartbeats, holds, cooling, follow_s) runs on it, so a step
        of the wall clock neither lengthens nor shortens one."""
        self._site = site
        self._mapping = j3072.mapping
        self._follow_ns = int(j3072.follow_s * 1e9)
        self._sep2 = sep2
        self._approvals = approvals
        self._journal = journal
        self._clock = clock
        self.bound: Bound | None = None
        self._plugged = False
        self._open_main: list[str] = []
        self._ignored: set[str] = set()
        self._hold_ns = int(j3072.hold_s * 1e9)
        self._peer = peer
        self._refused: set[str] = set()  # clients logged as not the vehicle on the cable
        # a violation (over the limit, discharge while not authorized) holds until unplug:
        # losing the link or re-pairing starts a new session, not a clean slate
        self.violation: str | None = None
        self._grace_until_ns = 0  # after an authorized session ends: the 3 s to stop
        self._held = held
        self._policy = policy
        self._clock_problem = clock_problem
        self._meter_fault: str | None = None  # why the EVSE's meter cannot be trusted
        self._energized = False  # a vehicle was authorized in this plug-in
        self._blind_since_ns: int | None = None  # main closed, meter untrusted, since
        self._blind_opened = False  # main was opened for it (once per plug-in)
        if held is not None:
            self.violation = held.load()
        if self.violation is not None:  # held until the pilot shows state A
            self._plugged = True
            log_event(logger, "j3072.violation_restored", logging.WARNING,
                      reason=self.violation, holds="until the vehicle unplugs")  # fmt: skip

    # --- what the loop asks -------------------------------------------------------------

    @property
    def authorized(self) -> bool:
        return self.bound is not None and self.bound.session.authorized

    @property
    def limit_w(self) -> int | None:
        """The discharge limit in effect (§4.8.1.2): the decision's (the site's setMaxW, the
        vehicle's, the approval list's cap), lowered by the session's opModMaxLimW and its
        dispatch (opModFixedW, §4.8.2: the vehicle discharges what it is dispatched, none
        when dispatched to charge), both percentages of the vehicle's setMaxW (of the
        site's when the vehicle gave none)."""
        return self._limit_w((Mode.MAX_LIM_W, Mode.FIXED_W))

    def dispatch_ceiling_w(self) -> int | None:
        """The most a new setpoint may ask the vehicle to discharge: the decision's limit
        lowered by the session's opModMaxLimW (not by the setpoint it would replace)."""
        return self._limit_w((Mode.MAX_LIM_W,))

    def granted_limit_w(self) -> int | None:
        """The decision's own discharge limit (the approval list's cap, setMaxW), before any
        2030.5 control lowers it; None without a grant or a limit."""
        return self._limit_w(())

    def _limit_w(self, modes: tuple[Mode, ...]) -> int | None:
        bound = self.bound
        decision = bound.session.decision if bound is not None else None
        if bound is None or decision is None or not decision.granted:
            return None
        limits = [decision.limit_w] if decision.limit_w is not None else []
        record = self._record()
        if record is not None and record.program is not None:
            settings = record.der_settings
            base = watts(settings.set_max_w) if settings is not None else self._site.max_w
            for mode in modes:
                percent = self._percent_in_effect(record.program, mode)
                if percent is not None:
                    limits.append(int(max(percent, 0.0) * base / 100))
        return min(limits) if limits else None

    def _percent_in_effect(self, program: SessionProgram, mode: Mode) -> float | None:
        """A percentage the meter holds the vehicle to: a control changed at run time counts
        ``follow_s`` after it was published; until then the looser of it and the one it
        superseded (none, if it superseded nothing)."""
        control = program.of(mode)
        if control is None or control.function.value is None:
            return None
        now, value = self._clock(), control.function.value
        for _ in range(MAX_FOLLOWED):  # back through changes made within each other's window
            if control.due(now, self._follow_ns):
                return value
            before = control.before
            if before is None or before.function.value is None:
                return None  # it superseded nothing with a value: no cap of this mode yet
            value, control = max(value, before.function.value), before
        return value

    def drain_open_main(self) -> list[str]:
        reasons, self._open_main = self._open_main, []
        return reasons

    def next_deadline_ns(self) -> int | None:
        """The session's next deadline, or when a changed control's Responses fall due."""
        bound = self.bound
        if bound is None:
            return None
        deadlines = [bound.session.next_deadline_ns()]
        record = self._record()
        if record is not None and record.program is not None:
            pending = record.program.pending(self._clock(), RESPONSES_DUE_NS)
            deadlines += [c.issued_ns + RESPONSES_DUE_NS for c in pending]
        found = [d for d in deadlines if d is not None]
        return min(found) if found else None

    # --- events -------------------------------------------------------------------------

    def plugged(self, present: bool) -> None:
        """Pilot out of A starts a plug-in session; back to A ends it (and its vehicle's)."""
        if present == self._plugged:
            return
        self._plugged = present
        if not present:
            self._end("the vehicle unplugged")
            self._ignored.clear()
            self._refused.clear()
            if self._peer is not None:
                self._peer.matched(None)
            if self.violation is not None:
                if self._held is not None:
                    self._held.clear()  # off the disk before it is said to be cleared
                log_event(logger, "j3072.violation_cleared", reason="the vehicle unplugged")
            self.violation = None
            self._energized = self._blind_opened = False
            self._blind_since_ns = None

    def on_pilot(self, state: PilotState) -> None:
        if self.bound is not None:
            in_cd = state in (PilotState.C, PilotState.D)
            self._act(self.bound.session.on_pilot(in_cd, self._clock()))

    def slac_matched(self, ev_mac: str) -> None:
        """SLAC matched this vehicle's modem on the pilot: the MAC its IPv6 must come from."""
        if self._peer is not None:
            self._peer.matched(ev_mac)
            self._refused.clear()

    def on_link(self, up: bool) -> None:
        """The PLC link: losing it ends the session (the vehicle can no longer be heard)."""
        if not up:
            self._end("the PLC link was lost")

    def on_pev(self, event: PevEvent) -> None:
        """Something the 2030.5 server received from (or showed to) a vehicle."""
        bound = self.bound
        if bound is None or bound.session.ended:
            if not self._plugged or self._sep2 is None or not self._on_the_cable(event.lfdi):
                return
            bound = self._bind(event.lfdi)
        if event.lfdi != bound.lfdi:
            if event.lfdi not in self._ignored:
                self._ignored.add(event.lfdi)
                log_event(logger, "j3072.other_vehicle", logging.WARNING, lfdi=event.lfdi,
                          session_lfdi=bound.lfdi)  # fmt: skip
            return
        record = self._record()
        if record is None:
            return
        now = self._clock()
        match event:
            case ResourcePut(resource=DERSettings()):
                if SiteRead.SITE_LIMITS not in record.reads:
                    bound.settings_before_limits = True
            case ResourcePut(resource=DeviceInformation()):
                self._identify(record)
            case ResourcePut(resource=DERStatus() as status):
                inverter = status.inverter_status
                reported = inverter.value if inverter is not None else None
                value = self._awake(record, reported, now)
                self._act(bound.session.on_heartbeat(value, now))
                if value != reported:
                    if bound.session.reasons != (NOT_REREAD,):
                        log_event(logger, "j3072.wake_without_reread", logging.WARNING,
                                  lfdi=bound.lfdi)  # fmt: skip
                    bound.session.reasons = (NOT_REREAD,)
        if _decision_input(event):
            self._decide(record, force=False)

    def on_meter(self, export_w: float, main_closed: bool) -> None:
        """The EVSE's meter (positive = discharge), checked while main is closed."""
        if not main_closed or export_w <= DISCHARGE_NOISE_W:
            return
        if self.bound is None or self.bound.session.ended:
            if self._clock() < self._grace_until_ns:
                return  # a session just ended authorized: the vehicle's 3 s to stop
            why = f"discharge {export_w:.0f} W with no J3072 session"
            self._open_main.append(why)
            self._violated(why)
            return
        session = self.bound.session
        actions = session.on_meter(export_w, self.limit_w, self._clock())
        if Hold.VIOLATED in session.holds:
            self._violated(session.reasons[0] if session.reasons else "over the limit")
        for action in actions:
            if isinstance(action, OpenMain):
                self._violated(action.reason)
        self._act(actions)

    def on_meter_health(self, fault: str | None, main_closed: bool = False) -> None:
        """The EVSE's meter: healthy (None) or why not. While it is not, no discharge is
        authorized and an authorized session is revoked with that reason; and once a vehicle
        was authorized in this plug-in, main closed with the meter untrusted for
        ``STOP_GRACE_NS`` opens main: nobody can tell that the vehicle stopped (docs/meter.md
        "When the meter cannot be trusted")."""
        now = self._clock()
        self._watch_blind(fault, main_closed, now)
        if fault == self._meter_fault:
            return
        self._meter_fault = fault
        bound = self.bound
        if bound is not None and not bound.session.ended:
            self._act(bound.session.on_meter_health(fault, now))

    def _watch_blind(self, fault: str | None, main_closed: bool, now: int) -> None:
        """§4.8.1.2 gives a revoked vehicle 3 s to stop; a meter that cannot show it did
        counts as one that shows it did not."""
        if fault is None or not main_closed or not self._energized:
            self._blind_since_ns = None
            return
        if self._blind_since_ns is None:
            self._blind_since_ns = now
        elif now - self._blind_since_ns >= STOP_GRACE_NS and not self._blind_opened:
            self._blind_opened = True
            why = f"{METER_BLIND}: {fault}"
            log_event(logger, "j3072.open_main", logging.WARNING, reason=why)
            self._open_main.append(why)

    def _awake(self, record: PevRecord, inverter: int | None, now: int) -> int | None:
        """§4.8.3: a vehicle waking re-reads every control before it says it is awake; until
        it has (since it last said it slept), its heartbeats count as sleeping."""
        bound = self.bound
        assert bound is not None
        if inverter == INVERTER_SLEEPING:
            bound.slept_at_ns = now
            return inverter
        slept = bound.slept_at_ns
        if slept is None:
            return inverter
        read = record.read_at_ns.get(SiteRead.CONTROLS)
        if read is None or read < slept:
            return INVERTER_SLEEPING
        bound.slept_at_ns = None
        return inverter

    def _violated(self, why: str) -> None:
        if self.violation is None:
            self.violation = why
            if self._held is not None:
                self._held.save(why)
            log_event(logger, "j3072.violation", logging.WARNING, reason=why,
                      holds="until the vehicle unplugs")  # fmt: skip

    def poll(self) -> None:
        """Heartbeat deadlines, holds that end, and the approval list's current word."""
        bound = self.bound
        if bound is None or bound.session.ended:
            return
        now = self._clock()
        self._act(bound.session.poll(now))
        record = self._record()
        if record is None or not bound.exchanged:
            return
        if self._approval(record) != bound.approval:
            self._decide(record, force=True)
        elif self._clock_problem() != bound.clock_problem:
            self._decide(record, force=True)  # the clock was synchronized: decide again
        elif self._control_mrids(record) != bound.due:
            self._decide(record, force=False)  # a changed control's Responses fell due

    # --- status -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        bound = self.bound
        if bound is None:
            return {"state": "none", "limit_w": None, "reasons": []}
        session = bound.session
        decision = session.decision
        if session.authorized:
            state = "authorized"
        elif decision is None:
            state = "pending"
        elif not decision.granted:
            state = "denied"
        else:
            state = "revoked"
        reasons = list(session.reasons) if state != "authorized" else []
        if state == "pending":
            reasons = ["the J3072 exchange is not complete"]
        basis = decision.basis if decision is not None and state == "authorized" else None
        return {"state": state, "limit_w": self.limit_w, "reasons": reasons, "basis": basis,
                "lfdi": bound.lfdi, **bound.identified}  # fmt: skip

    # --- internals ----------------------------------------------------------------------

    def _on_the_cable(self, lfdi: str) -> bool:
        if self._peer is None or self._sep2 is None:
            return True
        refusal = self._peer.refusal(self._sep2.store.peers(lfdi))
        if refusal is not None and lfdi not in self._refused:
            self._refused.add(lfdi)
            log_event(logger, "j3072.peer_refused", logging.WARNING, lfdi=lfdi, reason=refusal)
        return refusal is None

    def _bind(self, lfdi: str) -> Bound:
        assert self._sep2 is not None
        now = self._clock()
        self.bound = Bound(lfdi, J3072Session(lfdi, now, self._hold_ns))
        if self.violation is not None:
            self.bound.session.violated(f"a violation earlier in this plug-in: {self.violation}",
                                        now)  # fmt: skip
        if self._meter_fault is not None:
            self.bound.session.on_meter_health(self._meter_fault, now)
        self._journal.identify(lfdi=lfdi)
        log_event(logger, "j3072.session", lfdi=lfdi)
        record = self._sep2.store.get(lfdi)
        if record is not None:
            self._identify(record)
        return self.bound

    def _record(self) -> PevRecord | None:
        if self._sep2 is None or self.bound is None:
            return None
        return self._sep2.store.get(self.bound.lfdi)

    def _end(self, why: str) -> None:
        bound = self.bound
        if bound is None:
            return
        if not bound.session.ended:
            if bound.session.authorized:
                self._grace_until_ns = self._clock() + STOP_GRACE_NS
            self._act(bound.session.end(why, self._clock()))
            log_event(logger, "j3072.session_ended", lfdi=bound.lfdi, reason=why)
        self.bound = None
        if self._sep2 is not None:
            self._sep2.set_energize(bound.lfdi, False)
            self._sep2.store.end_session(bound.lfdi)

    def _identify(self, record: PevRecord) -> None:
        assert self.bound is not None
        info = record.device_information
        if info is None:
            return
        fields = {
            "ism": mapped(info, self._mapping.ism),
            "vin": mapped(info, self._mapping.vin),
        }
        if fields != self.bound.identified:
            self.bound.identified = fields
            self._journal.identify(**fields)

    def _exchange_complete(self, record: PevRecord) -> bool:
        """Site limits read, PEV data PUT, controls read; then the Responses or a heartbeat."""
        if any(getattr(record, name) is None for name in PEV_DATA):
            return False
        if SiteRead.CONTROLS not in record.reads:
            return False
        return record.der_status is not None or self._all_responded(record)

    def _all_responded(self, record: PevRecord) -> bool:
        seen = {(r.subject.upper(), r.status) for r in record.responses.values()}
        return all(
            (control.mrid.upper(), status) in seen
            for control in self._program(record).current()
            for status in (STATUS_RECEIVED, STATUS_STARTED)
        )

    def _program(self, record: PevRecord) -> SessionProgram:
        assert self._sep2 is not None
        return self._sep2.site.program(record)

    def _control_mrids(self, record: PevRecord) -> tuple[str, ...]:
        """The controls whose Responses are due now: those of the session's start, and a
        control changed since once ``RESPONSES_DUE_NS`` have passed."""
        due = self._program(record).due(self._clock(), RESPONSES_DUE_NS)
        return tuple(c.mrid for c in due)

    def _pending_mrids(self, record: PevRecord) -> tuple[str, ...]:
        pending = self._program(record).pending(self._clock(), RESPONSES_DUE_NS)
        return tuple(c.mrid for c in pending)

    def _approval(self, record: PevRecord) -> Approval:
        if self._policy.kind is PolicyKind.CERTIFICATION_ONLY:
            return Approval("not consulted")  # no list under this policy
        ism = mapped(record.device_information, self._mapping.ism)
        current = self._approvals.in_force() if self._approvals is not None else None
        if current is None:
            return Approval(NO_VALID_LIST)
        entry = current.lookup(ism) if ism is not None else None
        if entry is None:
            return Approval("not listed")
        return Approval(entry.status.value, entry.max_discharge_w)

    def _decide(self, record: PevRecord, force: bool) -> None:
        bound = self.bound
        assert bound is not None
        if not bound.exchanged:
            if not self._exchange_complete(record):
                return
            bound.exchanged = True
        approval = self._approval(record)
        bound.approval = approval
        bound.clock_problem = self._clock_problem()
        bound.due = self._control_mrids(record)
        decision = decide(
            DecisionInputs(
                site=self._site,
                mapping=self._mapping,
                device_information=record.device_information,
                der_capability=record.der_capability,
                der_settings=record.der_settings,
                site_limits_read_first=not bound.settings_before_limits,
                control_mrids=bound.due,
                responses=tuple(record.responses.values()),
                pending_mrids=self._pending_mrids(record),
                policy=self._policy,
                lfdi=bound.lfdi,
                approval=approval,
                der_availability=record.der_availability,
                power_status=record.power_status,
                clock_problem=bound.clock_problem,
            )
        )
        if decision == bound.session.decision and not force:
            return
        if decision != bound.recorded:
            # a grant that a hold keeps from authorizing is journaled when it does authorize
            # (``_journal_energize``): a vehicle flipping its data cannot fill the journal
            held = decision.granted and bool(bound.session.holds)
            if not held:
                if not self._journal.decision(decision):
                    decision = _unrecorded(decision)
                bound.recorded = decision
            log_event(logger, "j3072.decision", logging.INFO if decision.granted else
                      logging.WARNING, granted=decision.granted, ism=decision.ism,
                      limit_w=decision.limit_w, reasons="; ".join(decision.reasons),
                      basis=decision.basis)  # fmt: skip
        self._act(bound.session.on_decision(decision, self._clock()), decided=True)

    def _act(self, actions: list[Action], decided: bool = False) -> None:
        bound = self.bound
        for action in actions:
            if isinstance(action, OpenMain):
                log_event(logger, "j3072.open_main", logging.WARNING, reason=action.reason)
                self._open_main.append(action.reason)
            elif isinstance(action, Energize) and bound is not None:
                self._energized = self._energized or action.value
                if not decided and not self._journal_energize(bound, action):
                    refused = _unrecorded(bound.session.decision)
                    bound.session.on_decision(refused, self._clock())
                    bound.recorded = refused  # the next grant must be journaled afresh
                    action = Energize(False, ("the journal cannot record the authorization",))
                self._energize(bound, action)
            elif isinstance(action, SessionNote) and action.event in ("authorized", "revoked"):
                log_event(logger, f"j3072.{action.event}", detail=action.detail)

    def _journal_energize(self, bound: Bound, action: Energize) -> bool:
        """A revocation or re-authorization not caused by a new decision is one too."""
        decision = bound.session.decision
        ism = decision.ism if decision is not None else None
        if action.value:
            limit = decision.limit_w if decision is not None else None
            if not self._journal.decision(Decision(True, (), limit, ism)):
                return False
            bound.recorded = decision  # what the journal now says: a later denial differs
            return True
        reasons = tuple(f"revoked: {r}" for r in action.reasons)
        revoked = Decision(False, reasons, None, ism)
        self._journal.decision(revoked)
        bound.recorded = revoked  # a later grant differs from it, so it is journaled first
        return True  # a revocation takes effect even if it cannot be recorded

    def _energize(self, bound: Bound, action: Energize) -> None:
        if self._sep2 is not None:
            self._sep2.set_energize(bound.lfdi, action.value)


def _unrecorded(decision: Decision | None) -> Decision:
    ism = decision.ism if decision is not None else None
    return Decision(False, ("the journal cannot record the decision",), None, ism)


def _decision_input(event: PevEvent) -> bool:
    """The vehicle's data, its Responses, its heartbeat and its reads of the controls: what
    can complete the exchange or change the decision."""
    match event:
        case ResourcePut(resource=DeviceInformation() | DERCapability() | DERSettings()):
            return True
        case ResourcePut(resource=DERAvailability() | PowerStatus()):
            return True
        case ResourcePut(resource=DERStatus()) | ResponsePosted():
            return True
        case SiteReadBy(what=SiteRead.CONTROLS | SiteRead.DEFAULT_CONTROL):
            return True
    return False
