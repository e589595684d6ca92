"""The approval list's payload, validated once into an O(1) map from ISM number to entry.

Owns the payload schema: ``type``, ``version``, ``issuer``, ``service_area``, ``issued_at``,
``expires_at`` (RFC 3339, UTC) and ``entries`` (``ism``, ``status``, optional
``max_discharge_w``); every name required and no other, numbers non-negative integers (never
floats or booleans), each ISM once. It does not verify the signature (``jws``, which must pass
first) nor decide whether a list may replace the installed one (``store``).

Lean by design (a million entries in ~150 MB): the map holds ISM -> a shared ``Entry``, one
object per distinct (status, limit) rather than per ISM, and each entry is validated as the
JSON decoder builds it, so no per-entry dict outlives its own decoding.
"""

from __future__ import annotations

import gc
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from firmware.approvals import ApprovalError
from firmware.approvals.jws import shown
from firmware.approvals.view import Entry as Entry
from firmware.approvals.view import ListReading
from firmware.approvals.view import Status as Status
from firmware.approvals.view import rfc3339 as rfc3339

LIST_TYPE = "j3072-approval-list"
FIELDS = frozenset(
    {"type", "version", "issuer", "service_area", "issued_at", "expires_at", "entries"}
)
ENTRY_FIELDS = frozenset({"ism", "status", "max_discharge_w"})
MAX_INTEGER = 2**63 - 1  # versions and limits fit a signed 64-bit integer
MAX_ISM_CHARS = 64
MAX_NAME_CHARS = 256  # issuer, service_area
LISTED = object()  # what the decoder leaves in the entries array for each entry it filed
_UTC_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|\+00:00)", re.ASCII)


class ApprovalListError(ApprovalError):
    """Raised when a payload is not a valid approval list: not JSON, not an object, a field
    missing, extra or mistyped, a wrong ``type``, a bad time, or an ISM listed twice."""


_APPROVED, _REVOKED = Status.APPROVED.value, Status.REVOKED.value
_NO_LIMIT = object()  # max_discharge_w absent (an explicit null is refused)


@dataclass(frozen=True, slots=True)
class ApprovalList(ListReading):
    version: int
    issuer: str
    service_area: str
    issued_at: datetime  # aware, UTC
    expires_at: datetime  # aware, UTC, after issued_at
    entries: Mapping[str, Entry]  # read-only

    def lookup(self, ism: str) -> Entry | None:
        return self.entries.get(ism)


def parse_approval_list(payload: bytes | bytearray) -> ApprovalList:
    """Validate a verified payload; ApprovalListError with the first problem otherwise."""
    decoder = _EntryDecoder()
    data = _without_gc(lambda: _decode(payload, decoder))
    if type(data) is not dict:
        raise ApprovalListError("payload is not a JSON object with the approval list fields")
    missing, extra = sorted(FIELDS - data.keys()), sorted(data.keys() - FIELDS)
    if missing:
        raise ApprovalListError(f"payload is missing {', '.join(missing)}")
    if extra:
        raise ApprovalListError(f"payload has unexpected field(s) {', '.join(extra)}")
    if data["type"] != LIST_TYPE:
        raise ApprovalListError(f"type must be {LIST_TYPE!r}, got {shown(data['type'])}")
    issued_at, expires_at = _time(data, "issued_at"), _time(data, "expires_at")
    if expires_at <= issued_at:
        raise ApprovalListError("expires_at is not after issued_at")
    return ApprovalList(
        version=_count(data["version"], "version"),
        issuer=_name(data, "issuer"),
        service_area=_name(data, "service_area"),
        issued_at=issued_at,
        expires_at=expires_at,
        entries=_entries(data["entries"], decoder.entries),
    )


def _without_gc(parse: Callable[[], Any]) -> Any:
    """Run ``parse`` with the cyclic collector paused: a million entries are a million
    allocations that would trigger it again and again (a third of the load time) while
    creating no cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return parse()
    finally:
        if was_enabled:
            gc.enable()


def _decode(payload: bytes | bytearray, decoder: _EntryDecoder) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApprovalListError("payload is not UTF-8") from err
    try:
        hook = decoder.hook()
        return json.loads(text, object_pairs_hook=hook, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise ApprovalListError(
            f"payload is not JSON: {err.msg} (line {err.lineno} column {err.colno})"
        ) from err
    except RecursionError as err:
        raise ApprovalListError("payload is nested too deeply") from err
    except ValueError as err:
        # json turns each integer's digits into an int, and CPython refuses one of more than
        # sys.get_int_max_str_digits() digits (4,300) with a plain ValueError; no field here
        # takes more than 19 digits (MAX_INTEGER)
        raise ApprovalListError(
            f"payload has an integer of more than {sys.get_int_max_str_digits()} digits; "
            f"numbers must be non-negative integers up to {MAX_INTEGER}"
        ) from err


def _refuse_constant(name: str) -> Any:
    raise ApprovalListError(f"payload has {name}, which is not JSON")


class _EntryDecoder:
    """``object_pairs_hook`` that files each entry-shaped object (``ism`` and only entry
    fields) straight into the map, validated on the spot, and returns ``LISTED`` in its place;
    other objects become dicts. One Entry is shared per (status, limit). This runs once per
    entry, so it is written for speed: plain strings, no f-string unless refusing."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self._shared: dict[tuple[str, object], Entry] = {}
        self._plain: dict[str, Entry] = {}  # status -> its shared Entry without a limit

    def hook(self) -> Callable[[list[tuple[str, Any]]], object]:
        """The ``object_pairs_hook``: a closure over plain locals, since it runs once per
        entry. The fast path takes the common shapes {"ism", "status"} and {"ism",
        "status", "max_discharge_w"} whose (status, limit) was already seen and validated:
        the same checks as the full path, without building a dict. Anything else, including
        every refusal, takes the full path."""
        entries, plain, shared, full = self.entries, self._plain, self._shared, self._full

        def hook(pairs: list[tuple[str, Any]]) -> object:
            count = len(pairs)
            if count == 2 or count == 3:
                name, ism = pairs[0]
                second, status = pairs[1]
                entry = None
                if name == "ism" and second == "status" and type(status) is str:
                    if count == 2:
                        entry = plain.get(status)
                    else:
                        third, limit = pairs[2]
                        if third == "max_discharge_w" and type(limit) is int:
                            entry = shared.get((status, limit))
                if (
                    entry is not None
                    and type(ism) is str
                    and 0 < len(ism) <= MAX_ISM_CHARS
                    and ism.isprintable()
                    and " " not in ism
                    and ism not in entries
                ):
                    entries[ism] = entry
                    return LISTED
            return full(pairs)

        return hook

    def _full(self, pairs: list[tuple[str, Any]]) -> object:
        fields = dict(pairs)
        if len(fields) != len(pairs):
            names = [name for name, _ in pairs]
            twice = next(name for name in names if names.count(name) > 1)
            raise ApprovalListError(f"a JSON object repeats the name {shown(twice)}")
        if "ism" not in fields or not ENTRY_FIELDS.issuperset(fields):
            return fields
        ism = fields["ism"]
        if type(ism) is not str or not 0 < len(ism) <= MAX_ISM_CHARS or not _printable(ism):
            raise ApprovalListError(
                f"entry ism must be 1 to {MAX_ISM_CHARS} printable characters without "
                f"spaces, got {shown(ism)}"
            )
        if ism in self.entries:
            raise ApprovalListError(f"ISM {ism} appears more than once")
        status = fields.get("status")
        limit = fields.get("max_discharge_w", _NO_LIMIT)
        entry = None
        # the cache holds validated keys only; 7200.0 and True hash like ints, so check types
        if type(status) is str and (type(limit) is int or limit is _NO_LIMIT):
            entry = self._shared.get((status, limit))
        self.entries[ism] = entry if entry is not None else self._new_entry(ism, status, limit)
        return LISTED

    def _new_entry(self, ism: str, status: Any, limit: Any) -> Entry:
        if type(status) is not str or status not in (_APPROVED, _REVOKED):
            raise ApprovalListError(
                f'entry {ism}: status must be "approved" or "revoked", got {shown(status)}'
            )
        if limit is not _NO_LIMIT:
            if status != _APPROVED:
                raise ApprovalListError(f"entry {ism}: max_discharge_w on a revoked entry")
            _count(limit, f"entry {ism}: max_discharge_w")
        entry = Entry(Status(status), None if limit is _NO_LIMIT else limit)
        self._shared[status, limit] = entry
        if limit is _NO_LIMIT:
            self._plain[status] = entry
        return entry


def _printable(ism: str) -> bool:
    return ism.isprintable() and " " not in ism


def _count(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_INTEGER:
        raise ApprovalListError(f"{what} must be a non-negative integer, got {shown(value)}")
    return value


def _name(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if type(value) is not str or not 0 < len(value) <= MAX_NAME_CHARS or not value.strip():
        raise ApprovalListError(
            f"{key} must be a non-empty string of at most {MAX_NAME_CHARS} characters, "
            f"got {shown(value)}"
        )
    return value


def _time(data: dict[str, Any], key: str) -> datetime:
    value = data[key]
    if type(value) is not str or not _UTC_TIME.fullmatch(value):
        raise ApprovalListError(
            f"{key} must be an RFC 3339 UTC time such as 2026-01-31T00:00:00Z, got {shown(value)}"
        )
    try:
        return datetime.fromisoformat(value)
    except ValueError as err:
        raise ApprovalListError(f"{key} is not a valid time: {shown(value)}") from err


def _entries(raw: Any, filed: dict[str, Entry]) -> Mapping[str, Entry]:
    if type(raw) is not list:
        raise ApprovalListError(f"entries must be an array, got {type(raw).__name__}")
    if raw.count(LISTED) != len(raw):
        index, item = next((i, item) for i, item in enumerate(raw) if item is not LISTED)
        raise ApprovalListError(f"entries[{index}]: {_not_an_entry(item)}")
    if len(filed) != len(raw):
        raise ApprovalListError("an entry-shaped object appears outside entries")
    return MappingProxyType(filed)


def _not_an_entry(item: Any) -> str:
    if type(item) is not dict:
        return f"must be an object, got {type(item).__name__}"
    if "ism" not in item:
        return "missing ism"
    return f"unexpected field(s) {', '.join(sorted(item.keys() - ENTRY_FIELDS))}"
