"""Field declarations for the 2030.5 models: which XML name, which simple type, how often.

A model is a frozen dataclass whose fields are declared *in schema order* with ``opt``, ``req``
or ``many``; the metadata they attach (a ``Spec``) is all the serializer and the parser in
``firmware.sep2.model`` need. The scalar codecs here wrap the lexical rules of
``firmware.sep2.xml`` and check values on the way out too, so a model never serializes a value
its schema type cannot carry. The documented ranges are enforced where the schema text gives one
(PerCent 0..10000, SignedPerCent ±10000, power-of-ten multiplier -9..9, OneHourRangeType ±3600).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from firmware.errors import GatekeeperError
from firmware.sep2.xml import (
    format_bool,
    format_hex_int,
    parse_bool,
    parse_hex,
    parse_hex_int,
    parse_int,
    parse_string,
)

SPEC_KEY = "sep2"


class Sep2ValueError(GatekeeperError, ValueError):
    """Raised when a model holds a value its 2030.5 type cannot carry, so it cannot be sent."""


class Codec(Protocol):
    """Converts one simple-typed value to and from its XML text."""

    def decode(self, text: str, name: str) -> Any:
        """The value of ``text``; raises ``Sep2InputError`` naming ``name`` when it is bad."""
        ...

    def encode(self, value: Any) -> str:
        """The XML text of ``value``; raises ``Sep2ValueError`` when it does not fit."""
        ...


@dataclass(frozen=True, slots=True)
class IntCodec:
    """An integer type bounded to ``low..high`` (UInt8 … Int64, TimeType, PerCent, …)."""

    low: int
    high: int

    def decode(self, text: str, name: str) -> int:
        return parse_int(text, self.low, self.high, name)

    def encode(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Sep2ValueError(f"{value!r} is not an integer")
        if not self.low <= value <= self.high:
            raise Sep2ValueError(f"{value} is outside {self.low}..{self.high}")
        return str(value)


@dataclass(frozen=True, slots=True)
class HexIntCodec:
    """A hexBinary bitmap held as an int, sent at the type's full width (``nbytes`` octets)."""

    nbytes: int

    def decode(self, text: str, name: str) -> int:
        return parse_hex_int(text, self.nbytes, name)

    def encode(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Sep2ValueError(f"{value!r} is not an integer")
        if not 0 <= value < 1 << (8 * self.nbytes):
            raise Sep2ValueError(f"{value:#x} does not fit {self.nbytes} bytes")
        return format_hex_int(value, self.nbytes)


@dataclass(frozen=True, slots=True)
class HexStrCodec:
    """A hexBinary identifier (mRID, LFDI) held as upper-case hex text of 1..``max_bytes``."""

    max_bytes: int

    def decode(self, text: str, name: str) -> str:
        return parse_hex(text, self.max_bytes, name)  # the hex pattern refuses an empty value

    def encode(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Sep2ValueError(f"{value!r} is not hex text")
        try:
            parsed = parse_hex(value, self.max_bytes, "value")
        except GatekeeperError as exc:
            raise Sep2ValueError(str(exc)) from None
        if parsed != value or not value:
            raise Sep2ValueError(f"{value!r} is not upper-case hex of whole bytes")
        return value


@dataclass(frozen=True, slots=True)
class StrCodec:
    """A string whose UTF-8 form fits ``max_bytes`` (String6 … String192, anyURI)."""

    max_bytes: int

    def decode(self, text: str, name: str) -> str:
        return parse_string(text, self.max_bytes, name)

    def encode(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Sep2ValueError(f"{value!r} is not a string")
        if len(value.encode("utf-8")) > self.max_bytes:
            raise Sep2ValueError(f"{value!r} is longer than {self.max_bytes} bytes")
        return value


@dataclass(frozen=True, slots=True)
class BoolCodec:
    """An xs:boolean."""

    def decode(self, text: str, name: str) -> bool:
        return parse_bool(text, name)

    def encode(self, value: Any) -> str:
        if not isinstance(value, bool):
            raise Sep2ValueError(f"{value!r} is not a boolean")
        return format_bool(value)


UINT8 = IntCodec(0, (1 << 8) - 1)
UINT16 = IntCodec(0, (1 << 16) - 1)
UINT32 = IntCodec(0, (1 << 32) - 1)
UINT48 = IntCodec(0, (1 << 48) - 1)
INT16 = IntCodec(-(1 << 15), (1 << 15) - 1)
INT32 = IntCodec(-(1 << 31), (1 << 31) - 1)
INT48 = IntCodec(-(1 << 47), 1 << 47)  # the schema's Int48 facets, asymmetry and all
TIME = IntCodec(-(1 << 63), (1 << 63) - 1)  # TimeType: Int64 seconds since 1970 UTC
PERCENT = IntCodec(0, 10_000)  # hundredths of a percent
SIGNED_PERCENT = IntCodec(-10_000, 10_000)
MULTIPLIER = IntCodec(-9, 9)  # PowerOfTenMultiplierType
ONE_HOUR = IntCodec(-3600, 3600)  # OneHourRangeType
SFDI = IntCodec(0, 687_194_767_359)  # 36-bit SFDI with its check digit
HEX8 = HexIntCodec(1)
HEX16 = HexIntCodec(2)
HEX32 = HexIntCodec(4)
HEX64 = HexIntCodec(8)
MRID = HexStrCodec(16)  # mRIDType: HexBinary128
LFDI = HexStrCodec(20)  # HexBinary160
STR6 = StrCodec(6)
STR16 = StrCodec(16)
STR32 = StrCodec(32)
STR192 = StrCodec(192)
URI = StrCodec(1024)  # xs:anyURI has no length facet; this cap is ours
BOOL = BoolCodec()


class AnyResource:
    """Marker kind for Notification's ``Resource`` element, typed by ``xsi:type``."""


@dataclass(frozen=True, slots=True)
class Spec:
    """How one dataclass field maps to XML: name, kind, attribute or element, occurrences."""

    name: str
    kind: Any  # a Codec, a model class, or AnyResource
    attr: bool = False
    required: bool = False
    many: bool = False
    max_occurs: int | None = None

    @property
    def is_scalar(self) -> bool:
        """Whether the value is simple text (a codec) rather than a nested element tree."""
        return not isinstance(self.kind, type)


def opt(name: str, kind: Any, *, attr: bool = False) -> Any:
    """An optional element (or attribute): ``None`` when absent, omitted on output."""
    return field(default=None, metadata={SPEC_KEY: Spec(name, kind, attr=attr)})


def req(name: str, kind: Any, *, attr: bool = False) -> dict[str, Spec]:
    """Metadata for a required element or attribute: use as ``field(metadata=req(...))``."""
    return {SPEC_KEY: Spec(name, kind, attr=attr, required=True)}


def many(name: str, kind: Any, *, required: bool = False, max_occurs: int | None = None) -> Any:
    """A repeated element held as a tuple; ``required`` means at least one occurrence."""
    spec = Spec(name, kind, required=required, many=True, max_occurs=max_occurs)
    return field(default=(), metadata={SPEC_KEY: spec})
