"""The hardened 2030.5 parser and the typed value rules, against hostile input.

Every hostile body must raise ``Sep2InputError`` with a reason a 400 can carry, without reading
files, touching the network or expanding entities.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from lxml import etree

from firmware.errors import GatekeeperError
from firmware.sep2 import xml as sep2_xml
from firmware.sep2.der import DERCapability
from firmware.sep2.device import DeviceInformation
from firmware.sep2.xml import (
    HEX_BINARY_BYTES,
    MAX_BODY_BYTES,
    NS,
    STRING_BYTES,
    Sep2InputError,
    format_hex_int,
    parse_bool,
    parse_document,
    parse_hex,
    parse_hex_int,
    parse_int,
    parse_string,
    parse_time,
    parse_uint,
)

SETTINGS = (
    f'<DERSettings xmlns="{NS}"><setGradW>0</setGradW>'
    "<setMaxW><multiplier>0</multiplier><value>7200</value></setMaxW>"
    "<updatedTime>0</updatedTime></DERSettings>"
).encode()

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE DERSettings [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<DERSettings xmlns="urn:ieee:std:2030.5:ns"><setGradW>&lol9;</setGradW></DERSettings>
"""


def _xxe(target: Path) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE DERSettings [<!ENTITY xxe SYSTEM "file://{target}">]>'
        f'<DERSettings xmlns="{NS}"><setGradW>&xxe;</setGradW></DERSettings>'
    ).encode()


def test_well_formed_document_is_accepted() -> None:
    root = parse_document(SETTINGS, "DERSettings")
    assert etree.QName(root).localname == "DERSettings"


def test_billion_laughs_is_refused_without_expanding_anything() -> None:
    started = time.monotonic()
    with pytest.raises(Sep2InputError, match="DOCTYPE") as caught:
        parse_document(BILLION_LAUGHS, "DERSettings")
    assert time.monotonic() - started < 1.0
    assert "lol" not in caught.value.reason


def test_external_entity_is_refused_and_the_file_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:SECRET-MARKER:0:0")
    with pytest.raises(Sep2InputError, match="DOCTYPE") as caught:
        parse_document(_xxe(secret), "DERSettings")
    assert "SECRET-MARKER" not in str(caught.value)


def test_external_entity_pointing_at_a_fifo_is_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            parse_document(_xxe(fifo), "DERSettings")
        except BaseException as exc:  # the thread reports whatever happened
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # the parser is stuck in open(): release it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the parser opened the external entity")
    assert len(outcome) == 1 and isinstance(outcome[0], Sep2InputError)


def test_system_entity_file_path_form_is_refused() -> None:
    body = b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><DERSettings xmlns="urn:ieee:std:2030.5:ns"/>'
    with pytest.raises(Sep2InputError, match="DOCTYPE"):
        parse_document(body, "DERSettings")


def test_lower_case_doctype_is_refused_too() -> None:
    with pytest.raises(Sep2InputError):
        parse_document(b"<!doctype x>" + SETTINGS, "DERSettings")


def test_utf16_doctype_cannot_slip_past_the_byte_check() -> None:
    body = BILLION_LAUGHS.replace(b'<?xml version="1.0"?>', b"").decode().encode("utf-16")
    with pytest.raises(Sep2InputError, match=r"NUL byte|not UTF-8"):
        parse_document(body, "DERSettings")


def test_undeclared_entity_reference_is_refused() -> None:
    body = SETTINGS.replace(b"<setGradW>0", b"<setGradW>&xxe;")
    with pytest.raises(Sep2InputError, match="malformed XML: Entity 'xxe' not defined"):
        parse_document(body, "DERSettings")


def test_ten_megabyte_body_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_parse(body: bytes) -> None:
        raise AssertionError("parsed an oversized body")

    monkeypatch.setattr(sep2_xml, "_parse", must_not_parse)
    body = SETTINGS[:-14] + b" " * (10 * 1024 * 1024) + SETTINGS[-14:]
    with pytest.raises(Sep2InputError, match="body exceeds 65536 bytes"):
        parse_document(body, "DERSettings")


def test_size_cap_is_exactly_64_kib() -> None:
    pad = MAX_BODY_BYTES - len(SETTINGS)
    at_cap = SETTINGS[:-14] + b" " * pad + SETTINGS[-14:]
    assert len(at_cap) == MAX_BODY_BYTES
    parse_document(at_cap, "DERSettings")
    with pytest.raises(Sep2InputError, match="body exceeds"):
        parse_document(at_cap + b" ", "DERSettings")


def test_deep_nesting_is_refused() -> None:
    depth = 40
    body = f'<DERControlList xmlns="{NS}">' + "<DERControl>" * depth
    body += "</DERControl>" * depth + "</DERControlList>"
    with pytest.raises(Sep2InputError, match="nested deeper than 32"):
        parse_document(body.encode(), "DERControlList")


def test_pathological_nesting_is_refused() -> None:
    body = f'<DERControlList xmlns="{NS}">' + "<a>" * 5000 + "</a>" * 5000 + "</DERControlList>"
    with pytest.raises(Sep2InputError):
        parse_document(body.encode(), "DERControlList")


def test_too_many_elements_are_refused() -> None:
    body = f'<EndDeviceList xmlns="{NS}">' + "<EndDevice/>" * 2000 + "</EndDeviceList>"
    with pytest.raises(Sep2InputError, match="more than 2000 elements"):
        parse_document(body.encode(), "EndDeviceList")


def test_odd_length_hex_is_refused() -> None:
    with pytest.raises(Sep2InputError, match="lFDI: odd number of hex digits"):
        parse_hex("3E4F45AB31EDFE5B67E343E5E4562E31984E23E", 20, "lFDI")
    body = b"<DERCapability xmlns='urn:ieee:std:2030.5:ns'><modesSupported>ABC</modesSupported>"
    body += b"<rtgMaxW><multiplier>0</multiplier><value>1</value></rtgMaxW><type>81</type>"
    with pytest.raises(Sep2InputError, match="modesSupported: odd number of hex digits"):
        DERCapability.from_xml(body + b"</DERCapability>")


def test_over_long_strings_are_refused() -> None:
    with pytest.raises(Sep2InputError, match="mfModel: longer than 32 bytes"):
        parse_string("M" * 33, 32, "mfModel")
    with pytest.raises(Sep2InputError, match="longer than 32 bytes"):
        parse_string("é" * 17, 32, "mfModel")  # 17 characters, 34 bytes
    body = (
        f'<DeviceInformation xmlns="{NS}"><lFDI>00</lFDI><mfDate>0</mfDate>'
        f"<mfHwVer>1</mfHwVer><mfID>1</mfID><mfModel>{'M' * 33}</mfModel>"
    ).encode()
    with pytest.raises(Sep2InputError, match="mfModel: longer than 32 bytes"):
        DeviceInformation.from_xml(body + b"</DeviceInformation>")


def test_wrong_namespace_is_refused() -> None:
    body = SETTINGS.replace(NS.encode(), b"urn:ieee:std:2030.5:ns:evil")
    with pytest.raises(Sep2InputError, match=r"not in the 2030\.5 namespace"):
        parse_document(body, "DERSettings")
    with pytest.raises(Sep2InputError, match=r"not in the 2030\.5 namespace"):
        parse_document(b"<DERSettings/>", "DERSettings")


def test_wrong_root_is_refused() -> None:
    with pytest.raises(Sep2InputError, match="expected root element DERStatus, got DERSettings"):
        parse_document(SETTINGS, "DERStatus")


def test_unknown_element_is_refused_by_name() -> None:
    body = SETTINGS.replace(b"<updatedTime>", b"<Bogus/><updatedTime>")
    with pytest.raises(Sep2InputError, match="unknown element Bogus"):
        parse_document(body, "DERSettings")


def test_element_from_another_namespace_is_refused_by_name() -> None:
    body = SETTINGS.replace(b"<updatedTime>", b'<x:evil xmlns:x="urn:evil"/><updatedTime>')
    with pytest.raises(Sep2InputError, match=r"\{urn:evil\}evil is not in the 2030.5 namespace"):
        parse_document(body, "DERSettings")


def test_hostile_names_are_clipped_in_reasons() -> None:
    body = SETTINGS.replace(b"<updatedTime>", b"<" + b"B" * 5000 + b"/><updatedTime>")
    with pytest.raises(Sep2InputError) as caught:
        parse_document(body, "DERSettings")
    assert len(caught.value.reason) < 100


def test_comments_and_processing_instructions_are_dropped() -> None:
    body = SETTINGS.replace(b"<setGradW>", b"<!-- note --><?pi data?><setGradW>")
    root = parse_document(body, "DERSettings")
    assert all(isinstance(node.tag, str) for node in root.iter())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "malformed XML"),
        (b"<DERSettings xmlns='urn:ieee:std:2030.5:ns'>", "malformed XML"),
        (SETTINGS.replace(b"<setGradW>0", b"<setGradW>\x00"), "NUL byte"),
        (SETTINGS.replace(b"<setGradW>0", b"<setGradW>\xff"), "not UTF-8"),
        (b'<?xml version="1.0" encoding="ISO-8859-1"?>' + SETTINGS, "encoding must be UTF-8"),
    ],
)
def test_malformed_or_mis_encoded_bodies_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(Sep2InputError, match=reason):
        parse_document(body, "DERSettings")


def test_error_carries_its_reason_and_belongs_to_the_tree() -> None:
    error = Sep2InputError("because")
    assert isinstance(error, GatekeeperError) and error.reason == "because"


# --- typed value helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(("type_name", "octets"), sorted(HEX_BINARY_BYTES.items()))
def test_hex_binary_length_per_type(type_name: str, octets: int) -> None:
    assert parse_hex("ab" * octets, octets, type_name) == "AB" * octets
    with pytest.raises(Sep2InputError, match=f"longer than {octets} bytes"):
        parse_hex("ab" * (octets + 1), octets, type_name)


def test_hex_binary_rejects_non_hex_and_reads_bitmaps() -> None:
    with pytest.raises(Sep2InputError, match="not hex"):
        parse_hex("0x", 4, "modesSupported")
    assert parse_hex_int(" 00000103 ", 4, "modesSupported") == 0x103
    assert format_hex_int(0x103, 4) == "00000103"


@pytest.mark.parametrize(("type_name", "octets"), sorted(STRING_BYTES.items()))
def test_string_length_per_type(type_name: str, octets: int) -> None:
    assert parse_string("a" * octets, octets, type_name) == "a" * octets
    with pytest.raises(Sep2InputError, match=f"longer than {octets} bytes"):
        parse_string("a" * (octets + 1), octets, type_name)


@pytest.mark.parametrize(("bits", "top"), [(8, 255), (16, 65535), (32, 4294967295)])
def test_unsigned_ranges(bits: int, top: int) -> None:
    assert parse_uint(str(top), bits, "n") == top
    with pytest.raises(Sep2InputError, match=f"outside 0..{top}"):
        parse_uint(str(top + 1), bits, "n")
    with pytest.raises(Sep2InputError, match="outside"):
        parse_uint("-1", bits, "n")


@pytest.mark.parametrize("text", ["1_000", "١٢", "0x10", "1.0", "", "9" * 30])
def test_integers_accept_only_plain_ascii_digits(text: str) -> None:
    with pytest.raises(Sep2InputError, match="not an integer"):
        parse_int(text, 0, 10**40, "n")


def test_time_is_signed_64_bit_seconds() -> None:
    assert parse_time(" 1735689600 ", "t") == 1735689600
    assert parse_time(str(-(2**63)), "t") == -(2**63)
    with pytest.raises(Sep2InputError, match="outside"):
        parse_time(str(2**63), "t")


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("1", True), ("false", False), ("0", False)]
)
def test_booleans(text: str, value: bool) -> None:
    assert parse_bool(f" {text}\n", "b") is value


@pytest.mark.parametrize("text", ["TRUE", "yes", "", "2"])
def test_bad_booleans(text: str) -> None:
    with pytest.raises(Sep2InputError, match="b: not a boolean"):
        parse_bool(text, "b")
