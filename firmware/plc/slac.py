"""SLAC on the EVSE side (ISO 15118-3 / SAE J2931/4): frames and ``now`` in, actions out.

Pure: no sockets, no clock, no randomness of its own (the NMK source is injected). Follows
docs/homeplug-slac.md "Sequence and timing". Sessions are keyed by (EV MAC, RunID) so
that several vehicles sounding at once on shared cabling never mix; only the session whose
SLAC_MATCH.REQ names our MAC completes. The NMK handed to the vehicle is the one our modem
holds; after every session (unplug, link loss) the modem is re-keyed with a fresh one, which
evicts the previous vehicle. A matched vehicle that starts SLAC over while still plugged in
(a new RunID) is served a new matching with the same key (docs/homeplug-slac.md "Starting over
while matched"); only that vehicle is served until it unplugs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from firmware.plc import cm_messages as cm
from firmware.plc.attenuation import NUM_GROUPS, characterize
from firmware.plc.keys import nid_from_nmk
from firmware.plc.messages import Message

MS = 1_000_000
TT_EVSE_MATCH_MNBC_NS = 600 * MS  # wait for the sounds
TT_MATCH_RESPONSE_NS = 200 * MS  # wait for ATTEN_CHAR.RSP
ATTEN_CHAR_RESENDS = 2  # "re-send up to 2 more times"
TT_EVSE_MATCH_SESSION_NS = 10_000 * MS  # wait for SLAC_MATCH.REQ
T_STEP_EF_NS = 4_000 * MS  # the E/F wake-up (EVerest T_STEP_EF)
SLAC_INIT_RETRIES = 2
NUM_SOUNDS = 10
SOUND_TIMEOUT_100MS = 6
VALIDATE_NOT_REQUIRED = 4


@dataclass(frozen=True, slots=True)
class Send:
    dst: bytes
    message: Message


@dataclass(frozen=True, slots=True)
class SetKey:
    """Key our modem with this NMK (through the modem client, to the localcast address)."""

    nmk: bytes


@dataclass(frozen=True, slots=True)
class PilotWakeUp:
    """Ask the charger for E/F on the pilot for ``duration_ns``, then back to the PWM."""

    duration_ns: int


@dataclass(frozen=True, slots=True)
class Matched:
    ev_mac: bytes
    run_id: bytes
    nid: bytes


@dataclass(frozen=True, slots=True)
class GaveUp:
    """No SLAC within the init timeout after the retries: fall back (the charger decides)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """Worth one log line (``plc.slac_<event>``) and nothing else: the service logs it."""

    event: str
    fields: tuple[tuple[str, object], ...] = ()
    warning: bool = False


Action = Send | SetKey | PilotWakeUp | Matched | GaveUp | Note


class Phase(enum.Enum):
    PARM = "parm"  # SLAC_PARM.CNF sent, waiting for START_ATTEN_CHAR
    SOUNDING = "sounding"
    CHARACTERIZED = "characterized"  # ATTEN_CHAR.IND sent
    AWAITING_MATCH = "awaiting_match"  # ATTEN_CHAR.RSP received
    MATCHED = "matched"


@dataclass(slots=True)
class Session:
    ev_mac: bytes
    run_id: bytes
    phase: Phase = Phase.PARM
    deadline_ns: int | None = None
    num_sounds: int = NUM_SOUNDS
    profiles: list[bytes] = field(default_factory=list)  # each profile's AAG, 0..58 groups
    sounds: set[int] = field(default_factory=set)  # the CNTs of the MNBC_SOUND.INDs heard
    atten_char: cm.AttenCharInd | None = None
    resends: int = 0
    match_cnf: cm.SlacMatchCnf | None = None


class SlacState(enum.Enum):
    IDLE = "idle"  # not plugged in: frames are ignored
    LISTENING = "listening"
    MATCHED = "matched"
    GAVE_UP = "gave_up"


class SlacEvse:
    def __init__(
        self,
        evse_mac: bytes,
        nmk_source: Callable[[], bytes],
        init_timeout_ns: int,
        evse_id: bytes = bytes(17),
    ) -> None:
        self.evse_mac = evse_mac
        self.evse_id = evse_id
        self._nmk_source = nmk_source
        self._init_timeout_ns = init_timeout_ns
        self.nmk = nmk_source()
        self.state = SlacState.IDLE
        self.sessions: dict[tuple[bytes, bytes], Session] = {}
        self._init_deadline: int | None = None
        self._wakeups = 0
        self.matched: Session | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def boot(self) -> list[Action]:
        """Key the modem with the first NMK."""
        return [SetKey(self.nmk)]

    def plugged_in(self, now_ns: int) -> list[Action]:
        """Pilot B: listen (some vehicles send SLAC_PARM.REQ at once)."""
        if self.state is SlacState.IDLE:
            self.state = SlacState.LISTENING
            self._wakeups = 0
            self._init_deadline = now_ns + self._init_timeout_ns
        return []

    def unplugged(self) -> list[Action]:
        """Pilot A, or the link is lost: forget every session; re-key if a vehicle had our key."""
        had_key = self.matched is not None
        self.state, self.sessions, self.matched, self._init_deadline = (
            SlacState.IDLE, {}, None, None,
        )  # fmt: skip
        if not had_key:
            return []
        self.nmk = self._nmk_source()
        return [SetKey(self.nmk)]

    def link_lost(self, now_ns: int) -> list[Action]:
        """The keyed link went down while the vehicle stays plugged in: that session is over.
        Re-key (the old key must not let it back in unmatched) and listen for a new SLAC."""
        if self.state is not SlacState.MATCHED:
            return []
        actions = self.unplugged()
        return actions + self.plugged_in(now_ns)

    # --- frames -------------------------------------------------------------------------

    def on_message(self, src: bytes, msg: Message, now_ns: int) -> list[Action]:
        if not self._serves(src, msg):
            return []
        handler = self._HANDLERS.get(type(msg))
        return handler(self, src, msg, now_ns) if handler else []

    def _serves(self, src: bytes, msg: Message) -> bool:
        """Listening: everyone. Matched: only the vehicle holding our key (it may start SLAC
        over while plugged in), and our modem's profiles of its sounds; nobody else may get
        the key a vehicle on our cable already holds."""
        if self.state is SlacState.LISTENING:
            return True
        if self.state is not SlacState.MATCHED or self.matched is None:
            return False
        return src == self.matched.ev_mac or isinstance(msg, cm.AttenProfileInd)

    def _parm_req(self, src: bytes, msg: cm.SlacParmReq, now_ns: int) -> list[Action]:
        notes: list[Action] = []
        if self.matched is not None:
            if msg.run_id == self.matched.run_id:
                return []  # a late copy of the matched run's request: the match stands
            notes.append(Note("rematch", (("ev_mac", src.hex(":")),
                                          ("old_run_id", self.matched.run_id.hex()),
                                          ("run_id", msg.run_id.hex()))))  # fmt: skip
        # a repeated PARM.REQ restarts that session
        self.sessions[(src, msg.run_id)] = Session(src, msg.run_id)
        self._init_deadline = None  # a vehicle is talking: no wake-up needed
        cnf = cm.SlacParmCnf(b"\xff" * 6, NUM_SOUNDS, SOUND_TIMEOUT_100MS, 1, src, 0, 0, msg.run_id)
        return [*notes, Send(src, cnf)]

    def _start_atten(self, src: bytes, msg: cm.StartAttenCharInd, now_ns: int) -> list[Action]:
        session = self.sessions.get((src, msg.run_id))
        if session is not None and session.phase is Phase.PARM:  # duplicates are ignored
            session.phase = Phase.SOUNDING
            session.num_sounds = msg.num_sounds or NUM_SOUNDS
            session.deadline_ns = now_ns + TT_EVSE_MATCH_MNBC_NS
        return []

    def _sound(self, src: bytes, msg: cm.MnbcSoundInd, now_ns: int) -> list[Action]:
        session = self.sessions.get((src, msg.run_id))
        if session is not None and session.phase is Phase.SOUNDING:
            session.sounds.add(msg.cnt)  # duplicates count once
        return []

    def _profile(self, src: bytes, msg: cm.AttenProfileInd, now_ns: int) -> list[Action]:
        # from our modem, attributed by the PEV MAC it names (profiles carry no RunID)
        for session in self.sessions.values():
            if session.ev_mac == msg.pev_mac and session.phase is Phase.SOUNDING:
                session.profiles.append(msg.aag)
                if len(session.profiles) >= session.num_sounds:
                    return self._characterize(session, now_ns)
        return []

    def _atten_rsp(self, src: bytes, msg: cm.AttenCharRsp, now_ns: int) -> list[Action]:
        session = self.sessions.get((src, msg.run_id))
        if session is not None and session.phase is Phase.CHARACTERIZED:
            session.phase = Phase.AWAITING_MATCH
            session.deadline_ns = now_ns + TT_EVSE_MATCH_SESSION_NS
        return []

    def _validate(self, src: bytes, msg: cm.ValidateReq, now_ns: int) -> list[Action]:
        return [Send(src, cm.ValidateCnf(0, 0, VALIDATE_NOT_REQUIRED))]

    def _match_req(self, src: bytes, msg: cm.SlacMatchReq, now_ns: int) -> list[Action]:
        session = self.sessions.get((src, msg.run_id))
        if session is None or msg.pev_mac != src:
            return []
        if msg.evse_mac != self.evse_mac:
            del self.sessions[(src, msg.run_id)]  # the vehicle chose another EVSE
            return []
        if session.match_cnf is not None:  # a repeated MATCH.REQ gets the same answer
            return [Send(src, session.match_cnf)]
        if session.phase not in (Phase.CHARACTERIZED, Phase.AWAITING_MATCH):
            return []
        nid = nid_from_nmk(self.nmk)
        session.match_cnf = cm.SlacMatchCnf(
            0, 0, cm.MVF_MATCH_CNF, msg.pev_id, src, self.evse_id, self.evse_mac,
            msg.run_id, bytes(8), nid, 0, self.nmk,
        )  # fmt: skip
        session.phase, session.deadline_ns = Phase.MATCHED, None
        self.state, self.matched = SlacState.MATCHED, session
        for key in [k for k in self.sessions if k != (src, msg.run_id)]:
            del self.sessions[key]  # other vehicles' sessions end here
        return [Send(src, session.match_cnf), Matched(src, msg.run_id, nid)]

    _HANDLERS: ClassVar[dict[type, Callable[..., list[Action]]]] = {
        cm.SlacParmReq: _parm_req,
        cm.StartAttenCharInd: _start_atten,
        cm.MnbcSoundInd: _sound,
        cm.AttenProfileInd: _profile,
        cm.AttenCharRsp: _atten_rsp,
        cm.ValidateReq: _validate,
        cm.SlacMatchReq: _match_req,
    }

    # --- timers -------------------------------------------------------------------------

    def next_deadline_ns(self) -> int | None:
        deadlines = [s.deadline_ns for s in self.sessions.values() if s.deadline_ns is not None]
        if self._init_deadline is not None:
            deadlines.append(self._init_deadline)
        return min(deadlines) if deadlines else None

    def poll(self, now_ns: int) -> list[Action]:
        actions: list[Action] = []
        if self._init_deadline is not None and now_ns >= self._init_deadline:
            actions += self._init_timed_out(now_ns)
        for key, session in list(self.sessions.items()):
            if session.deadline_ns is None or now_ns < session.deadline_ns:
                continue
            if session.phase is Phase.SOUNDING:
                actions += self._characterize(session, now_ns)
                if session.phase is Phase.SOUNDING:  # nothing heard: nothing to answer
                    del self.sessions[key]
            elif session.phase is Phase.CHARACTERIZED and session.resends < ATTEN_CHAR_RESENDS:
                session.resends += 1
                session.deadline_ns = now_ns + TT_MATCH_RESPONSE_NS
                assert session.atten_char is not None
                actions.append(Send(session.ev_mac, session.atten_char))
            else:
                del self.sessions[key]  # no RSP after the resends, or no MATCH.REQ in time
        return actions

    def _init_timed_out(self, now_ns: int) -> list[Action]:
        if self._wakeups >= SLAC_INIT_RETRIES:
            self._init_deadline, self.state = None, SlacState.GAVE_UP
            return [GaveUp("no SLAC_PARM.REQ after the E/F wake-ups")]
        self._wakeups += 1
        self._init_deadline = now_ns + T_STEP_EF_NS + self._init_timeout_ns
        return [PilotWakeUp(T_STEP_EF_NS)]

    def _characterize(self, session: Session, now_ns: int) -> list[Action]:
        """Send ATTEN_CHAR.IND with what was heard (docs/homeplug-slac.md "When no attenuation
        arrives"); with nothing heard at all, send nothing and leave the session sounding."""
        found = characterize(session.profiles, len(session.sounds))
        fields: tuple[tuple[str, object], ...] = (
            ("ev_mac", session.ev_mac.hex(":")), ("run_id", session.run_id.hex()),
            ("sounds", len(session.sounds)), ("profiles", len(session.profiles)),
        )  # fmt: skip
        if found is None:
            return [Note("no_sounds", fields, warning=True)]
        session.atten_char = cm.AttenCharInd(
            0, 0, session.ev_mac, session.run_id, bytes(17), bytes(17), found.num_sounds,
            NUM_GROUPS, found.aag,
        )  # fmt: skip
        session.phase = Phase.CHARACTERIZED
        session.deadline_ns = now_ns + TT_MATCH_RESPONSE_NS
        notes: list[Action] = []
        if found.measured_groups < NUM_GROUPS:
            notes.append(Note("unmeasured", (*fields, ("num_sounds", found.num_sounds),
                                             ("measured_groups", found.measured_groups)),
                              warning=True))  # fmt: skip
        return [*notes, Send(session.ev_mac, session.atten_char)]
