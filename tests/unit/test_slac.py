"""The SLAC EVSE state machine, driven frame by frame with an injected clock and NMK source."""

from __future__ import annotations

import itertools

import pytest

from firmware.plc import cm_messages as cm
from firmware.plc.attenuation import UNMEASURED_AAG_DB
from firmware.plc.codec import decode
from firmware.plc.keys import nid_from_nmk
from firmware.plc.slac import (
    T_STEP_EF_NS,
    TT_EVSE_MATCH_MNBC_NS,
    TT_MATCH_RESPONSE_NS,
    GaveUp,
    Matched,
    Note,
    PilotWakeUp,
    Send,
    SetKey,
    SlacEvse,
    SlacState,
)

MS = 1_000_000
EVSE = bytes.fromhex("02AABBCCDDEE")
EV1 = bytes.fromhex("0A0000000001")
EV2 = bytes.fromhex("0A0000000002")
RUN1 = bytes.fromhex("1111111111111111")
RUN2 = bytes.fromhex("2222222222222222")
INIT_NS = 40_000 * MS


def evse() -> SlacEvse:
    keys = (bytes([n]) * 16 for n in itertools.count(1))
    slac = SlacEvse(EVSE, lambda: next(keys), INIT_NS)
    assert slac.boot() == [SetKey(b"\x01" * 16)]
    slac.plugged_in(0)
    return slac


def profile(ev: bytes, level: int) -> cm.AttenProfileInd:
    return cm.AttenProfileInd(ev, 58, 0, bytes([level]) * 58)


def sound_and_characterize(slac: SlacEvse, ev: bytes, run: bytes, t_ms: int) -> list[object]:
    """PARM, three START_ATTEN_CHARs, ten profiles; returns every action."""
    actions: list[object] = []
    actions += slac.on_message(ev, cm.SlacParmReq(0, 0, run), t_ms * MS)
    for _ in range(3):
        actions += slac.on_message(ev, cm.StartAttenCharInd(0, 0, 10, 6, 1, ev, run), t_ms * MS)
    for n in range(10):
        actions += slac.on_message(EVSE, profile(ev, 20 + n), (t_ms + 20 + n) * MS)
    return actions


def match_req(ev: bytes, run: bytes, evse_mac: bytes = EVSE) -> cm.SlacMatchReq:
    return cm.SlacMatchReq(0, 0, 0x3E, bytes(17), ev, bytes(17), evse_mac, run, bytes(8))


def test_a_full_match_hands_over_our_key_and_rekeys_after_unplug() -> None:
    slac = evse()
    actions = sound_and_characterize(slac, EV1, RUN1, 100)
    parm_cnf = actions[0]
    assert isinstance(parm_cnf, Send) and parm_cnf.dst == EV1
    assert parm_cnf.message == cm.SlacParmCnf(b"\xff" * 6, 10, 6, 1, EV1, 0, 0, RUN1)
    chars = [a for a in actions if isinstance(a, Send) and isinstance(a.message, cm.AttenCharInd)]
    assert len(chars) == 1, "one ATTEN_CHAR.IND at the 10th profile; duplicates ignored"
    char = chars[0].message
    assert isinstance(char, cm.AttenCharInd)
    assert char.num_sounds == 10 and char.aag == bytes([round(sum(range(20, 30)) / 10)]) * 58
    assert char.run_id == RUN1 and char.source_mac == EV1
    slac.on_message(EV1, cm.AttenCharRsp(0, 0, EV1, RUN1, bytes(17), bytes(17), 0), 200 * MS)
    answer = slac.on_message(EV1, match_req(EV1, RUN1), 300 * MS)
    cnf = answer[0]
    assert isinstance(cnf, Send) and isinstance(cnf.message, cm.SlacMatchCnf)
    assert cnf.message.nmk == b"\x01" * 16, "the NMK our modem holds"
    assert cnf.message.nid == nid_from_nmk(b"\x01" * 16)
    assert cnf.message.evse_mac == EVSE and cnf.message.run_id == RUN1
    assert answer[1] == Matched(EV1, RUN1, nid_from_nmk(b"\x01" * 16))
    assert slac.state is SlacState.MATCHED
    assert slac.on_message(EV1, match_req(EV1, RUN1), 400 * MS) == [cnf], "repeated: same CNF"
    assert slac.unplugged() == [SetKey(b"\x02" * 16)], "a fresh key evicts the vehicle"
    assert slac.state is SlacState.IDLE


def test_only_the_vehicle_that_names_us_matches() -> None:
    slac = evse()
    sound_and_characterize(slac, EV1, RUN1, 100)
    sound_and_characterize(slac, EV2, RUN2, 100)  # cross-talk from the next bay
    assert slac.on_message(EV2, match_req(EV2, RUN2, evse_mac=b"\x02" * 6), 300 * MS) == []
    assert (EV2, RUN2) not in slac.sessions
    assert slac.on_message(EV1, match_req(EV1, RUN2), 300 * MS) == [], "wrong RunID"
    actions = slac.on_message(EV1, match_req(EV1, RUN1), 300 * MS)
    assert Matched(EV1, RUN1, nid_from_nmk(slac.nmk)) in actions


def test_profiles_are_attributed_by_pev_mac() -> None:
    slac = evse()
    slac.on_message(EV1, cm.SlacParmReq(0, 0, RUN1), 0)
    slac.on_message(EV1, cm.StartAttenCharInd(0, 0, 10, 6, 1, EV1, RUN1), 0)
    for _ in range(10):
        assert slac.on_message(EVSE, profile(EV2, 90), 10 * MS) == []  # another car's sounds
    assert slac.sessions[(EV1, RUN1)].profiles == []


def test_lost_sounds_characterize_on_the_600_ms_deadline() -> None:
    slac = evse()
    slac.on_message(EV1, cm.SlacParmReq(0, 0, RUN1), 0)
    slac.on_message(EV1, cm.StartAttenCharInd(0, 0, 10, 6, 1, EV1, RUN1), 0)
    for level in (10, 20, 30):
        slac.on_message(EVSE, profile(EV1, level), 50 * MS)
    assert slac.next_deadline_ns() == TT_EVSE_MATCH_MNBC_NS
    assert slac.poll(TT_EVSE_MATCH_MNBC_NS - 1) == []
    (sent,) = slac.poll(TT_EVSE_MATCH_MNBC_NS)
    assert isinstance(sent, Send) and isinstance(sent.message, cm.AttenCharInd)
    assert sent.message.num_sounds == 3 and sent.message.aag == bytes([20]) * 58


def test_a_lost_atten_char_rsp_is_resent_twice_then_the_session_ends() -> None:
    slac = evse()
    sound_and_characterize(slac, EV1, RUN1, 0)
    t = 29 * MS
    resent = []
    for _ in range(2):
        t += TT_MATCH_RESPONSE_NS
        resent += slac.poll(t)
    assert len(resent) == 2 and all(isinstance(a.message, cm.AttenCharInd) for a in resent)
    assert slac.poll(t + TT_MATCH_RESPONSE_NS) == []
    assert slac.sessions == {}


def test_no_parm_req_wakes_the_vehicle_twice_then_gives_up() -> None:
    slac = evse()
    assert slac.poll(INIT_NS) == [PilotWakeUp(T_STEP_EF_NS)]
    t2 = INIT_NS + T_STEP_EF_NS + INIT_NS
    assert slac.next_deadline_ns() == t2
    assert slac.poll(t2) == [PilotWakeUp(T_STEP_EF_NS)]
    t3 = t2 + T_STEP_EF_NS + INIT_NS
    assert slac.poll(t3) == [GaveUp("no SLAC_PARM.REQ after the E/F wake-ups")]
    assert slac.state is SlacState.GAVE_UP
    assert slac.on_message(EV1, cm.SlacParmReq(0, 0, RUN1), t3) == []


def test_a_parm_req_stops_the_init_timer_and_a_repeat_restarts_the_session() -> None:
    slac = evse()
    slac.on_message(EV1, cm.SlacParmReq(0, 0, RUN1), 0)
    slac.on_message(EV1, cm.StartAttenCharInd(0, 0, 10, 6, 1, EV1, RUN1), 0)
    slac.on_message(EVSE, profile(EV1, 10), 10 * MS)
    slac.on_message(EV1, cm.SlacParmReq(0, 0, RUN1), 20 * MS)
    session = slac.sessions[(EV1, RUN1)]
    assert session.profiles == [] and session.phase.value == "parm"
    assert slac.poll(INIT_NS) == []


@pytest.mark.parametrize("when", ["before sounding", "idle"])
def test_match_req_out_of_turn_is_ignored(when: str) -> None:
    slac = evse()
    if when == "idle":
        slac.unplugged()
    slac.on_message(EV1, cm.SlacParmReq(0, 0, RUN1), 0)
    assert slac.on_message(EV1, match_req(EV1, RUN1), 10 * MS) == []
    assert slac.state is not SlacState.MATCHED


def test_validate_is_answered_not_required() -> None:
    slac = evse()
    (answer,) = slac.on_message(EV1, cm.ValidateReq(0, 5, 0), 0)
    assert answer == Send(EV1, cm.ValidateCnf(0, 0, 4))


def test_unplug_before_a_match_does_not_rekey() -> None:
    slac = evse()
    sound_and_characterize(slac, EV1, RUN1, 0)
    assert slac.unplugged() == []


def test_a_lost_link_rekeys_and_listens_again_while_plugged_in() -> None:
    slac = evse()
    assert slac.link_lost(50 * MS) == [], "no keyed session: nothing to end"
    sound_and_characterize(slac, EV1, RUN1, 100)
    slac.on_message(EV1, match_req(EV1, RUN1), 300 * MS)
    assert slac.link_lost(1000 * MS) == [SetKey(b"\x02" * 16)]
    assert slac.state is SlacState.LISTENING and slac.matched is None
    assert slac.next_deadline_ns() == 1000 * MS + INIT_NS, "the init timer runs again"
    # the same vehicle may come back with a new run and gets the new key
    sound_and_characterize(slac, EV1, RUN2, 2000)
    cnf = slac.on_message(EV1, match_req(EV1, RUN2), 2100 * MS)[0]
    assert isinstance(cnf, Send) and isinstance(cnf.message, cm.SlacMatchCnf)
    assert cnf.message.nmk == b"\x02" * 16


def match(slac: SlacEvse, ev: bytes, run: bytes, t_ms: int) -> list[object]:
    """A whole matching from PARM.REQ to MATCH.REQ; returns every action."""
    actions = sound_and_characterize(slac, ev, run, t_ms)
    rsp = cm.AttenCharRsp(0, 0, ev, run, bytes(17), bytes(17), 0)
    actions += slac.on_message(ev, rsp, (t_ms + 50) * MS)
    return actions + slac.on_message(ev, match_req(ev, run), (t_ms + 60) * MS)


def test_a_matched_vehicle_that_starts_slac_over_is_matched_again() -> None:
    """Seen on a real car after 10 minutes on the logical network: a new PARM.REQ with a new
    RunID while still plugged in. It is a new matching, with the key it already holds."""
    slac = evse()
    match(slac, EV1, RUN1, 100)
    assert slac.state is SlacState.MATCHED
    again = match(slac, EV1, RUN2, 600_000)
    assert again[0] == Note("rematch", (("ev_mac", EV1.hex(":")), ("old_run_id", RUN1.hex()),
                                        ("run_id", RUN2.hex())))  # fmt: skip
    assert again[1] == Send(EV1, cm.SlacParmCnf(b"\xff" * 6, 10, 6, 1, EV1, 0, 0, RUN2))
    nid = nid_from_nmk(b"\x01" * 16)
    assert again[-1] == Matched(EV1, RUN2, nid), "the same key: no re-key while matching"
    assert not any(isinstance(a, SetKey) for a in again)
    assert slac.matched is not None and slac.matched.run_id == RUN2
    assert list(slac.sessions) == [(EV1, RUN2)]
    assert slac.unplugged() == [SetKey(b"\x02" * 16)], "unplugging still evicts it"


def test_while_matched_no_other_vehicle_is_served_and_a_late_copy_changes_nothing() -> None:
    slac = evse()
    match(slac, EV1, RUN1, 100)
    assert slac.on_message(EV2, cm.SlacParmReq(0, 0, RUN2), 300 * MS) == [], "crosstalk"
    assert slac.on_message(EV1, cm.SlacParmReq(0, 0, RUN1), 300 * MS) == [], "a late copy"
    assert list(slac.sessions) == [(EV1, RUN1)] and slac.state is SlacState.MATCHED


def test_a_restart_that_never_completes_leaves_the_match_and_its_key_in_place() -> None:
    slac = evse()
    match(slac, EV1, RUN1, 100)
    slac.on_message(EV1, cm.SlacParmReq(0, 0, RUN2), 1000 * MS)
    slac.on_message(EV1, cm.StartAttenCharInd(0, 0, 10, 6, 1, EV1, RUN2), 1000 * MS)
    slac.poll(2000 * MS)  # no sounds at all: nothing to characterize
    assert (EV1, RUN2) not in slac.sessions
    assert slac.state is SlacState.MATCHED and slac.matched is not None
    assert slac.matched.run_id == RUN1
    assert slac.link_lost(3000 * MS) == [SetKey(b"\x02" * 16)]


def empty_profile(ev: bytes) -> cm.AttenProfileInd:
    """A 60-byte profile with NumGroups 0, as modems of other makes send it, through the codec."""
    frame = bytearray(60)
    frame[0:6], frame[6:12], frame[12:14] = EVSE, bytes.fromhex("00B052000E5E"), b"\x88\xe1"
    frame[14:17] = b"\x01\x86\x60"
    frame[19:25] = ev
    _, message = decode(bytes(frame))
    assert isinstance(message, cm.AttenProfileInd)
    return message


def sounding(slac: SlacEvse, ev: bytes, run: bytes) -> None:
    slac.on_message(ev, cm.SlacParmReq(0, 0, run), 0)
    slac.on_message(ev, cm.StartAttenCharInd(0, 0, 10, 6, 1, ev, run), 0)


def sound(ev: bytes, run: bytes, cnt: int) -> cm.MnbcSoundInd:
    return cm.MnbcSoundInd(0, 0, bytes(17), cnt, run, bytes(8), bytes(16))


def atten_char(actions: list[object]) -> cm.AttenCharInd:
    (sent,) = [a for a in actions if isinstance(a, Send)]
    assert isinstance(sent.message, cm.AttenCharInd)
    return sent.message


def test_empty_profiles_answer_the_sounds_heard_and_a_weak_placeholder_not_zeros() -> None:
    slac = evse()
    sounding(slac, EV1, RUN1)
    actions: list[object] = []
    for cnt in range(9, -1, -1):
        slac.on_message(EV1, sound(EV1, RUN1, cnt), 10 * MS)
        actions += slac.on_message(EVSE, empty_profile(EV1), 11 * MS)
    char = atten_char(actions)
    assert char.num_sounds == 10 and char.num_groups == 58
    assert char.aag == bytes([UNMEASURED_AAG_DB]) * 58
    (note,) = [a for a in actions if isinstance(a, Note)]
    assert note.event == "unmeasured" and note.warning
    assert ("measured_groups", 0) in note.fields and ("sounds", 10) in note.fields


def test_sounds_heard_without_profiles_are_counted_on_the_deadline() -> None:
    slac = evse()
    sounding(slac, EV1, RUN1)
    for cnt in (9, 8, 8, 7):  # a duplicate counts once
        slac.on_message(EV1, sound(EV1, RUN1, cnt), 10 * MS)
    slac.on_message(EV2, sound(EV2, RUN1, 6), 10 * MS)  # another car's sound
    char = atten_char(slac.poll(TT_EVSE_MATCH_MNBC_NS))
    assert char.num_sounds == 3 and set(char.aag) == {UNMEASURED_AAG_DB}


def test_nothing_heard_sends_no_atten_char_and_ends_the_session() -> None:
    slac = evse()
    sounding(slac, EV1, RUN1)
    actions = slac.poll(TT_EVSE_MATCH_MNBC_NS)
    assert not any(isinstance(a, Send) for a in actions), "no NUM_SOUNDS 0, no zeros"
    assert [a.event for a in actions if isinstance(a, Note)] == ["no_sounds"]
    assert slac.sessions == {}


def test_measured_groups_are_averaged_and_only_missing_ones_hold_the_placeholder() -> None:
    slac = evse()
    sounding(slac, EV1, RUN1)
    slac.on_message(EVSE, cm.AttenProfileInd(EV1, 30, 0, bytes([10]) * 30), 10 * MS)
    slac.on_message(EVSE, cm.AttenProfileInd(EV1, 58, 0, bytes([30]) * 58), 20 * MS)
    slac.on_message(EVSE, empty_profile(EV1), 30 * MS)
    char = atten_char(slac.poll(TT_EVSE_MATCH_MNBC_NS))
    assert char.num_sounds == 2, "the profiles the average is made of"
    assert char.aag == bytes([20]) * 30 + bytes([30]) * 28
