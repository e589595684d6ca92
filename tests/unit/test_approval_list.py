"""The approval list payload and every refusal of its checks, each through ``install`` on a
store that holds a list already: the one-line reason, and nothing changed on disk or in
memory."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.approvals import ApprovalError
from firmware.approvals.approval_list import (
    ApprovalListError,
    Entry,
    Status,
    parse_approval_list,
)
from firmware.approvals.jws import sign_es256, utility_key
from firmware.approvals.store import FILE_NAME, ApprovalStore
from hil.utility import approval_payload, encode_payload, new_key, sign_payload

AREA = "MOCK-UTILITY-NORTH"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ISSUED = NOW - timedelta(days=1)
EXPIRES = NOW + timedelta(days=29)
KEY = new_key()
STRANGER = new_key()


def payload(**changes: Any) -> dict[str, Any]:
    """A valid version-6 payload (the store holds version 5), with ``changes`` applied."""
    data = approval_payload(
        service_area=AREA,
        version=6,
        approve={"ISM-A": 7200, "ISM-B": None},
        revoke=["ISM-R"],
        issued_at=ISSUED,
        expires_at=EXPIRES,
    )
    data.update(changes)
    return data


def without(name: str) -> dict[str, Any]:
    data = payload()
    del data[name]
    return data


def with_entry(entry: Any) -> dict[str, Any]:
    return payload(entries=[*payload()["entries"], entry])


@dataclass
class Installed:
    store: ApprovalStore
    directory: Path

    def files(self) -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in sorted(self.directory.iterdir())}

    def refuse(self, token: str) -> str:
        """Install ``token``; it must be refused with one line and change nothing."""
        before, current = self.files(), self.store.current
        with pytest.raises(ApprovalError) as caught:
            self.store.install(token)
        assert self.files() == before, "a refused list changed the state directory"
        assert self.store.current is current, "a refused list changed the list in force"
        reason = str(caught.value)
        assert reason and "\n" not in reason
        return reason


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Installed]:
    store = ApprovalStore(tmp_path, [utility_key(KEY.public_key(), "k")], AREA, lambda: NOW)
    store.install(sign_payload(KEY, payload(version=5)))
    assert store.current is not None and store.current.version == 5
    yield Installed(store, tmp_path)


# --- the model ------------------------------------------------------------------------------


def test_a_valid_list_parses_into_lookups() -> None:
    parsed = parse_approval_list(encode_payload(payload()))
    assert (parsed.version, parsed.issuer, parsed.service_area) == (6, "TEST utility", AREA)
    assert (parsed.issued_at, parsed.expires_at) == (ISSUED, EXPIRES)
    assert parsed.lookup("ISM-A") == Entry(Status.APPROVED, 7200)
    assert parsed.lookup("ISM-B") == Entry(Status.APPROVED, None)
    assert parsed.lookup("ISM-R") == Entry(Status.REVOKED, None)
    assert parsed.lookup("ISM-Z") is None
    assert [parsed.status_of(i) for i in ("ISM-A", "ISM-R", "ISM-Z", "ism-a")] == [
        "approved",
        "revoked",
        "not listed",
        "not listed",
    ]


def test_valid_at_is_issued_at_inclusive_to_expires_at_exclusive() -> None:
    parsed = parse_approval_list(encode_payload(payload()))
    second = timedelta(seconds=1)
    assert [parsed.valid_at(t) for t in (ISSUED - second, ISSUED, EXPIRES - second, EXPIRES)] == [
        False,
        True,
        True,
        False,
    ]


def test_entries_are_shared_and_read_only() -> None:
    entries = [{"ism": f"ISM-{n}", "status": "approved", "max_discharge_w": 3300} for n in range(9)]
    parsed = parse_approval_list(encode_payload(payload(entries=entries)))
    assert len({id(parsed.lookup(f"ISM-{n}")) for n in range(9)}) == 1  # one object, 9 ISMs
    with pytest.raises(TypeError):
        parsed.entries["ISM-X"] = Entry(Status.APPROVED)  # type: ignore[index]


def test_an_empty_list_and_offset_times_parse() -> None:
    parsed = parse_approval_list(
        encode_payload(payload(entries=[], issued_at="2026-05-31T12:00:00.5+00:00"))
    )
    assert len(parsed.entries) == 0 and parsed.issued_at.microsecond == 500_000


# --- refusals of the envelope ---------------------------------------------------------------


def test_a_bad_signature_is_refused(installed: Installed) -> None:
    head, _, signature = sign_payload(KEY, payload()).split(".")
    forged = sign_payload(KEY, payload(entries=[])).split(".")[1]
    assert installed.refuse(f"{head}.{forged}.{signature}").startswith("signature does not verify")


def test_an_unknown_key_is_refused(installed: Installed) -> None:
    assert installed.refuse(sign_payload(STRANGER, payload())).startswith("unknown utility key")
    without_kid = sign_payload(STRANGER, payload(), with_kid=False)
    assert installed.refuse(without_kid) == "signature does not verify with any utility key"


def test_alg_none_is_refused(installed: Installed) -> None:
    body = sign_payload(KEY, payload()).split(".")[1]
    unsigned = f"eyJhbGciOiJub25lIn0.{body}."  # {"alg":"none"}, no signature
    assert installed.refuse(unsigned) == "JWS alg must be ES256, got 'none'"


def test_hs256_keyed_with_the_public_key_is_refused(installed: Installed) -> None:
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = sign_payload(KEY, payload()).split(".")[1]
    signing_input = f"eyJhbGciOiJIUzI1NiJ9.{body}"  # {"alg":"HS256"}
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert installed.refuse(token) == "JWS alg must be ES256, got 'HS256'"


@pytest.mark.parametrize("parts", [2, 4])
def test_a_wrong_number_of_parts_is_refused(installed: Installed, parts: int) -> None:
    pieces = sign_payload(KEY, payload()).split(".")
    token = ".".join((pieces * 2)[:parts])
    assert installed.refuse(token) == f"compact JWS has {parts} part(s), expected 3"


def test_bad_base64url_is_refused(installed: Installed) -> None:
    head, body, signature = sign_payload(KEY, payload()).split(".")
    assert installed.refuse(f"{head}.{body[:8]}+{body[9:]}.{signature}") == (
        "JWS payload is not base64url"
    )


# --- refusals of the payload ----------------------------------------------------------------


def _refuse_payload(installed: Installed, data: Any) -> str:
    return installed.refuse(sign_payload(KEY, data))


@pytest.mark.parametrize("data", [[], "list", 6, None], ids=["array", "string", "number", "null"])
def test_a_payload_that_is_not_an_object_is_refused(installed: Installed, data: Any) -> None:
    assert _refuse_payload(installed, data) == (
        "payload is not a JSON object with the approval list fields"
    )


def test_a_payload_that_is_not_json_is_refused(installed: Installed) -> None:
    reason = installed.refuse(sign_es256(b'{"type": ', KEY))
    assert reason.startswith("payload is not JSON: Expecting value (line 1 column 10)")


def test_a_payload_that_is_not_utf8_is_refused(installed: Installed) -> None:
    assert installed.refuse(sign_es256(b'{"issuer": "\xff"}', KEY)) == "payload is not UTF-8"


@pytest.mark.parametrize(
    "name", ["type", "version", "issuer", "service_area", "issued_at", "expires_at", "entries"]
)
def test_a_missing_field_is_refused(installed: Installed, name: str) -> None:
    assert _refuse_payload(installed, without(name)) == f"payload is missing {name}"


def test_an_extra_field_is_refused(installed: Installed) -> None:
    reason = _refuse_payload(installed, payload(comment="hi"))
    assert reason == "payload has unexpected field(s) comment"


def test_a_wrong_type_is_refused(installed: Installed) -> None:
    reason = _refuse_payload(installed, payload(type="j3072-approval-list-v2"))
    assert reason == "type must be 'j3072-approval-list', got 'j3072-approval-list-v2'"


@pytest.mark.parametrize(
    ("version", "shown"),
    [(-1, "-1"), (6.0, "6.0"), (6.5, "6.5"), ("6", "'6'"), (True, "True"), (2**63, str(2**63))],
)
def test_a_version_that_is_not_a_non_negative_integer_is_refused(
    installed: Installed, version: Any, shown: str
) -> None:
    reason = _refuse_payload(installed, payload(version=version))
    assert reason == f"version must be a non-negative integer, got {shown}"


def _with_raw_number(data: dict[str, Any], marker: str, digits: str) -> bytes:
    """The payload's JSON with the string ``marker`` replaced by a bare number (json.dumps
    itself refuses to write an int of more than 4,300 digits)."""
    return encode_payload(data).replace(f'"{marker}"'.encode(), digits.encode())


@pytest.mark.parametrize("digits", [5000, 100_000])
@pytest.mark.parametrize("where", ["version", "max_discharge_w"])
def test_a_huge_integer_is_refused_in_one_line(
    installed: Installed, where: str, digits: int
) -> None:
    data = (
        payload(version="HUGE")
        if where == "version"
        else with_entry({"ism": "ISM-HUGE", "status": "approved", "max_discharge_w": "HUGE"})
    )
    reason = installed.refuse(sign_es256(_with_raw_number(data, "HUGE", "9" * digits), KEY))
    assert reason == (
        "payload has an integer of more than 4300 digits; numbers must be non-negative "
        "integers up to 9223372036854775807"
    )


@pytest.mark.parametrize("name", ["issuer", "service_area"])
@pytest.mark.parametrize("value", [7, "", "   ", None, ["A"], "x" * 257])
def test_a_bad_name_is_refused(installed: Installed, name: str, value: Any) -> None:
    reason = _refuse_payload(installed, payload(**{name: value}))
    assert reason.startswith(f"{name} must be a non-empty string")


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-31T12:00:00",
        "2026-05-31T14:00:00+02:00",
        "2026-05-31",
        "2026-05-31 12:00:00Z",
        "2026-05-31T12:00:00-00:00",
        1780000000,
        "2026-05-31t12:00:00z",
    ],
)
def test_a_time_that_is_not_rfc3339_utc_is_refused(installed: Installed, value: Any) -> None:
    reason = _refuse_payload(installed, payload(issued_at=value))
    assert reason.startswith("issued_at must be an RFC 3339 UTC time")


def test_an_impossible_date_is_refused(installed: Installed) -> None:
    reason = _refuse_payload(installed, payload(expires_at="2026-02-30T00:00:00Z"))
    assert reason == "expires_at is not a valid time: '2026-02-30T00:00:00Z'"


def test_expiry_before_issue_is_refused(installed: Installed) -> None:
    reason = _refuse_payload(installed, payload(expires_at=payload()["issued_at"]))
    assert reason == "expires_at is not after issued_at"


@pytest.mark.parametrize("entries", [{}, "ISM-A", None])
def test_entries_that_are_not_an_array_are_refused(installed: Installed, entries: Any) -> None:
    reason = _refuse_payload(installed, payload(entries=entries))
    assert reason.startswith("entries must be an array, got")


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("ISM-C", "entries[3]: must be an object, got str"),
        ({"status": "approved"}, "entries[3]: missing ism"),
        (
            {"ism": "ISM-C", "status": "approved", "note": "x"},
            "entries[3]: unexpected field(s) note",
        ),
        ({"ism": "ISM-C"}, 'entry ISM-C: status must be "approved" or "revoked", got None'),
        ({"ism": "ISM-C", "status": "Approved"}, "entry ISM-C: status must be"),
        ({"ism": "ISM-C", "status": True}, "entry ISM-C: status must be"),
        ({"ism": 42, "status": "approved"}, "entry ism must be 1 to 64 printable"),
        ({"ism": "", "status": "approved"}, "entry ism must be 1 to 64 printable"),
        ({"ism": "ISM C", "status": "approved"}, "entry ism must be 1 to 64 printable"),
        ({"ism": "ISM\tC", "status": "approved"}, "entry ism must be 1 to 64 printable"),
        ({"ism": "I" * 65, "status": "approved"}, "entry ism must be 1 to 64 printable"),
        (
            {"ism": "ISM-C", "status": "revoked", "max_discharge_w": 1},
            "entry ISM-C: max_discharge_w on a revoked entry",
        ),
    ],
)
def test_a_bad_entry_is_refused(installed: Installed, entry: Any, reason: str) -> None:
    assert _refuse_payload(installed, with_entry(entry)).startswith(reason)


@pytest.mark.parametrize(
    ("limit", "shown"),
    [
        (-1, "-1"),
        (7200.0, "7200.0"),
        (7.5, "7.5"),
        (True, "True"),
        (None, "None"),
        ("7200", "'7200'"),
    ],
)
def test_a_limit_that_is_not_a_non_negative_integer_is_refused(
    installed: Installed, limit: Any, shown: str
) -> None:
    entry = {"ism": "ISM-C", "status": "approved", "max_discharge_w": limit}
    reason = _refuse_payload(installed, with_entry(entry))
    assert reason == f"entry ISM-C: max_discharge_w must be a non-negative integer, got {shown}"


def test_a_float_limit_is_refused_even_after_the_same_int() -> None:
    # the decoder shares Entry objects by (status, limit); 7200.0 == 7200 must not hit that cache
    entries = [
        {"ism": "ISM-1", "status": "approved", "max_discharge_w": 7200},
        {"ism": "ISM-2", "status": "approved", "max_discharge_w": 7200.0},
    ]
    with pytest.raises(ApprovalListError, match=r"got 7200\.0$"):
        parse_approval_list(encode_payload(payload(entries=entries)))


def test_an_ism_listed_twice_is_refused(installed: Installed) -> None:
    entry = {"ism": "ISM-A", "status": "revoked"}
    assert _refuse_payload(installed, with_entry(entry)) == "ISM ISM-A appears more than once"


def test_a_repeated_json_name_is_refused(installed: Installed) -> None:
    text = encode_payload(payload()).replace(
        b'"status":"revoked"', b'"status":"revoked","status":"approved"'
    )
    assert installed.refuse(sign_es256(text, KEY)) == "a JSON object repeats the name 'status'"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(installed: Installed, constant: str) -> None:
    text = encode_payload(payload()).replace(b'"version":6', f'"version":{constant}'.encode())
    assert installed.refuse(sign_es256(text, KEY)) == f"payload has {constant}, which is not JSON"


# --- refusals of the context ----------------------------------------------------------------


def test_another_service_area_is_refused(installed: Installed) -> None:
    reason = _refuse_payload(installed, payload(service_area="OTHER-UTILITY"))
    assert reason == f"list is for service area 'OTHER-UTILITY', this site is in '{AREA}'"


def test_an_expired_list_is_refused(installed: Installed) -> None:
    old = payload(issued_at="2026-04-01T00:00:00Z", expires_at="2026-06-01T12:00:00Z")
    assert _refuse_payload(installed, old) == "list version 6 expired at 2026-06-01T12:00:00Z"


def test_a_list_issued_in_the_future_is_refused(installed: Installed) -> None:
    early = payload(issued_at="2026-06-01T12:00:01Z")
    reason = _refuse_payload(installed, early)
    assert reason == "list version 6 is not valid before 2026-06-01T12:00:01Z"


def test_a_rollback_is_refused(installed: Installed) -> None:
    reason = _refuse_payload(installed, payload(version=4))
    assert reason == "version 4 is older than the installed version 5"


def test_the_installed_version_with_other_content_is_refused(installed: Installed) -> None:
    reason = _refuse_payload(installed, payload(version=5, entries=[]))
    assert reason == "version 5 is installed with other content: a new list needs a new version"


def test_the_installed_version_again_is_a_no_op(installed: Installed) -> None:
    before = installed.files()
    again = installed.store.install(sign_payload(KEY, payload(version=5)))  # signed anew
    assert again.version == 5 and installed.files() == before


# --- any single-byte change -----------------------------------------------------------------

SIGNED = sign_payload(KEY, payload())
BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# the last character of a part may carry unused bits: changes there are the sneakiest
PART_ENDS = [i - 1 for i, c in enumerate(SIGNED) if c == "."] + [len(SIGNED) - 1]


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    position=st.one_of(st.integers(0, len(SIGNED) - 1), st.sampled_from(PART_ENDS)),
    byte=st.one_of(st.integers(0, 255), st.sampled_from(list(BASE64URL))),
)
def test_any_single_byte_change_is_refused(installed: Installed, position: int, byte: int) -> None:
    data = bytearray(SIGNED.encode())
    if data[position] == byte:
        byte ^= 0x01
    data[position] = byte
    installed.refuse(data.decode("latin-1"))


@pytest.mark.parametrize("end", PART_ENDS, ids=["header", "payload", "signature"])
def test_a_change_in_the_unused_bits_of_a_last_character_is_refused(
    installed: Installed, end: int
) -> None:
    flipped = BASE64URL[BASE64URL.index(SIGNED[end].encode()) ^ 1 :][:1].decode()
    installed.refuse(SIGNED[:end] + flipped + SIGNED[end + 1 :])


def test_the_unchanged_list_installs(installed: Installed) -> None:
    # the property above would pass vacuously if the list itself were refused
    assert installed.store.install(SIGNED).version == 6
    assert (installed.directory / FILE_NAME).read_text().strip() == SIGNED
