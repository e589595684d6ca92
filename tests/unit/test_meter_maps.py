"""Register maps: the built-in ones decode what a meter of their vendor holds, in our units
and sign; a map a lab writes is checked whole, each problem in one line."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.meter import MapError, builtin_maps, load_map
from hal.meter.registers import QUANTITIES, parse_map


def test_the_built_in_maps_cover_two_vendors() -> None:
    assert {"sdm630", "sdm230", "abb-b23"} <= set(builtin_maps())
    for name in builtin_maps():
        register_map = load_map(name)
        assert {f.quantity for f in register_map.fields} == set(QUANTITIES)


def test_sdm630_float32_registers_import_positive() -> None:
    """A meter counting import positive: 3 kW into the vehicle is -3 kW in our frame."""
    sdm = load_map("sdm630")
    power, others = sdm.blocks()
    assert (power.address, power.count) == (0x34, 2)
    assert [(b.address, b.count) for b in others] == [(0x00, 2), (0x46, 6)]
    words = list(struct.unpack(">HH", struct.pack(">f", 3000.0)))
    assert sdm.decode(power, words) == {"power_w": -3000.0}
    energy = others[1]
    regs = [w for kwh in (60.0, 12.5, 3.25) for w in struct.unpack(">HH", struct.pack(">f", kwh))]
    assert sdm.decode(energy, regs) == {"frequency_hz": 60.0, "import_wh": 12_500.0,
                                        "export_wh": 3_250.0}  # fmt: skip


def test_abb_integers_with_resolution_and_invalid_values() -> None:
    abb = load_map("abb-b23")
    assert abb.function == 3
    power, _ = abb.blocks()
    raw = (-123456).to_bytes(4, "big", signed=True)  # -1234.56 W as the meter counts
    words = [int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")]
    assert abb.decode(power, words)["power_w"] == pytest.approx(1234.56)
    assert math.isnan(abb.decode(power, [0x7FFF, 0xFFFF])["power_w"]), "not available"


@given(
    st.sampled_from(["sdm630", "sdm230", "abb-b23"]),
    st.sampled_from(QUANTITIES),
    st.floats(-600, 600),
)  # fmt: skip  (a uint16 at 0.01 Hz holds up to 655 Hz)
def test_encode_and_decode_agree(name: str, quantity: str, value: float) -> None:
    register_map = load_map(name)
    f = register_map.field(quantity)
    if f.type.startswith("uint"):
        value = abs(value)
    words = register_map.encode(quantity, value)
    block = next(b for b in (register_map.blocks()[0], *register_map.blocks()[1])
                 if f in b.fields)  # fmt: skip
    regs = [0] * block.count
    offset = f.address - block.address
    regs[offset : offset + f.count] = words
    decoded = register_map.decode(block, regs)[quantity]
    tolerance = max(f.scale, abs(value) * 1e-6)  # float32 and integer resolution
    assert decoded == pytest.approx(value, abs=tolerance)


def test_a_lab_map_file_is_loaded_by_path(tmp_path: Path) -> None:
    text = Path(__file__).parents[2] / "hal/meter/maps/sdm230.toml"
    lab = tmp_path / "lab-meter.toml"
    lab.write_text(text.read_text().replace('"Eastron SDM230"', '"Lab meter"'))
    assert load_map(str(lab)).name == "Lab meter"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"function": "coils"}, "function: must be one of input, holding"),
        ({"power_sign": "up"}, "power_sign: must be one of"),
        ({"voltage_v": {"address": 0x34, "type": "float32"}}, "overlaps power_w at register 52"),
        ({"power_w": {"address": 70000, "type": "float32"}}, "power_w.address: must be"),
        ({"power_w": {"address": 1, "type": "float16"}}, "power_w.type: must be one of"),
        ({"power_w": {"address": 1, "type": "float32", "scale": 0}}, "power_w.scale"),
        ({"power_w": {"address": 1, "type": "float32", "invalid": 1}}, "power_w.invalid"),
        (
            {"power_w": {"address": 1, "type": "int32", "invalid": 0x80000000}},
            "power_w.invalid: 0x80000000 is outside int32's -2147483648..2147483647",
        ),
        (
            {"power_w": {"address": 1, "type": "uint16", "invalid": 0x10000}},
            "power_w.invalid: 0x10000 is outside uint16's 0..65535",
        ),
        ({"power_w": {"address": 1, "type": "uint16", "invalid": -1}}, "power_w.invalid: -0x1"),
        ({"power_w": {"address": 1, "type": "int32", "unit": "W"}}, "power_w.unit: unknown key"),
        ({"export_wh": None}, "export_wh: missing"),
        ({"colour": "blue"}, "colour: unknown key"),
    ],
)
def test_a_bad_map_is_refused_in_one_line(change: dict[str, object], problem: str) -> None:
    import tomllib

    data = tomllib.loads((Path(__file__).parents[2] / "hal/meter/maps/sdm630.toml").read_text())
    data.update(change)
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(MapError) as info:
        parse_map(data, "lab.toml")
    assert str(info.value).startswith("lab.toml: ") and problem in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_map_names_the_built_in_ones() -> None:
    with pytest.raises(MapError, match=r"no such register map \(built in: abb-b23, sdm230"):
        load_map("sdm9999")


# The vendors' public register tables, written here independently of the map files:
# quantity -> (protocol address, type, scale to our unit, raw "not available" value).
# Eastron SDM630-Modbus V2 and SDM230-Modbus: input registers, float32, high word first,
# power positive into the load (import); kWh counters. ABB B23/B24: holding registers,
# fixed-resolution integers, high word first, "forward" (import) power positive, 0.01 kWh.
VENDOR_TABLES: dict[str, tuple[int, bool, dict[str, tuple[int, str, float, int | None]]]] = {
    "sdm630": (4, True, {
        "power_w": (0x0034, "float32", 1.0, None),  # 30053 total system power
        "voltage_v": (0x0000, "float32", 1.0, None),  # 30001 phase 1 to neutral
        "frequency_hz": (0x0046, "float32", 1.0, None),  # 30071
        "import_wh": (0x0048, "float32", 1000.0, None),  # 30073 kWh
        "export_wh": (0x004A, "float32", 1000.0, None),  # 30075 kWh
    }),
    "sdm230": (4, True, {
        "power_w": (0x000C, "float32", 1.0, None),  # 30013 active power
        "voltage_v": (0x0000, "float32", 1.0, None),
        "frequency_hz": (0x0046, "float32", 1.0, None),
        "import_wh": (0x0048, "float32", 1000.0, None),
        "export_wh": (0x004A, "float32", 1000.0, None),
    }),
    "abb-b23": (3, True, {
        "power_w": (0x5B14, "int32", 0.01, 0x7FFFFFFF),  # total active power, 0.01 W
        "voltage_v": (0x5B00, "uint32", 0.1, 0xFFFFFFFF),  # L1-N, 0.1 V
        "frequency_hz": (0x5B2C, "uint16", 0.01, 0xFFFF),  # 0.01 Hz
        "import_wh": (0x5000, "uint64", 10.0, 0xFFFFFFFFFFFFFFFF),  # 0.01 kWh
        "export_wh": (0x5004, "uint64", 10.0, 0xFFFFFFFFFFFFFFFF),
    }),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(VENDOR_TABLES))
def test_each_built_in_map_says_what_its_vendor_s_table_says(name: str) -> None:
    function, import_positive, fields = VENDOR_TABLES[name]
    register_map = load_map(name)
    assert (register_map.function, register_map.word_order) == (function, "big")
    assert register_map.import_positive is import_positive
    for quantity, (address, kind, scale, invalid) in fields.items():
        f = register_map.field(quantity)
        assert (f.address, f.type, f.invalid) == (address, kind, invalid), quantity
        assert f.scale == pytest.approx(scale), quantity


def test_an_invalid_value_of_a_signed_type_is_its_signed_raw_value() -> None:
    import tomllib

    data = tomllib.loads((Path(__file__).parents[2] / "hal/meter/maps/abb-b23.toml").read_text())
    data["power_w"]["invalid"] = -(2**31)  # 0x80000000 as an int32
    register_map = parse_map(data, "lab.toml")
    power, _ = register_map.blocks()
    assert math.isnan(register_map.decode(power, [0x8000, 0x0000])["power_w"])
