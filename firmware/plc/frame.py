"""The HomePlug management-message (MME) frame: Ethernet header, MMV, MMTYPE, FMI or OUI.

docs/homeplug-slac.md "Frame header": bytes 0-5 destination, 6-11 source, 12-13
ethertype 0x88E1, 14 MMV, 15-16 MMTYPE (little-endian). HomePlug ``CM_*`` messages carry
MMV 1 and a 2-byte FMI (payload from byte 19); Qualcomm ``VS_*`` messages carry MMV 0 and the
OUI 00:B0:52 (payload from byte 20), except the one vendor indication a real QCA7005 sends
with OUI 00:00:00 (docs/homeplug-slac.md "Seen in the field"). Frames are padded to 60 bytes.
Pure: bytes in, bytes out.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from firmware.errors import ProtocolError

ETHERTYPE_HOMEPLUG = 0x88E1
LOCALCAST = bytes.fromhex("00B052000001")  # the local Qualcomm modem: never broadcast SET_KEY
BROADCAST = b"\xff" * 6
QUALCOMM_OUI = bytes.fromhex("00B052")
QCA_SOUND_NOTICE = 0xA14E  # sent by a real QCA7005 with each sound, under OUI 00:00:00
VENDOR_OUIS = {QCA_SOUND_NOTICE: bytes(3)}  # vendor MMTYPEs whose OUI is not Qualcomm's
MIN_FRAME = 60
ETH_HEADER = struct.Struct("!6s6sH")  # the ethertype is network order, the MME fields are not
MME_HEADER = struct.Struct("<BH")
CM_PAYLOAD_AT = 19
VS_PAYLOAD_AT = 20
MMV_CM = 0x01
MMV_VS = 0x00


class Variant(enum.IntEnum):
    """The two low bits of MMTYPE."""

    REQ = 0
    CNF = 1
    IND = 2
    RSP = 3


def is_vendor(mmtype: int) -> bool:
    """Qualcomm vendor-specific messages live in 0xA000-0xBFFF."""
    return 0xA000 <= mmtype <= 0xBFFF


def vendor_oui(mmtype: int) -> bytes:
    """The OUI a vendor MMTYPE carries: Qualcomm's, but for the few listed otherwise."""
    return VENDOR_OUIS.get(mmtype, QUALCOMM_OUI)


@dataclass(frozen=True, slots=True)
class Header:
    dst: bytes
    src: bytes
    mmtype: int

    @property
    def payload_at(self) -> int:
        return VS_PAYLOAD_AT if is_vendor(self.mmtype) else CM_PAYLOAD_AT


def build_frame(dst: bytes, src: bytes, mmtype: int, body: bytes) -> bytes:
    """Header + body, padded with zeros to the Ethernet minimum."""
    if len(dst) != 6 or len(src) != 6:
        raise ValueError("MAC addresses have 6 bytes")
    head = ETH_HEADER.pack(dst, src, ETHERTYPE_HOMEPLUG)
    if is_vendor(mmtype):
        head += MME_HEADER.pack(MMV_VS, mmtype) + vendor_oui(mmtype)
    else:
        head += MME_HEADER.pack(MMV_CM, mmtype) + b"\x00\x00"  # FMI 0: not fragmented
    frame = head + body
    return frame + bytes(max(0, MIN_FRAME - len(frame)))


def parse_header(frame: bytes) -> Header:
    """Check the fixed part of an MME; raise ProtocolError saying what is wrong."""
    if len(frame) < MIN_FRAME:
        raise ProtocolError(f"frame of {len(frame)} bytes is shorter than {MIN_FRAME}")
    dst, src, ethertype = ETH_HEADER.unpack_from(frame)
    if ethertype != ETHERTYPE_HOMEPLUG:
        raise ProtocolError(f"ethertype 0x{ethertype:04X} is not HomePlug (0x88E1)")
    mmv, mmtype = MME_HEADER.unpack_from(frame, ETH_HEADER.size)
    if is_vendor(mmtype):
        if mmv != MMV_VS:
            raise ProtocolError(f"MMV {mmv} for vendor MMTYPE 0x{mmtype:04X} (want 0)")
        if frame[17:20] != vendor_oui(mmtype):
            got, want = frame[17:20].hex(":"), vendor_oui(mmtype).hex(":")
            raise ProtocolError(f"OUI {got} for MMTYPE 0x{mmtype:04X} (want {want})")
    else:
        if mmv != MMV_CM:
            raise ProtocolError(f"MMV {mmv} for MMTYPE 0x{mmtype:04X} (want 1)")
        if frame[17:19] != b"\x00\x00":
            raise ProtocolError("fragmented MME (FMI != 0) is not supported")
    return Header(dst, src, mmtype)
