"""The MME codec against docs/homeplug-slac.md, both directions.

Golden frames are built byte by byte at the reference's offsets ("Frame header" and
"Payloads"), independently of the codec's layouts: encode must produce them exactly and
decode must read them back. Hypothesis: pack then unpack is the identity for every message,
and no byte string makes decode raise anything but ProtocolError.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.errors import ProtocolError
from firmware.plc import cm_messages as cm
from firmware.plc import vs_messages as vs
from firmware.plc.codec import REGISTRY, Message, decode, encode
from firmware.plc.frame import LOCALCAST
from firmware.plc.keys import new_nmk, nid_from_nmk, nmk_from_passphrase

EV = bytes.fromhex("0A1B2C3D4E5F")
EVSE = bytes.fromhex("02AABBCCDDEE")
RUN = bytes.fromhex("1122334455667788")
NMK = bytes.fromhex("B59319D7E8157BA001B018669CCEE30D")
NID = bytes.fromhex("026BCBA5354E08")
AAG = bytes(range(10, 68))  # 58 groups
PEV_ID = b"P" * 17
EVSE_ID = b"E" * 17


def golden(dst: bytes, src: bytes, mmtype: int, length: int, fields: dict[int, bytes]) -> bytes:
    """A frame built by hand: the header at its offsets, each field at its frame offset."""
    frame = bytearray(max(60, length))
    frame[0:6], frame[6:12], frame[12:14] = dst, src, b"\x88\xe1"
    frame[15], frame[16] = mmtype & 0xFF, mmtype >> 8  # MMTYPE little-endian
    if 0xA000 <= mmtype <= 0xBFFF:
        frame[14] = 0x00  # MMV for Qualcomm vendor messages
        # OUI: Qualcomm's, but 00:00:00 on the QCA7005's sound notice
        frame[17:20] = bytes(3) if mmtype == 0xA14E else b"\x00\xb0\x52"
    else:
        frame[14] = 0x01  # MMV for HomePlug messages; FMI 17-18 stays 0
    for offset, value in fields.items():
        frame[offset : offset + len(value)] = value
    return bytes(frame)


CASES: list[tuple[Message, int, dict[int, bytes]]] = [
    (cm.SlacParmReq(0, 0, RUN), 60, {19: b"\x00", 20: b"\x00", 21: RUN}),
    (
        cm.SlacParmCnf(b"\xff" * 6, 10, 6, 1, EV, 0, 0, RUN),
        60,
        {19: b"\xff" * 6, 25: b"\x0a", 26: b"\x06", 27: b"\x01", 28: EV, 34: b"\0", 36: RUN},
    ),
    (
        cm.StartAttenCharInd(0, 0, 10, 6, 1, EV, RUN),
        60,
        {21: b"\x0a", 22: b"\x06", 23: b"\x01", 24: EV, 30: RUN},
    ),
    (
        cm.MnbcSoundInd(0, 0, bytes(17), 9, RUN, bytes(8), b"\x5a" * 16),
        71,
        {38: b"\x09", 39: RUN, 55: b"\x5a" * 16},
    ),
    (cm.AttenProfileInd(EV, 58, 0, AAG), 85, {19: EV, 25: b"\x3a", 27: AAG}),
    (cm.AttenProfileInd(EV, 0, 0, b""), 60, {19: EV, 25: b"\x00"}),  # nothing measured
    (cm.AttenProfileInd(EV, 40, 0, AAG[:40]), 67, {19: EV, 25: b"\x28", 27: AAG[:40]}),
    (
        cm.AttenCharInd(0, 0, EV, RUN, bytes(17), bytes(17), 10, 58, AAG),
        129,
        {21: EV, 27: RUN, 69: b"\x0a", 70: b"\x3a", 71: AAG},
    ),
    (cm.AttenCharRsp(0, 0, EV, RUN, bytes(17), bytes(17), 0), 70, {21: EV, 27: RUN, 69: b"\0"}),
    (cm.ValidateReq(0, 5, 1), 60, {20: b"\x05", 21: b"\x01"}),
    (cm.ValidateCnf(0, 0, 4), 60, {21: b"\x04"}),
    (
        cm.SlacMatchReq(0, 0, 0x3E, PEV_ID, EV, EVSE_ID, EVSE, RUN, bytes(8)),
        85,
        {21: b"\x3e\x00", 23: PEV_ID, 40: EV, 46: EVSE_ID, 63: EVSE, 69: RUN},
    ),
    (
        cm.SlacMatchCnf(0, 0, 0x56, PEV_ID, EV, EVSE_ID, EVSE, RUN, bytes(8), NID, 0, NMK),
        109,
        {21: b"\x56\x00", 23: PEV_ID, 40: EV, 46: EVSE_ID, 63: EVSE, 69: RUN, 85: NID, 93: NMK},
    ),
    (
        cm.SetKeyReq(1, 0, 0, 4, 0, 0, 0, NID, 1, NMK),
        60,
        {19: b"\x01", 28: b"\x04", 33: NID, 40: b"\x01", 41: NMK},
    ),
    (
        cm.SetKeyCnf(1, 0x04030201, 0, 4, 0x0102, 0, 0),
        60,
        {19: b"\x01", 20: b"\x01\x02\x03\x04", 28: b"\x04", 29: b"\x02\x01"},
    ),
    (vs.VsSwVerReq(), 60, {}),
    (
        vs.VsSwVerCnf(0, 0x20, "MAC-QCA7000-1.1.0"),
        23 + 128,
        {20: b"\x00", 21: b"\x20", 22: bytes([18]), 23: b"MAC-QCA7000-1.1.0\x00"},
    ),
    (vs.VsRsDevReq(), 60, {}),
    (vs.VsRsDevCnf(0), 60, {20: b"\x00"}),
    (vs.VsNwInfoReq(), 60, {}),
    (
        vs.VsNwInfoCnf(
            (
                vs.NwNetwork(
                    NID,
                    0x05,
                    0x02,
                    0x00,
                    EVSE,
                    0x01,
                    (
                        vs.NwStation(EV, 0x03, bytes(6), 0x9A, 0x9B),
                        vs.NwStation(EVSE, 0x01, b"\x02" * 6, 0x10, 0x11),
                    ),
                ),
            )
        ),
        20 + 1 + 18 + 2 * 15,
        {
            20: b"\x01",  # one network
            21: NID,
            28: b"\x05",
            29: b"\x02",
            30: b"\x00",
            31: EVSE,
            37: b"\x01",
            38: b"\x02",
            39: EV,
            45: b"\x03",
            46: bytes(6),
            52: b"\x9a",
            53: b"\x9b",
            54: EVSE,
            60: b"\x01",
            61: b"\x02" * 6,
            67: b"\x10",
            68: b"\x11",
        },
    ),
    (vs.VsNwInfoCnf(()), 60, {20: b"\x00"}),
    (vs.VsPlLinkStatusReq(), 60, {}),
    (vs.VsPlLinkStatusCnf(0, 1), 60, {20: b"\x00", 21: b"\x01"}),
    (vs.QcaSoundNotice(bytes(range(46))), 66, {20: bytes(range(46))}),
]


def test_network_info_counts_must_match_the_frame() -> None:
    one = vs.NwNetwork(NID, 1, 2, 0, EVSE, 1, (vs.NwStation(EV, 3, bytes(6), 1, 1),) * 3)
    frame = encode(vs.VsNwInfoCnf((one,)), LOCALCAST, EV)
    with pytest.raises(ProtocolError, match="overruns"):
        decode(frame[:-15])  # a station short of what NUMSTAS says
    with pytest.raises(ProtocolError, match="expected"):
        decode(frame + bytes(15))  # a station more than it says
    with pytest.raises(ProtocolError, match="networks"):
        decode(frame[:20] + b"\x09" + frame[21:])


def test_every_registered_message_has_a_golden_vector() -> None:
    assert {type(msg) for msg, _, _ in CASES} == set(REGISTRY.values())


@pytest.mark.parametrize(("msg", "length", "fields"), CASES, ids=lambda c: type(c).__name__)
def test_golden_frames_both_directions(msg: Message, length: int, fields: dict[int, bytes]) -> None:
    expected = golden(LOCALCAST, EVSE, msg.MMTYPE, length, fields)
    assert encode(msg, LOCALCAST, EVSE) == expected
    header, decoded = decode(expected)
    assert decoded == msg
    assert (header.dst, header.src, header.mmtype) == (LOCALCAST, EVSE, msg.MMTYPE)


def test_mmtype_variants_follow_the_low_two_bits() -> None:
    assert cm.SlacParmReq.MMTYPE & 3 == 0 and cm.SlacParmCnf.MMTYPE & 3 == 1
    assert cm.StartAttenCharInd.MMTYPE & 3 == 2 and cm.AttenCharRsp.MMTYPE & 3 == 3
    assert cm.SlacParmReq.MMTYPE & ~3 == 0x6064 and vs.VsPlLinkStatusCnf.MMTYPE & ~3 == 0xA0B8


def test_nmk_and_nid_golden_vector() -> None:
    nmk = nmk_from_passphrase("HomePlugAV0123")
    assert nmk == NMK
    assert nid_from_nmk(nmk) == NID


def test_fresh_nmks_are_random_and_sized() -> None:
    keys = {new_nmk() for _ in range(64)}
    assert len(keys) == 64 and all(len(k) == 16 for k in keys)
    assert nid_from_nmk(new_nmk())[6] >> 4 == 0  # security level 0


VALID = encode(cm.SlacParmReq(0, 0, RUN), LOCALCAST, EV)
PROFILE = encode(cm.AttenProfileInd(EV, 58, 0, AAG), LOCALCAST, EVSE)
NOTICE = encode(vs.QcaSoundNotice(bytes(40)), LOCALCAST, EV)


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (VALID[:59], "shorter than 60"),
        (VALID + b"\x00", "expected 60"),
        (VALID[:12] + b"\x08\x00" + VALID[14:], "ethertype"),
        (VALID[:14] + b"\x00" + VALID[15:], "MMV 0"),
        (VALID[:17] + b"\x01\x00" + VALID[19:], "fragmented"),
        (VALID[:15] + b"\x04\x60" + VALID[17:], "unknown MMTYPE"),
        (encode(vs.VsRsDevCnf(0), LOCALCAST, EV)[:17] + b"\x00\x11\x22" + bytes(40), "OUI"),
        (
            encode(
                cm.AttenCharInd(0, 0, EV, RUN, bytes(17), bytes(17), 10, 58, AAG), LOCALCAST, EV
            )[:-1],
            "expected 129",
        ),
        (PROFILE[:25] + b"\x46" + PROFILE[26:] + bytes(12), "NumGroups 70 exceeds 58"),
        (PROFILE[:-1], "84 bytes, expected 85 for NumGroups 58"),
        (PROFILE + b"\x00", "86 bytes, expected 85"),
        (PROFILE[:25] + b"\x00" + PROFILE[26:], "85 bytes, expected 60 for NumGroups 0"),
        (PROFILE[:25] + b"\x28" + PROFILE[26:], "85 bytes, expected 67 for NumGroups 40"),
        (NOTICE[:17] + b"\x00\xb0\x52" + NOTICE[20:], "OUI 00:b0:52 for MMTYPE 0xA14E"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(frame: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode(frame)


def test_a_version_length_that_overruns_the_frame_is_refused() -> None:
    frame = bytearray(encode(vs.VsSwVerCnf(0, 0, "x"), LOCALCAST, EV))
    frame[22] = 200
    with pytest.raises(ProtocolError, match="overruns"):
        decode(bytes(frame))


def _value(code: str) -> st.SearchStrategy[object]:
    if code.endswith("s"):
        size = int(code[:-1])
        return st.binary(min_size=size, max_size=size)
    return st.integers(min_value=0, max_value={"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF}[code])


def _messages() -> st.SearchStrategy[Message]:
    by_hand = (vs.VsSwVerCnf, vs.VsNwInfoCnf, cm.AttenProfileInd, vs.QcaSoundNotice)
    fixed = [cls for cls in REGISTRY.values() if cls not in by_hand]
    builders = [st.builds(cls, *[_value(code) for code in cls.LAYOUT]) for cls in fixed]
    versions = st.text(
        alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=127
    ).map(lambda text: vs.VsSwVerCnf(0, 0, text))
    byte = st.integers(min_value=0, max_value=0xFF)
    station = st.builds(vs.NwStation, _value("6s"), byte, _value("6s"), byte, byte)
    network = st.builds(
        vs.NwNetwork, _value("7s"), byte, byte, byte, _value("6s"), byte,
        st.lists(station, max_size=5).map(tuple),
    )  # fmt: skip
    infos = st.lists(network, max_size=3).map(lambda nets: vs.VsNwInfoCnf(tuple(nets)))
    profiles = st.builds(
        lambda mac, aag: cm.AttenProfileInd(mac, len(aag), 0, aag),
        _value("6s"), st.binary(max_size=58),
    )  # fmt: skip
    notices = st.binary(min_size=40, max_size=200).map(vs.QcaSoundNotice)  # 60 bytes or more
    return st.one_of(*builders, versions, infos, profiles, notices)


@given(
    msg=_messages(), dst=st.binary(min_size=6, max_size=6), src=st.binary(min_size=6, max_size=6)
)
def test_pack_then_unpack_is_the_identity(msg: Message, dst: bytes, src: bytes) -> None:
    header, decoded = decode(encode(msg, dst, src))
    assert decoded == msg and (header.dst, header.src) == (dst, src)


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(data)


@given(msg=_messages(), position=st.integers(min_value=0, max_value=150), byte=st.integers(0, 255))
def test_corrupted_valid_frames_raise_only_protocol_error(
    msg: Message, position: int, byte: int
) -> None:
    frame = bytearray(encode(msg, LOCALCAST, EV))
    frame[position % len(frame)] = byte
    for candidate in (bytes(frame), bytes(frame[: position % len(frame)])):
        with contextlib.suppress(ProtocolError):
            decode(candidate)


def test_fields_are_validated_on_construction() -> None:
    with pytest.raises(ValueError, match="run_id must be 8 bytes"):
        cm.SlacParmReq(0, 0, b"short")
    with pytest.raises(ValueError, match="app must fit"):
        cm.SlacParmReq(256, 0, RUN)
    with pytest.raises(ValueError):
        dataclasses.replace(cm.SetKeyReq(1, 0, 0, 4, 0, 0, 0, NID, 1, NMK), my_nonce=-1)


def test_every_flood_frame_is_refused_with_a_protocol_error() -> None:
    from hil.plc.flood import malformed_mmes

    reasons = set()
    for frame in malformed_mmes(600, b"\xff" * 6):
        with pytest.raises(ProtocolError) as refused:
            decode(frame)
        reasons.add(str(refused.value).split()[0])
    assert len(reasons) >= 4, f"the six kinds of damage reach different checks: {reasons}"


def test_a_60_byte_profile_without_groups_is_read_by_its_num_groups() -> None:
    """Modems of other makes than Qualcomm report a sound they measured nothing on as a
    60-byte CM_ATTEN_PROFILE.IND with NumGroups 0 (27 bytes, padded)."""
    frame = golden(EVSE, LOCALCAST, 0x6086, 60, {19: EV, 25: b"\x00"})
    _, profile = decode(frame)
    assert profile == cm.AttenProfileInd(EV, 0, 0, b"")


def test_the_qca7005_sound_notice_is_recognized_not_malformed() -> None:
    """A real QCA7005 sends MMTYPE 0xA14E under OUI 00:00:00 with every sound."""
    frame = bytearray(golden(EVSE, LOCALCAST, 0xA14E, 72, {20: b"\x01\x02\x03"}))
    assert frame[14] == 0 and frame[17:20] == bytes(3)
    _, notice = decode(bytes(frame))
    assert isinstance(notice, vs.QcaSoundNotice) and notice.body[:3] == b"\x01\x02\x03"
