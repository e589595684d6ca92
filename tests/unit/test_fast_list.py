"""The approval list read for its index in batches (``fast_list``) against the reference
parser (``parse_approval_list``): for every payload, the index holds exactly what the
reference reads, or both refuse with the reference's words. Batches are made tiny here, so
that every list is cut many times, and cuts fall in every place a crafted payload can put
them."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.approvals import fast_list
from firmware.approvals.approval_list import ApprovalListError, parse_approval_list
from firmware.approvals.fast_list import NotFast, read_fast
from firmware.approvals.index import ApprovalIndexError, build_from_payload
from firmware.approvals.installed_file import decode
from firmware.approvals.jws import b64url_decode
from hil.utility import approval_payload, encode_payload, new_key, sign_payload

AREA = "MOCK-UTILITY-NORTH"
SHA = bytes(32)


@pytest.fixture(autouse=True)
def tiny_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_list, "BATCH_BYTES", 40)


def _payload(entries: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    data = approval_payload(service_area=AREA, version=3)
    data["entries"] = entries
    data.update(changes)
    return data


def _entries(n: int) -> list[dict[str, Any]]:
    return [
        {"ism": f"ISM-{i:04d}", "status": "approved", "max_discharge_w": 1000 + i}
        if i % 3
        else {"ism": f"ISM-{i:04d}", "status": "revoked"}
        for i in range(n)
    ]


def _indexed(directory: Path, payload: bytes) -> dict[str, tuple[int, int | None]]:
    """What the index built from ``payload`` holds (ApprovalListError if refused)."""
    _, built = build_from_payload(directory, payload, SHA, SHA, None, lambda header: None)
    built.commit()
    with sqlite3.connect(built.final) as db:
        rows = {ism: (status, limit) for ism, status, limit in db.execute("SELECT * FROM entries")}
    built.final.unlink()
    return rows


def _reference(payload: bytes) -> dict[str, tuple[int, int | None]]:
    parsed = parse_approval_list(payload)
    codes = {"approved": 1, "revoked": 2}
    return {ism: (codes[e.status.value], e.max_discharge_w) for ism, e in parsed.entries.items()}


def _agree(directory: Path, payload: bytes) -> str | None:
    """Both readings agree; the refusal if both refuse (with the same words)."""
    try:
        expected = _reference(payload)
    except ApprovalListError as err:
        with pytest.raises(ApprovalListError) as caught:
            _indexed(directory, payload)
        assert str(caught.value) == str(err)
        return str(err)
    assert _indexed(directory, payload) == expected
    return None


def test_a_canonical_list_is_read_without_the_reference_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = encode_payload(_payload(_entries(50)))
    fallbacks: list[bytes] = []
    monkeypatch.setattr(fast_list, "_reference_rows", lambda batch: fallbacks.append(batch))
    fast = read_fast(payload)
    assert (fast.header.version, fast.header.service_area) == (3, AREA)
    batches = list(fast.batches())
    assert len(batches) > 10, "tiny batches: the list is cut many times"
    assert fallbacks == []
    assert _indexed(tmp_path, payload) == _reference(payload)


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(lambda d: json.dumps(d, indent=2).encode(), id="pretty-printed"),
        pytest.param(lambda d: json.dumps(d, sort_keys=True).encode(), id="keys sorted"),
        pytest.param(
            lambda d: (
                json.dumps(d, ensure_ascii=True).replace('"status"', '"st\\u0061tus"').encode()
            ),
            id="escaped names",
        ),
        pytest.param(
            lambda d: b"\n " + json.dumps(d, separators=(",", ":")).encode() + b"\n",
            id="whitespace around",
        ),
    ],
)
def test_other_layouts_of_a_valid_list_are_read_alike(tmp_path: Path, layout: Any) -> None:
    data = _payload(_entries(30))
    data["entries"][4]["ism"] = 'ISM-"},{"-quoted'  # a cut inside a string must not count
    assert _agree(tmp_path, layout(data)) is None


def _raw(data: dict[str, Any], old: str, new: str) -> bytes:
    text = json.dumps(data, separators=(",", ":"))
    assert old in text
    return text.replace(old, new, 1).encode()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            lambda d: _raw(d, '"ism":"ISM-0007"', '"ism":"ISM-0007","ism":"X"'),
            "a JSON object repeats the name 'ism'",
            id="a name repeated in an entry",
        ),
        pytest.param(
            lambda d: _raw(d, '"version":3', '"version":3,"version":4'),
            "a JSON object repeats the name 'version'",
            id="a top-level name repeated",
        ),
        pytest.param(
            lambda d: _raw(d, '"entries":[', '"entries":[],"entries":['),
            "a JSON object repeats the name 'entries'",
            id="two entries arrays",
        ),
        pytest.param(
            lambda d: _raw(d, '"ISM-0020"', '"ISM-0002"'),
            "ISM ISM-0002 appears more than once",
            id="an ISM twice, batches apart",
        ),
        pytest.param(lambda d: _raw(d, '"ISM-0005"', '"ISM 0005"'), None, id="an ISM with a space"),
        pytest.param(
            lambda d: _raw(
                d,
                '"ISM-0003","status":"revoked"',
                '"ISM-0003","status":"revoked","max_discharge_w":5',
            ),
            "entry ISM-0003: max_discharge_w on a revoked entry",
            id="a limit on a revoked entry",
        ),
        pytest.param(
            lambda d: _raw(d, '"max_discharge_w":1001', '"max_discharge_w":-1'),
            None,
            id="a negative limit",
        ),
        pytest.param(
            lambda d: _raw(d, '"max_discharge_w":1001', '"max_discharge_w":1001.0'),
            None,
            id="a float limit",
        ),
        pytest.param(
            lambda d: _raw(d, '"max_discharge_w":1001', '"max_discharge_w":true'),
            None,
            id="a boolean limit",
        ),
        pytest.param(
            lambda d: _raw(d, '"max_discharge_w":1001', '"max_discharge_w":null'),
            None,
            id="a null limit",
        ),
        pytest.param(
            lambda d: _raw(d, '"max_discharge_w":1001', '"max_discharge_w":' + "9" * 30),
            None,
            id="a huge limit",
        ),
        pytest.param(
            lambda d: _raw(d, '{"ism":"ISM-0009"', '{"ism":{"x":1},"y":{"ism":"ISM-0009"'),
            None,
            id="an entry inside an entry",
        ),
        pytest.param(
            lambda d: _raw(d, '},{"ism":"ISM-0011"', '},7,{"ism":"ISM-0011"'),
            "entries[11]: must be an object, got int",
            id="a number among entries",
        ),
        pytest.param(
            lambda d: _raw(d, '"ISM-0004"', '"ISM-\\u0000"'), None, id="a control character"
        ),
    ],
)
def test_every_refusal_is_the_references(tmp_path: Path, make: Any, reason: str | None) -> None:
    refused = _agree(tmp_path, make(_payload(_entries(30))))
    assert refused is not None, "the reference refuses it"
    if reason is not None:
        assert refused == reason


def test_a_payload_that_is_not_utf8_or_not_json_is_the_references(tmp_path: Path) -> None:
    for payload in (b'{"issuer": "\xff"}', b"[1, 2", b"", b'{"entries": NaN}'):
        assert _agree(tmp_path, payload) is not None


def test_the_reference_decides_when_the_entries_key_is_escaped() -> None:
    payload = _raw(_payload(_entries(3)), '"entries"', '"\\u0065ntries"')
    with pytest.raises(NotFast):
        read_fast(payload)


_ISM = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=0, max_size=8)
_ENTRY = st.fixed_dictionaries(
    {"ism": _ISM, "status": st.sampled_from(["approved", "revoked", "other"])},
    optional={"max_discharge_w": st.one_of(st.integers(-5, 2**64), st.none(), st.just(1.5))},
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(_ENTRY, max_size=12), indent=st.sampled_from([None, 1]), sort=st.booleans())
def test_random_lists_are_read_alike(
    tmp_path: Path, entries: list[dict[str, Any]], indent: int | None, sort: bool
) -> None:
    payload = json.dumps(_payload(entries), indent=indent, sort_keys=sort).encode()
    _agree(tmp_path, payload)


# --- the token read in chunks -----------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 64])
def test_the_token_is_decoded_and_written_alike_at_any_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    from firmware.approvals import installed_file

    monkeypatch.setattr(installed_file, "CHUNK_BYTES", chunk)
    token = sign_payload(new_key(), _payload(_entries(7)))
    out = tmp_path / "out"
    with out.open("wb") as sink:
        decoded = decode(("\n\t " + token + " \r\n").encode(), sink.fileno())
    assert out.read_bytes() == token.encode() + b"\n", "the token and one newline"
    assert decoded.payload == b64url_decode(token.split(".")[1].encode(), "payload")
    assert decoded.scanned.signature == token.split(".")[2].encode()


@pytest.mark.parametrize("bad", ["+", "/", "=", "*"])
def test_a_payload_outside_base64url_is_refused_at_any_chunk(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    from firmware.approvals import installed_file

    monkeypatch.setattr(installed_file, "CHUNK_BYTES", 5)
    head, body, tail = sign_payload(new_key(), _payload(_entries(2))).split(".")
    with pytest.raises(ApprovalListError.__mro__[1], match="JWS payload is not base64url"):
        decode(f"{head}.{body[:9]}{bad}{body[10:]}.{tail}".encode())


def test_an_index_error_is_not_taken_for_a_refusal(tmp_path: Path) -> None:
    with pytest.raises(ApprovalIndexError, match="cannot write"):
        _indexed(tmp_path / "missing", encode_payload(_payload(_entries(3))))


def test_cuts_follow_the_entries_only() -> None:
    payload = encode_payload(_payload(_entries(20)))
    fast = read_fast(payload)
    assert payload[fast.start : fast.start + 1] == b"[" and payload[fast.end - 1] == ord("]")
    assert re.fullmatch(rb"\[.*\]", payload[fast.start : fast.end], re.S)
