"""Qualcomm vendor-specific ``VS_*`` messages for the local modem (payload from byte 20)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from firmware.errors import ProtocolError
from firmware.plc.frame import MIN_FRAME
from firmware.plc.messages import Message, message

VERSION_FIELD = 128  # open-plc-utils PLC_VERSION_STRING


@message(0xA000)
@dataclass(frozen=True, slots=True)
class VsSwVerReq(Message):
    LAYOUT: ClassVar = ()


@message(0xA001)
@dataclass(frozen=True, slots=True)
class VsSwVerCnf(Message):
    """20 status, 21 device id, 22 version length, 23.. the version string (NUL-padded)."""

    status: int
    device_id: int
    version: str
    LAYOUT: ClassVar = ("B", "B", "s")  # the string is packed by hand below

    def __post_init__(self) -> None:
        for name in ("status", "device_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must fit in a byte, got {value!r}")
        raw = self.version.encode("ascii")
        if len(raw) >= VERSION_FIELD or b"\x00" in raw:
            raise ValueError(f"version must be < {VERSION_FIELD} ASCII bytes without NUL")

    def pack_body(self) -> bytes:
        raw = self.version.encode("ascii") + b"\x00"  # the length counts the terminator
        return bytes([self.status, self.device_id, len(raw)]) + raw.ljust(VERSION_FIELD, b"\0")

    @classmethod
    def unpack_frame_body(cls, body: bytes, header_len: int) -> VsSwVerCnf:
        """Lenient on what follows the version (firmware generations differ), strict on
        the version itself: its length must fit the field and the frame."""
        if header_len + len(body) < MIN_FRAME or len(body) < 3:
            raise ProtocolError("VsSwVerCnf frame too short")
        status, device_id, length = body[0], body[1], body[2]
        if length > VERSION_FIELD or 3 + length > len(body):
            raise ProtocolError(f"VsSwVerCnf version length {length} overruns the frame")
        text = body[3 : 3 + length].split(b"\x00", 1)[0]
        return cls(status, device_id, text.decode("ascii"))


@message(0xA01C)
@dataclass(frozen=True, slots=True)
class VsRsDevReq(Message):
    LAYOUT: ClassVar = ()


@message(0xA01D)
@dataclass(frozen=True, slots=True)
class VsRsDevCnf(Message):
    status: int  # 20
    LAYOUT: ClassVar = ("B",)


@message(0xA038)
@dataclass(frozen=True, slots=True)
class VsNwInfoReq(Message):
    LAYOUT: ClassVar = ()


@message(0xA0B8)
@dataclass(frozen=True, slots=True)
class VsPlLinkStatusReq(Message):
    LAYOUT: ClassVar = ()


@message(0xA0B9)
@dataclass(frozen=True, slots=True)
class VsPlLinkStatusCnf(Message):
    status: int  # 20
    link: int  # 21, 1 = up
    LAYOUT: ClassVar = ("B", "B")
