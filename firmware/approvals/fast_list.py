"""The approval list's payload read for its index in bounded memory: the top-level fields,
then the entries in batches of about a megabyte, never the whole list as Python objects.

``approval_list.parse_approval_list`` is the reference: what it refuses is refused, with its
words. This module is the fast way to the same answer for the lists utilities publish, and it
gives up (``NotFast``) rather than guess whenever it cannot prove that it read exactly what
the reference would:

- the top level is decoded by msgspec with the entries left raw (``_Top``), and the entries'
  span located after the one ``"entries":`` key (inside a JSON string a quote is escaped, so
  those bytes can only be that key; a second such key is refused below). The payload with the
  span replaced by ``[]`` is then read by the reference parser: it refuses repeated names,
  checks every top-level field and gives the header;
- the entries array is cut after ``}`` ``,`` ``{`` (whitespace allowed) every ~1 MiB. A batch
  decodes only if every cut in it fell between two entries: a cut inside a string leaves the
  string unterminated. msgspec checks each entry's shape and types (``_Entry``); since msgspec
  keeps the last of repeated names where the reference refuses them, a batch is accepted only
  when encoding what was decoded gives back its exact bytes (no repeated name, no escape, no
  whitespace can survive that). Other batches (pretty-printed lists, another key order) are
  read by the reference's entry decoder, a batch at a time;
- what types cannot say (printable ISMs without spaces, a limit only on an approved entry, in
  range) is checked per row, and an ISM listed twice is refused by the index's primary key.

Any doubt raises ``NotFast``; the caller then runs the reference parser over the whole
payload, which refuses with the exact reason (or, for a list this module could not prove,
accepts it the slow way).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec

from firmware.approvals.approval_list import (
    LISTED,
    MAX_INTEGER,
    MAX_ISM_CHARS,
    ApprovalList,
    ApprovalListError,
    _EntryDecoder,
    parse_approval_list,
)
from firmware.approvals.view import ListReading, Status

BATCH_BYTES = 1 << 20
_ENTRIES_KEY = re.compile(rb'"entries"\s*:\s*(?=\[)')
_CUT = re.compile(rb"\}\s*,\s*\{")
_WHITESPACE = b" \t\r\n"
_CODES = {Status.APPROVED.value: 1, Status.REVOKED.value: 2}

IndexRow = tuple[str, int, int | None]  # ism, status code (index._CODES), max_discharge_w


class NotFast(Exception):
    """This module cannot prove its reading: the reference parser must decide."""


class _Entry(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    ism: str
    status: Literal["approved", "revoked"]
    max_discharge_w: int | msgspec.UnsetType = msgspec.UNSET


class _Top(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    version: int
    issuer: str
    service_area: str
    issued_at: str
    expires_at: str
    entries: msgspec.Raw


@dataclass(frozen=True, slots=True)
class ListHeader(ListReading):
    """What a list says of itself, without its entries."""

    version: int
    issuer: str
    service_area: str
    issued_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, approval_list: ApprovalList) -> ListHeader:
        return cls(approval_list.version, approval_list.issuer, approval_list.service_area,
                   approval_list.issued_at, approval_list.expires_at)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FastList:
    header: ListHeader
    payload: bytes | bytearray
    start: int  # the entries array: payload[start:end], '[' ... ']'
    end: int

    def batches(self) -> Iterator[list[IndexRow]]:
        """The entries as index rows, about ``BATCH_BYTES`` of payload at a time; NotFast on
        anything the reference parser must judge."""
        payload, view = self.payload, memoryview(self.payload)
        first, last = self.start + 1, self.end - 1  # inside the brackets
        while first < last and payload[first] in _WHITESPACE:
            first += 1
        while last > first and payload[last - 1] in _WHITESPACE:
            last -= 1
        decoder, encoder = msgspec.json.Decoder(list[_Entry]), msgspec.json.Encoder()
        position = first
        while position < last:
            cut = _CUT.search(payload, min(position + BATCH_BYTES, last), last)
            stop = last if cut is None else cut.start() + 1
            batch = b"[" + view[position:stop].tobytes() + b"]"
            yield _fast_rows(batch, decoder, encoder)
            position = last if cut is None else cut.end() - 1


def read_fast(payload: bytes | bytearray) -> FastList:
    """The header and where the entries lie; NotFast if this module cannot prove them."""
    try:
        top = msgspec.json.decode(payload, type=_Top)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError) as err:
        raise NotFast(str(err)) from err
    found = _ENTRIES_KEY.search(payload)
    if found is None:
        raise NotFast("the entries key is escaped")
    start = found.end()
    end = start + len(memoryview(top.entries))
    if payload[end - 1 : end] != b"]":
        raise NotFast("the entries array is not where its key is")
    view = memoryview(payload)
    skeleton = view[:start].tobytes() + b"[]" + view[end:].tobytes()
    try:
        header = ListHeader.of(parse_approval_list(skeleton))
    except ApprovalListError as err:
        raise NotFast(str(err)) from err
    return FastList(header, payload, start, end)


def header_of(payload: bytes | bytearray) -> ListHeader:
    """What a verified payload says of itself; ApprovalListError if it is not a valid list
    (its entries are then read too: the reference parser decides)."""
    try:
        return read_fast(payload).header
    except NotFast:
        return ListHeader.of(parse_approval_list(payload))


def _fast_rows(
    batch: bytes, decoder: msgspec.json.Decoder[list[_Entry]], encoder: msgspec.json.Encoder
) -> list[IndexRow]:
    try:
        entries = decoder.decode(batch)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError):
        return _reference_rows(batch)
    if encoder.encode(entries) != batch:
        return _reference_rows(batch)  # not in canonical form: repeated names may hide here
    rows: list[IndexRow] = []
    append, unset, codes, approved = rows.append, msgspec.UNSET, _CODES, Status.APPROVED.value
    for entry in entries:
        ism, limit = entry.ism, entry.max_discharge_w
        if not 0 < len(ism) <= MAX_ISM_CHARS or not ism.isprintable() or " " in ism:
            raise NotFast("an ISM the reference refuses")
        if limit is unset:
            append((ism, codes[entry.status], None))
        elif entry.status == approved and 0 <= limit <= MAX_INTEGER:
            append((ism, 1, limit))
        else:
            raise NotFast("a limit the reference refuses")
    return rows


def _reference_rows(batch: bytes) -> list[IndexRow]:
    """A batch the fast way could not prove, read by the reference's entry decoder."""
    decoder = _EntryDecoder()
    try:
        items = json.loads(batch.decode("utf-8"), object_pairs_hook=decoder.hook())
    except (ApprovalListError, ValueError, RecursionError) as err:
        raise NotFast(str(err)) from err
    if type(items) is not list or items.count(LISTED) != len(items):
        raise NotFast("not entries")
    if len(decoder.entries) != len(items):
        raise NotFast("an entry-shaped object inside an entry")
    return [(ism, _CODES[entry.status.value], entry.max_discharge_w)
            for ism, entry in decoder.entries.items()]  # fmt: skip
