"""The daemon's chunked read of the installed file and the ES256 check over its digest: for
every token, in chunks of any size, the same verdict as the full ``verify_es256`` (the same
key, or the same one-line reason); the hashes are those of the file and of the signing input
(RFC 7515 §5.2 step 8)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from firmware.approvals import ApprovalError, installed_file
from firmware.approvals.installed_file import FileTooLarge, scan
from firmware.approvals.jws import (
    JwsError,
    UtilityKey,
    sign_es256,
    utility_key,
    verify_es256,
    verify_es256_prehashed,
)

PRIVATE = ec.derive_private_key(0x1234_5678_9ABC_DEF0, ec.SECP256R1())
OTHER = ec.derive_private_key(0x0FED_CBA9_8765_4321, ec.SECP256R1())
KEY = utility_key(PRIVATE.public_key(), "test")
OTHER_KEY = utility_key(OTHER.public_key(), "other")
PAYLOAD = b'{"hello":"grid","padding":"' + b"x" * 300 + b'"}'
GOOD = sign_es256(PAYLOAD, PRIVATE, KEY.kid)
HEAD, BODY, SIGNATURE = GOOD.split(".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _header(header: dict[str, object]) -> str:
    return _b64(json.dumps(header).encode())


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


TOKENS = {
    "good": GOOD,
    "good without kid": sign_es256(PAYLOAD, PRIVATE),
    "modified payload": f"{HEAD}.{_flip(BODY, 10)}.{SIGNATURE}",
    "modified signature": f"{HEAD}.{BODY}.{_flip(SIGNATURE, 5)}",
    "unknown kid": f"{_header({'alg': 'ES256', 'kid': 'nobody'})}.{BODY}.{SIGNATURE}",
    "alg none": f"{_header({'alg': 'none'})}.{BODY}.",
    "alg HS256": f"{_header({'alg': 'HS256'})}.{BODY}.{SIGNATURE}",
    "crit": f"{_header({'alg': 'ES256', 'crit': ['exp']})}.{BODY}.{SIGNATURE}",
    "header not JSON": f"{_b64(b'{nope')}.{BODY}.{SIGNATURE}",
    "header padded": f"{HEAD}=.{BODY}.{SIGNATURE}",
    "short signature": f"{HEAD}.{BODY}.{SIGNATURE[:40]}",
    "signature by another key": sign_es256(PAYLOAD, OTHER, KEY.kid),
    "two parts": f"{HEAD}.{BODY}",
    "four parts": f"{GOOD}.{SIGNATURE}",
    "one part": BODY,
    "empty": "",
    "not ASCII": f"{HEAD}.{BODY}é.{SIGNATURE}",
    "space inside": f"{HEAD}.{BODY[:20]} {BODY[20:]}.{SIGNATURE}",
}
# the payload's encoding is checked by the full verification only (the index is built from
# it): here such a token is refused for its signature, for another reason than in full
PAYLOAD_ENCODING = {"space inside"}
FRAMES = {"as installed": "{}\n", "bare": "{}", "surrounded": " \r\n\t{}\n\n  "}


def _full(data: bytes, keys: list[UtilityKey]) -> UtilityKey | str:
    try:
        return verify_es256(data, keys).key
    except JwsError as err:
        return str(err)


def _chunked(path: Path, keys: list[UtilityKey]) -> UtilityKey | str:
    try:
        scanned = scan(path)
        return verify_es256_prehashed(
            scanned.header, scanned.signature, scanned.signing_sha256, keys
        )
    except ApprovalError as err:
        return str(err)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("frame", FRAMES)
def test_the_chunked_check_agrees_with_the_full_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, frame: str
) -> None:
    monkeypatch.setattr(installed_file, "CHUNK_BYTES", chunk)
    path = tmp_path / "approvals.jws"
    for name, token in TOKENS.items():
        data = FRAMES[frame].format(token).encode()
        path.write_bytes(data)
        for keys in ([KEY], [OTHER_KEY, KEY], [OTHER_KEY], []):
            expected, got = _full(data, keys), _chunked(path, keys)
            if name in PAYLOAD_ENCODING:
                assert isinstance(expected, str) and isinstance(got, str), name
            else:
                assert got == expected, (name, [k.source for k in keys])


def test_the_verdicts_are_the_expected_ones(tmp_path: Path) -> None:
    path = tmp_path / "approvals.jws"
    verdicts = {}
    for name in ("good", "modified payload", "modified signature", "unknown kid", "alg none"):
        path.write_text(TOKENS[name] + "\n")
        verdicts[name] = _chunked(path, [KEY])
    assert verdicts == {
        "good": KEY,
        "modified payload": f"signature does not verify with the utility key {KEY.kid}",
        "modified signature": f"signature does not verify with the utility key {KEY.kid}",
        "unknown kid": "unknown utility key 'nobody'",
        "alg none": "JWS alg must be ES256, got 'none'",
    }


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
def test_the_hashes_are_of_the_file_and_of_the_signing_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(installed_file, "CHUNK_BYTES", chunk)
    path = tmp_path / "approvals.jws"
    data = f"\n {GOOD}\n".encode()
    path.write_bytes(data)
    scanned = scan(path)
    assert scanned.file_sha256 == hashlib.sha256(data).digest()
    assert scanned.signing_sha256 == hashlib.sha256(f"{HEAD}.{BODY}".encode()).digest()
    assert (scanned.header, scanned.signature) == (HEAD.encode(), SIGNATURE.encode())


def test_a_file_over_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "approvals.jws"
    path.write_text(GOOD + "\n")
    monkeypatch.setattr(installed_file, "MAX_JWS_BYTES", len(GOOD))
    with pytest.raises(FileTooLarge, match=rf"^list is larger than {len(GOOD)} bytes$"):
        scan(path)


@pytest.mark.parametrize("part", ["header", "signature"])
def test_a_part_longer_than_kept_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part: str
) -> None:
    limit = max(len(HEAD), len(SIGNATURE))  # ours fit; twice as long does not
    monkeypatch.setattr(installed_file, "MAX_PART_BYTES", limit)
    tokens = {"header": f"{HEAD * 2}.{BODY}.{SIGNATURE}", "signature": f"{GOOD}{SIGNATURE}"}
    path = tmp_path / "approvals.jws"
    path.write_text(tokens[part] + "\n" + " " * 3 * limit)  # trailing whitespace is no part
    with pytest.raises(JwsError, match=rf"^JWS {part} is longer than {limit} bytes$"):
        scan(path)
    path.write_text(GOOD + "\n" + " " * 3 * limit)
    assert scan(path).signature == SIGNATURE.encode()


def test_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan(tmp_path / "approvals.jws")
