"""Compact JWS with ES256 only: the RFC 7515 A.3 vector verifies, our signatures are the raw
R||S of RFC 7518 §3.4, and every other algorithm, key or encoding is refused with one line."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from firmware.approvals.jws import (
    JwsError,
    UtilityKey,
    UtilityKeyError,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
    load_utility_key,
    sign_es256,
    utility_key,
    verify_es256,
)

# RFC 7515 Appendix A.3: an ES256 JWS and the P-256 public key that verifies it
RFC_A3_X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
RFC_A3_Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
RFC_A3_JWS = (
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)
PAYLOAD = b'{"hello":"grid"}'
PRIVATE = ec.derive_private_key(0x1234_5678_9ABC_DEF0, ec.SECP256R1())
OTHER = ec.derive_private_key(0x0FED_CBA9_8765_4321, ec.SECP256R1())
KEY = utility_key(PRIVATE.public_key(), "test")
OTHER_KEY = utility_key(OTHER.public_key(), "other")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(header: dict[str, object], payload: bytes = PAYLOAD, signature: bytes = b"") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(payload)}.{_b64(signature)}"


def _refused(token: str, keys: list[UtilityKey] | None = None) -> str:
    with pytest.raises(JwsError) as caught:
        verify_es256(token, [KEY] if keys is None else keys)
    reason = str(caught.value)
    assert reason and "\n" not in reason
    return reason


def test_the_rfc_7515_a3_example_verifies() -> None:
    def coordinate(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=="), "big")

    public = ec.EllipticCurvePublicNumbers(
        coordinate(RFC_A3_X), coordinate(RFC_A3_Y), ec.SECP256R1()
    ).public_key()
    verified = verify_es256(RFC_A3_JWS, [utility_key(public, "rfc7515")])
    assert json.loads(verified.payload)["iss"] == "joe"
    assert verified.header == {"alg": "ES256"}


def test_round_trip_with_and_without_kid() -> None:
    with_kid = verify_es256(sign_es256(PAYLOAD, PRIVATE, KEY.kid), [OTHER_KEY, KEY])
    assert with_kid.payload == PAYLOAD and with_kid.key is KEY
    without = verify_es256(sign_es256(PAYLOAD, PRIVATE), [OTHER_KEY, KEY])
    assert without.payload == PAYLOAD and without.key is KEY and "kid" not in without.header


def test_the_signature_is_raw_r_s_verifiable_by_hand() -> None:
    head, body, signature = sign_es256(PAYLOAD, PRIVATE).split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    assert len(signature) == 86 and len(raw) == 64  # not DER, which is 70 to 72 bytes
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    PRIVATE.public_key().verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))


def test_kid_is_the_rfc_7638_thumbprint() -> None:
    numbers = PRIVATE.public_key().public_numbers()
    members = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    assert jwk_thumbprint(PRIVATE.public_key()) == _b64(hashlib.sha256(canonical).digest())
    assert KEY.kid != OTHER_KEY.kid


@pytest.mark.parametrize("parts", [1, 2, 4, 5])
def test_wrong_number_of_parts_is_refused(parts: int) -> None:
    token = ".".join(sign_es256(PAYLOAD, PRIVATE).split(".")[:2] + ["AAAA"] * 3)
    token = ".".join(token.split(".")[:parts])
    assert f"has {parts} part(s), expected 3" in _refused(token)


@pytest.mark.parametrize("bad", ["+", "/", "=", "!", " ", "\u00e9"])
@pytest.mark.parametrize("part", [0, 1, 2])
def test_characters_outside_base64url_are_refused(bad: str, part: int) -> None:
    pieces = sign_es256(PAYLOAD, PRIVATE).split(".")
    pieces[part] = pieces[part][:4] + bad + pieces[part][5:]
    reason = _refused(".".join(pieces))
    assert "base64url" in reason or "not ASCII" in reason


def test_a_part_of_impossible_length_is_refused() -> None:
    head, body, signature = sign_es256(PAYLOAD, PRIVATE).split(".")
    assert len(signature[:-1]) % 4 == 1  # no base64 text has this length
    assert _refused(f"{head}.{body}.{signature[:-1]}") == "JWS signature is not base64url"
    with pytest.raises(JwsError, match="x is not base64url"):
        b64url_decode(b"AAAAA", "x")


def test_non_canonical_base64url_is_refused() -> None:
    # 64 bytes take 86 characters; the last one carries 4 unused bits, which must be zero
    head, body, signature = sign_es256(PAYLOAD, PRIVATE).split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(signature[-1]) | 0b0001]
    assert last != signature[-1]
    reason = _refused(f"{head}.{body}.{signature[:-1]}{last}")
    assert reason == "JWS signature is not canonical base64url"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"not json", "JWS header is not JSON"),
        (b'["alg", "ES256"]', "JWS header is not a JSON object"),
        (b'{"alg": "ES256", "alg": "none"}', "JWS header repeats a parameter name"),
        (b'{"typ": "JWT"}', "JWS alg must be ES256, got None"),
        (b'{"alg": "ES256", "crit": ["exp"], "exp": 1}', "JWS header has crit"),
        (b'{"alg": "ES256", "kid": 7}', "JWS kid is not a string"),
    ],
)
def test_a_bad_header_is_refused(header: bytes, reason: str) -> None:
    _, body, signature = sign_es256(PAYLOAD, PRIVATE).split(".")
    assert _refused(f"{_b64(header)}.{body}.{signature}").startswith(reason)


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "ES384", "ES512", "RS256", "es256"])
def test_any_alg_but_es256_is_refused(alg: str) -> None:
    signed = sign_es256(PAYLOAD, PRIVATE).split(".")[2]
    for signature in (b"", base64.urlsafe_b64decode(signed + "==")):
        assert _refused(_token({"alg": alg}, signature=signature)).startswith(
            f"JWS alg must be ES256, got '{alg}'"
        )


def test_hs256_with_the_public_key_as_secret_is_refused() -> None:
    pem = PRIVATE.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64(json.dumps({'alg': 'HS256'}).encode())}.{_b64(PAYLOAD)}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert _refused(f"{signing_input}.{_b64(mac)}") == "JWS alg must be ES256, got 'HS256'"


def test_an_unknown_kid_is_refused() -> None:
    token = sign_es256(PAYLOAD, OTHER, OTHER_KEY.kid)
    assert _refused(token) == f"unknown utility key '{OTHER_KEY.kid}'"


def test_a_kid_naming_a_key_that_did_not_sign_is_refused() -> None:
    token = sign_es256(PAYLOAD, OTHER, KEY.kid)
    assert _refused(token) == f"signature does not verify with the utility key {KEY.kid}"


def test_a_signature_by_an_unknown_key_without_kid_is_refused() -> None:
    token = sign_es256(PAYLOAD, OTHER)
    assert _refused(token) == "signature does not verify with any utility key"
    assert verify_es256(token, [KEY, OTHER_KEY]).key is OTHER_KEY


def test_no_configured_key_refuses_everything() -> None:
    assert _refused(sign_es256(PAYLOAD, PRIVATE), keys=[]) == "no utility key is configured"


def test_a_der_signature_is_refused() -> None:
    head, body, _ = sign_es256(PAYLOAD, PRIVATE).split(".")
    der = PRIVATE.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    reason = _refused(f"{head}.{body}.{_b64(der)}")
    assert reason == f"ES256 signature is {len(der)} bytes, expected 64"


def test_a_changed_payload_is_refused() -> None:
    head, _, signature = sign_es256(PAYLOAD, PRIVATE).split(".")
    token = f"{head}.{_b64(PAYLOAD.upper())}.{signature}"
    assert _refused(token) == "signature does not verify with any utility key"


def test_a_zero_signature_is_refused() -> None:
    head, body, _ = sign_es256(PAYLOAD, PRIVATE).split(".")
    assert "does not verify" in _refused(f"{head}.{body}.{_b64(bytes(64))}")


def test_surrounding_whitespace_is_tolerated_but_not_inside() -> None:
    token = sign_es256(PAYLOAD, PRIVATE)
    assert verify_es256(f"\n {token}\n", [KEY]).payload == PAYLOAD
    head, body, signature = token.split(".")
    assert "base64url" in _refused(f"{head}.{body[:10]}\n{body[10:]}.{signature}")


@given(st.binary(max_size=200))
def test_base64url_round_trips(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text and b64url_decode(text.encode(), "x") == data


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
def test_base64url_accepts_only_canonical_text(text: str) -> None:
    try:
        data = b64url_decode(text.encode(), "x")
    except JwsError:
        return
    assert b64url_encode(data) == text  # no two texts decode to the same bytes


# --- utility keys ---------------------------------------------------------------------------


def _pem(public: object) -> bytes:
    assert hasattr(public, "public_bytes")
    return public.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_p256_pem_with_a_test_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "utility.pem"
    path.write_bytes(b"TEST key, not for production\n" + _pem(PRIVATE.public_key()))
    assert load_utility_key(path).kid == KEY.kid


@pytest.mark.parametrize(
    "public",
    [
        ec.generate_private_key(ec.SECP384R1()).public_key(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        ed25519.Ed25519PrivateKey.generate().public_key(),
    ],
    ids=["p384", "rsa", "ed25519"],
)
def test_a_key_that_is_not_p256_is_refused(tmp_path: Path, public: object) -> None:
    path = tmp_path / "utility.pem"
    path.write_bytes(_pem(public))
    with pytest.raises(UtilityKeyError, match="not an EC P-256 public key"):
        load_utility_key(path)


def test_an_unreadable_or_non_pem_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UtilityKeyError, match="cannot read"):
        load_utility_key(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(UtilityKeyError, match="not a PEM public key"):
        load_utility_key(tmp_path / "junk.pem")
