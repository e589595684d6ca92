"""IEEE 2030.5 XML: the namespace, the media type, the hardened parser and the typed value rules.

Owns how a request body becomes an lxml element we can trust: the size cap *before* parsing, no
DOCTYPE and no entities, no network, the element count and depth caps, the 2030.5 namespace on
every element and a known element set. Also owns the lexical rules of the schema's simple types
(hexBinary with its octet cap, strings capped in UTF-8 bytes, bounded integers, TimeType,
xs:boolean). It does not know the resources themselves: those are the sibling model modules.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from firmware.errors import GatekeeperError

NS = "urn:ieee:std:2030.5:ns"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MEDIA_TYPE = "application/sep+xml"

MAX_BODY_BYTES = 64 * 1024
MAX_ELEMENTS = 2000
MAX_DEPTH = 32
_MAX_NAME_IN_REASON = 48

# Octet caps of the schema's hexBinary and string types (2030.5-2018 sep.xsd simple types).
HEX_BINARY_BYTES = {
    "HexBinary8": 1,
    "HexBinary16": 2,
    "HexBinary32": 4,
    "HexBinary48": 6,
    "HexBinary64": 8,
    "HexBinary128": 16,
    "HexBinary160": 20,
}
STRING_BYTES = {
    "String6": 6,
    "String16": 16,
    "String20": 20,
    "String32": 32,
    "String42": 42,
    "String192": 192,
}

_INTEGER = re.compile(r"[+-]?[0-9]{1,25}", re.ASCII)
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+", re.ASCII)
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class Sep2InputError(GatekeeperError):
    """Raised when a request body is not an acceptable 2030.5 document; ``reason`` suits a 400."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clip(name: str) -> str:
    """Shorten a peer-supplied name so a hostile one cannot flood a reason or a log line."""
    return name if len(name) <= _MAX_NAME_IN_REASON else name[:_MAX_NAME_IN_REASON] + "..."


def qname(local: str) -> str:
    """The Clark name ``{urn:ieee:std:2030.5:ns}local`` lxml uses for a 2030.5 element."""
    return f"{{{NS}}}{local}"


def parse_document(
    body: bytes, expected_root: str, known_elements: Collection[str] | None = None
) -> Any:
    """Parse ``body`` into an lxml element, refusing anything but a plain 2030.5 document.

    ``known_elements`` defaults to every element name the models declare; any other element,
    in the 2030.5 namespace or not, is refused with its name in the reason.
    """
    _check_raw(body)
    root = _parse(body)
    _check_docinfo(root.getroottree().docinfo)
    _check_root(root, expected_root)
    known = known_elements if known_elements is not None else _model_element_names()
    _check_tree(root, known)
    return root


def _check_raw(body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise Sep2InputError(f"body exceeds {MAX_BODY_BYTES} bytes")
    if b"\x00" in body:  # XML 1.0 has no NUL; it also rules out UTF-16/32 smuggling
        raise Sep2InputError("body contains a NUL byte")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Sep2InputError("body is not UTF-8") from None
    upper = body.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise Sep2InputError("DOCTYPE and entity declarations are not allowed")


def _parse(body: bytes) -> Any:
    # lxml: imported when a document is parsed (the models are used without XML, too)
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise Sep2InputError(f"malformed XML: {clip(str(exc.msg))}") from None
    if root is None:
        raise Sep2InputError("empty document")
    return root


def _check_docinfo(docinfo: Any) -> None:
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise Sep2InputError("DOCTYPE and entity declarations are not allowed")
    if str(docinfo.encoding).upper() != "UTF-8":
        raise Sep2InputError("document encoding must be UTF-8")


def _check_root(root: Any, expected_root: str) -> None:
    from lxml import etree

    name = etree.QName(root)
    if name.namespace != NS:
        raise Sep2InputError(f"root element {clip(root.tag)} is not in the 2030.5 namespace")
    if name.localname != expected_root:
        raise Sep2InputError(f"expected root element {expected_root}, got {clip(name.localname)}")


def _check_tree(root: Any, known: Collection[str]) -> None:
    from lxml import etree

    count = 0
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if node.tag is etree.Entity:
            raise Sep2InputError(f"entity reference &{clip(str(node.name))}; is not allowed")
        if not isinstance(node.tag, str):
            raise Sep2InputError("only elements and text are allowed")
        count += 1
        if count > MAX_ELEMENTS:
            raise Sep2InputError(f"more than {MAX_ELEMENTS} elements")
        if depth > MAX_DEPTH:
            raise Sep2InputError(f"elements nested deeper than {MAX_DEPTH}")
        name = etree.QName(node)
        if name.namespace != NS:
            raise Sep2InputError(f"element {clip(node.tag)} is not in the 2030.5 namespace")
        if name.localname not in known:
            raise Sep2InputError(f"unknown element {clip(name.localname)}")
        stack.extend((child, depth + 1) for child in node)


def _model_element_names() -> frozenset[str]:
    # Imported here, not at the top: the model modules import this one.
    from firmware.sep2.registry import known_element_names

    return known_element_names()


def parse_int(text: str, low: int, high: int, name: str) -> int:
    """An xs:integer-family value within ``low..high`` (no underscores, no non-ASCII digits)."""
    stripped = text.strip()
    if not _INTEGER.fullmatch(stripped):
        raise Sep2InputError(f"{name}: not an integer")
    value = int(stripped)
    if not low <= value <= high:
        raise Sep2InputError(f"{name}: {value} is outside {low}..{high}")
    return value


def parse_uint(text: str, bits: int, name: str) -> int:
    """An unsigned integer of the schema's UInt<bits> type."""
    return parse_int(text, 0, (1 << bits) - 1, name)


def parse_time(text: str, name: str) -> int:
    """A TimeType: signed 64-bit seconds since the Unix epoch (UTC, no leap seconds)."""
    return parse_int(text, -(1 << 63), (1 << 63) - 1, name)


def parse_bool(text: str, name: str) -> bool:
    """An xs:boolean: ``true``, ``false``, ``1`` or ``0``."""
    value = _BOOLEANS.get(text.strip())
    if value is None:
        raise Sep2InputError(f"{name}: not a boolean")
    return value


def format_bool(value: bool) -> str:
    """The canonical xs:boolean spelling."""
    return "true" if value else "false"


def parse_hex(text: str, max_bytes: int, name: str) -> str:
    """A hexBinary of at most ``max_bytes`` octets, returned in upper case."""
    stripped = text.strip()
    if len(stripped) % 2:
        raise Sep2InputError(f"{name}: odd number of hex digits")
    if not _HEX.fullmatch(stripped):
        raise Sep2InputError(f"{name}: not hex")
    if len(stripped) // 2 > max_bytes:
        raise Sep2InputError(f"{name}: longer than {max_bytes} bytes")
    return stripped.upper()


def parse_hex_int(text: str, max_bytes: int, name: str) -> int:
    """A hexBinary bitmap of at most ``max_bytes`` octets, as an integer."""
    return int(parse_hex(text, max_bytes, name), 16)


def format_hex_int(value: int, nbytes: int) -> str:
    """A bitmap as upper-case hexBinary of exactly ``nbytes`` octets."""
    return f"{value:0{2 * nbytes}X}"


def parse_string(text: str, max_bytes: int, name: str) -> str:
    """A string whose UTF-8 encoding fits ``max_bytes`` (the schema's StringN rule)."""
    if len(text.encode("utf-8")) > max_bytes:
        raise Sep2InputError(f"{name}: longer than {max_bytes} bytes")
    return text
