"""Register maps: where a meter keeps each quantity, read from TOML files a lab can extend.

A map names the Modbus function (input or holding registers), the word order of multi-register
values, the meter's power sign, and for each quantity (``power_w``, ``voltage_v``,
``frequency_hz``, ``import_wh``, ``export_wh``) its address, type, scale to our unit and,
where the vendor has one, the raw value that means "not available". Built-in maps live in
``hal/meter/maps``; the config may name a file instead. docs/meter.md describes the format
and the vendors' tables. Pure: no bus, no pymodbus.
"""

from __future__ import annotations

import math
import struct
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAPS_DIR = Path(__file__).with_name("maps")
QUANTITIES = ("power_w", "voltage_v", "frequency_hz", "import_wh", "export_wh")
# type -> (struct code, registers)
TYPES: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
}
FUNCTIONS = {"input": 4, "holding": 3}
POWER_SIGNS = ("import-positive", "export-positive")
MAX_REGISTERS_PER_READ = 125  # Modbus application protocol: a read carries at most 125


class MapError(ValueError):
    """Raised when a register map cannot be read or is not a valid map (one line, with the
    file and the key)."""


@dataclass(frozen=True, slots=True)
class Field:
    quantity: str
    address: int
    type: str
    scale: float = 1.0
    invalid: int | None = None  # the raw value the meter sends for "not available"

    @property
    def count(self) -> int:
        return TYPES[self.type][1]


@dataclass(frozen=True, slots=True)
class Block:
    """One read: contiguous registers holding one or more fields."""

    address: int
    count: int
    fields: tuple[Field, ...]


FLOAT_COUNTER_STEP_WH = 10.0  # a float counter's resolution: the meters' own 0.01 kWh


@dataclass(frozen=True, slots=True)
class RegisterMap:
    name: str
    function: int  # 4 = read input registers, 3 = read holding registers
    word_order: str  # "big": the high word first
    import_positive: bool  # the meter counts power into the load as positive
    fields: tuple[Field, ...]

    @property
    def counter_step_wh(self) -> float:
        """The energy counters' resolution: one count of an integer register, or what a
        float register's meter resolves (``FLOAT_COUNTER_STEP_WH``)."""
        steps = [FLOAT_COUNTER_STEP_WH if f.type.startswith("float") else f.scale
                 for f in self.fields if f.quantity in ("import_wh", "export_wh")]  # fmt: skip
        return max(steps, default=FLOAT_COUNTER_STEP_WH)

    def field(self, quantity: str) -> Field:
        return next(f for f in self.fields if f.quantity == quantity)

    def blocks(self) -> tuple[Block, tuple[Block, ...]]:
        """The power read (every poll) and the others, contiguous fields merged (one of
        them per poll, in turn)."""
        power = self.field("power_w")
        others = sorted((f for f in self.fields if f is not power), key=lambda f: f.address)
        merged: list[list[Field]] = []
        for f in others:
            last = merged[-1] if merged else None
            end = last[-1].address + last[-1].count if last else -1
            size = f.address + f.count - last[0].address if last else 0
            if last and f.address == end and size <= MAX_REGISTERS_PER_READ:
                last.append(f)
            else:
                merged.append([f])
        rest = tuple(_block(group) for group in merged)
        return _block([power]), rest

    def decode(self, block: Block, registers: list[int]) -> dict[str, float]:
        """Each field's value in our unit (power already export-positive); NaN for a field
        the meter reports as not available."""
        values = {}
        for f in block.fields:
            offset = f.address - block.address
            words = registers[offset : offset + f.count]
            values[f.quantity] = self._value(f, words)
        return values

    def _value(self, f: Field, words: list[int]) -> float:
        ordered = words if self.word_order == "big" else list(reversed(words))
        raw_bytes = b"".join(w.to_bytes(2, "big") for w in ordered)
        raw = struct.unpack(">" + TYPES[f.type][0], raw_bytes)[0]
        if f.invalid is not None and not isinstance(raw, float) and raw == f.invalid:
            return math.nan
        value = float(raw) * f.scale
        if f.quantity == "power_w" and self.import_positive:
            value = -value
        return value

    def encode(self, quantity: str, value: float) -> list[int]:
        """The registers a meter of this map holds for ``value`` (our unit and sign): for
        simulators and tests."""
        f = self.field(quantity)
        if quantity == "power_w" and self.import_positive:
            value = -value
        code = TYPES[f.type][0]
        raw: float | int = value / f.scale if code == "f" else round(value / f.scale)
        data = struct.pack(">" + code, raw)
        words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        return words if self.word_order == "big" else list(reversed(words))


def type_range(kind: str) -> tuple[int, int]:
    """The raw values an integer type holds."""
    bits = 16 * TYPES[kind][1]
    if kind.startswith("u"):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _block(fields: list[Field]) -> Block:
    end = fields[-1].address + fields[-1].count
    return Block(fields[0].address, end - fields[0].address, tuple(fields))


def builtin_maps() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in MAPS_DIR.glob("*.toml")))


def map_path(name: str) -> Path:
    """A built-in map's name (``sdm630``) or the path of a map file (``*.toml``)."""
    if name.endswith(".toml") or "/" in name:
        return Path(name)
    return MAPS_DIR / f"{name}.toml"


def load_map(name: str) -> RegisterMap:
    path = map_path(name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(builtin_maps())
        raise MapError(f"{path}: no such register map (built in: {known})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MapError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise MapError(f"{path}: not valid TOML: {err}") from None
    return parse_map(data, str(path))


def parse_map(data: dict[str, Any], where: str) -> RegisterMap:
    def fail(key: str, why: str) -> MapError:
        return MapError(f"{where}: {key}: {why}")

    unknown = set(data) - {"name", "function", "word_order", "power_sign", *QUANTITIES}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown key")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "must be a non-empty string")
    function = data.get("function", "input")
    if function not in FUNCTIONS:
        raise fail("function", f"must be one of {', '.join(FUNCTIONS)}; got {function!r}")
    word_order = data.get("word_order", "big")
    if word_order not in ("big", "little"):
        raise fail("word_order", f"must be big or little; got {word_order!r}")
    sign = data.get("power_sign", "import-positive")
    if sign not in POWER_SIGNS:
        raise fail("power_sign", f"must be one of {', '.join(POWER_SIGNS)}; got {sign!r}")
    fields = tuple(_field(q, data.get(q), fail) for q in QUANTITIES)
    taken: dict[int, str] = {}
    for f in fields:
        for address in range(f.address, f.address + f.count):
            if address in taken:
                raise fail(f.quantity, f"overlaps {taken[address]} at register {address}")
            taken[address] = f.quantity
    return RegisterMap(name, FUNCTIONS[function], word_order, sign == POWER_SIGNS[0], fields)


def _field(quantity: str, table: Any, fail: Any) -> Field:
    if not isinstance(table, dict):
        raise fail(quantity, "missing (a table with address and type)")
    unknown = set(table) - {"address", "type", "scale", "invalid"}
    if unknown:
        raise fail(f"{quantity}.{sorted(unknown)[0]}", "unknown key")
    address = table.get("address")
    if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 0xFFFF:
        raise fail(f"{quantity}.address", "must be a register address 0..65535")
    kind = table.get("type")
    if kind not in TYPES:
        raise fail(f"{quantity}.type", f"must be one of {', '.join(TYPES)}; got {kind!r}")
    scale = table.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise fail(f"{quantity}.scale", "must be a number above 0")
    invalid = table.get("invalid")
    if invalid is not None and (not isinstance(invalid, int) or kind == "float32"):
        raise fail(f"{quantity}.invalid", "must be an integer, for an integer type")
    if invalid is not None:
        low, high = type_range(kind)
        if not low <= invalid <= high:  # it could never match: the check would be off
            raise fail(f"{quantity}.invalid", f"{invalid:#x} is outside {kind}'s {low}..{high}"
                       f" (a signed type's raw value is signed: {-(2 ** 31)} for int32's"
                       " 0x80000000)")  # fmt: skip
    if address + TYPES[kind][1] > 0x10000:
        raise fail(f"{quantity}.address", "the value runs past register 65535")
    return Field(quantity, address, kind, float(scale), invalid)
