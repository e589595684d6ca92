"""Every MME the EVSE sends or receives, packed and unpacked with strict lengths.

Layouts from docs/homeplug-slac.md "Payloads" (cross-checked there against EVerest,
open-plc-utils, pyslac and pyPLC). Each message is a frozen dataclass whose ``LAYOUT`` lists
its fields' struct codes in frame order (little-endian); the frame length must be exactly
the layout's, or the 60-byte minimum for short messages. Anything else is a ProtocolError.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import ClassVar, TypeVar

from firmware.errors import ProtocolError
from firmware.plc.frame import MIN_FRAME, Header, build_frame, parse_header

M = TypeVar("M", bound="Message")
REGISTRY: dict[int, type[Message]] = {}
_INT_MAX = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF}


class Message:
    MMTYPE: ClassVar[int]
    LAYOUT: ClassVar[tuple[str, ...]]  # one struct code per dataclass field, in order
    _STRUCT: ClassVar[struct.Struct]

    def __post_init__(self) -> None:
        for field, code in zip(dataclasses.fields(self), self.LAYOUT, strict=True):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if code.endswith("s"):
                if not isinstance(value, bytes) or len(value) != int(code[:-1]):
                    raise ValueError(f"{field.name} must be {code[:-1]} bytes")
            elif not isinstance(value, int) or not 0 <= value <= _INT_MAX[code]:
                raise ValueError(f"{field.name} must fit in {code!r}, got {value!r}")

    def pack_body(self) -> bytes:
        return self._STRUCT.pack(*dataclasses.astuple(self))  # type: ignore[call-overload]

    @classmethod
    def unpack_body(cls: type[M], body: bytes) -> M:
        return cls(*cls._STRUCT.unpack(body))

    @classmethod
    def body_size(cls) -> int:
        return cls._STRUCT.size

    @classmethod
    def unpack_frame_body(cls: type[M], body: bytes, header_len: int) -> M:
        """Strict length: exactly the layout, or the 60-byte minimum for short messages."""
        size = cls.body_size()
        expected = max(MIN_FRAME, header_len + size)
        if header_len + len(body) != expected:
            raise ProtocolError(
                f"{cls.__name__} frame is {header_len + len(body)} bytes, expected {expected}"
            )
        return cls.unpack_body(body[:size])


def message(mmtype: int) -> Callable[[type[M]], type[M]]:
    """Register a message class under its full MMTYPE and compile its layout."""

    def register(cls: type[M]) -> type[M]:
        cls.MMTYPE = mmtype
        cls._STRUCT = struct.Struct("<" + "".join(cls.LAYOUT))
        if mmtype in REGISTRY:
            raise RuntimeError(f"MMTYPE 0x{mmtype:04X} registered twice")
        REGISTRY[mmtype] = cls
        return cls

    return register


def encode(msg: Message, dst: bytes, src: bytes) -> bytes:
    return build_frame(dst, src, msg.MMTYPE, msg.pack_body())


def decode(frame: bytes) -> tuple[Header, Message]:
    """Parse one frame into its header and message; ProtocolError for anything malformed."""
    header = parse_header(frame)
    cls = REGISTRY.get(header.mmtype)
    if cls is None:
        raise ProtocolError(f"unknown MMTYPE 0x{header.mmtype:04X}")
    body = frame[header.payload_at :]
    try:
        return header, cls.unpack_frame_body(body, header.payload_at)
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        raise ProtocolError(f"{cls.__name__}: {err}") from err
