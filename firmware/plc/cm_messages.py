"""The HomePlug ``CM_*`` messages of SLAC and keying (payload from byte 19).

Offsets in the comments are frame offsets, as in docs/homeplug-slac.md "Payloads".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from firmware.errors import ProtocolError
from firmware.plc.frame import MIN_FRAME
from firmware.plc.messages import Message, message

MVF_MATCH_REQ = 0x003E
MVF_MATCH_CNF = 0x0056
NUM_GROUPS = 58


@message(0x6064)
@dataclass(frozen=True, slots=True)
class SlacParmReq(Message):
    app: int  # 19 application type 0 (PEV-EVSE association)
    sec: int  # 20 security type 0
    run_id: bytes  # 21-28
    LAYOUT: ClassVar = ("B", "B", "8s")


@message(0x6065)
@dataclass(frozen=True, slots=True)
class SlacParmCnf(Message):
    msound_target: bytes  # 19-24 ff x 6
    num_sounds: int  # 25
    time_out: int  # 26, x 100 ms
    resp_type: int  # 27
    forwarding_sta: bytes  # 28-33 the EV's MAC
    app: int  # 34
    sec: int  # 35
    run_id: bytes  # 36-43 echoed exactly
    LAYOUT: ClassVar = ("6s", "B", "B", "B", "6s", "B", "B", "8s")


@message(0x606A)
@dataclass(frozen=True, slots=True)
class StartAttenCharInd(Message):
    app: int  # 19
    sec: int  # 20
    num_sounds: int  # 21
    time_out: int  # 22
    resp_type: int  # 23
    forwarding_sta: bytes  # 24-29
    run_id: bytes  # 30-37
    LAYOUT: ClassVar = ("B", "B", "B", "B", "B", "6s", "8s")


@message(0x6076)
@dataclass(frozen=True, slots=True)
class MnbcSoundInd(Message):
    app: int  # 19
    sec: int  # 20
    sender_id: bytes  # 21-37
    cnt: int  # 38, counts down
    run_id: bytes  # 39-46
    reserved: bytes  # 47-54
    rnd: bytes  # 55-70
    LAYOUT: ClassVar = ("B", "B", "17s", "B", "8s", "8s", "16s")


@message(0x6086)
@dataclass(frozen=True, slots=True)
class AttenProfileInd(Message):
    """From the local modem, one per sound it heard. No RunID.

    Its length follows NumGroups: 27 + NumGroups bytes, padded to 60. A QCA7005 sends 58
    groups (85 bytes); other modems send NumGroups 0 (60 bytes) when they measured nothing
    (docs/homeplug-slac.md "Payloads"). More than 58 groups, or a length that does not
    match NumGroups, is malformed.
    """

    pev_mac: bytes  # 19-24
    num_groups: int  # 25, 0..58
    reserved: int  # 26
    aag: bytes  # 27.., attenuation per carrier group in dB, NumGroups bytes
    LAYOUT: ClassVar = ("6s", "B", "B", "s")  # packed by hand below
    HEAD: ClassVar = 8  # PEV MAC, NumGroups, reserved

    def __post_init__(self) -> None:
        if not isinstance(self.pev_mac, bytes) or len(self.pev_mac) != 6:
            raise ValueError("pev_mac must be 6 bytes")
        for name in ("num_groups", "reserved"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must fit in a byte, got {value!r}")
        if self.num_groups > NUM_GROUPS:
            raise ValueError(f"NumGroups {self.num_groups} exceeds {NUM_GROUPS}")
        if not isinstance(self.aag, bytes) or len(self.aag) != self.num_groups:
            raise ValueError(f"aag must be NumGroups ({self.num_groups}) bytes")

    def pack_body(self) -> bytes:
        return self.pev_mac + bytes([self.num_groups, self.reserved]) + self.aag

    @classmethod
    def unpack_frame_body(cls, body: bytes, header_len: int) -> AttenProfileInd:
        if len(body) < cls.HEAD:
            raise ProtocolError("AttenProfileInd frame too short")
        groups = body[6]
        if groups > NUM_GROUPS:
            raise ProtocolError(f"AttenProfileInd NumGroups {groups} exceeds {NUM_GROUPS}")
        expected = max(MIN_FRAME, header_len + cls.HEAD + groups)
        if header_len + len(body) != expected:
            raise ProtocolError(
                f"AttenProfileInd frame is {header_len + len(body)} bytes, expected {expected}"
                f" for NumGroups {groups}"
            )
        return cls(body[:6], groups, body[7], body[cls.HEAD : cls.HEAD + groups])


@message(0x606E)
@dataclass(frozen=True, slots=True)
class AttenCharInd(Message):
    app: int  # 19
    sec: int  # 20
    source_mac: bytes  # 21-26 the EV's MAC
    run_id: bytes  # 27-34
    source_id: bytes  # 35-51
    resp_id: bytes  # 52-68
    num_sounds: int  # 69
    num_groups: int  # 70
    aag: bytes  # 71-128 averaged
    LAYOUT: ClassVar = ("B", "B", "6s", "8s", "17s", "17s", "B", "B", "58s")


@message(0x606F)
@dataclass(frozen=True, slots=True)
class AttenCharRsp(Message):
    app: int  # 19
    sec: int  # 20
    source_mac: bytes  # 21-26
    run_id: bytes  # 27-34
    source_id: bytes  # 35-51
    resp_id: bytes  # 52-68
    result: int  # 69, 0 = OK
    LAYOUT: ClassVar = ("B", "B", "6s", "8s", "17s", "17s", "B")


@message(0x6078)
@dataclass(frozen=True, slots=True)
class ValidateReq(Message):
    signal_type: int  # 19
    timer: int  # 20
    result: int  # 21
    LAYOUT: ClassVar = ("B", "B", "B")


@message(0x6079)
@dataclass(frozen=True, slots=True)
class ValidateCnf(Message):
    """``result``: 0 not ready, 1 ready, 2 success, 3 failure, 4 not required."""

    signal_type: int  # 19
    toggle_count: int  # 20
    result: int  # 21
    LAYOUT: ClassVar = ("B", "B", "B")


@message(0x607C)
@dataclass(frozen=True, slots=True)
class SlacMatchReq(Message):
    app: int  # 19
    sec: int  # 20
    mvf_length: int  # 21-22 = 0x003E
    pev_id: bytes  # 23-39
    pev_mac: bytes  # 40-45
    evse_id: bytes  # 46-62
    evse_mac: bytes  # 63-68
    run_id: bytes  # 69-76
    reserved: bytes  # 77-84
    LAYOUT: ClassVar = ("B", "B", "H", "17s", "6s", "17s", "6s", "8s", "8s")


@message(0x607D)
@dataclass(frozen=True, slots=True)
class SlacMatchCnf(Message):
    app: int  # 19
    sec: int  # 20
    mvf_length: int  # 21-22 = 0x0056
    pev_id: bytes  # 23-39
    pev_mac: bytes  # 40-45
    evse_id: bytes  # 46-62
    evse_mac: bytes  # 63-68
    run_id: bytes  # 69-76
    reserved: bytes  # 77-84
    nid: bytes  # 85-91
    reserved2: int  # 92
    nmk: bytes  # 93-108
    LAYOUT: ClassVar = (
        "B", "B", "H", "17s", "6s", "17s", "6s", "8s", "8s", "7s", "B", "16s",
    )  # fmt: skip


@message(0x6008)
@dataclass(frozen=True, slots=True)
class SetKeyReq(Message):
    key_type: int  # 19 = 1 (NMK)
    my_nonce: int  # 20-23
    your_nonce: int  # 24-27
    pid: int  # 28 = 4 (HLE protocol)
    prn: int  # 29-30
    pmn: int  # 31
    cco_cap: int  # 32
    nid: bytes  # 33-39
    new_eks: int  # 40 = 1
    nmk: bytes  # 41-56
    LAYOUT: ClassVar = ("B", "I", "I", "B", "H", "B", "B", "7s", "B", "16s")


@message(0x6009)
@dataclass(frozen=True, slots=True)
class SetKeyCnf(Message):
    """``result``: Qualcomm firmware answers 1 on success, some others 0 (accept both)."""

    result: int  # 19
    my_nonce: int  # 20-23
    your_nonce: int  # 24-27
    pid: int  # 28
    prn: int  # 29-30
    pmn: int  # 31
    cco_cap: int  # 32
    LAYOUT: ClassVar = ("B", "I", "I", "B", "H", "B", "B")
