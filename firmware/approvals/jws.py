"""Compact JWS (RFC 7515 §7.1) signed with ES256 (RFC 7518 §3.4): parse, verify and sign.

Owns the envelope of the approval list and the utility keys: EC P-256 public keys read from
PEM files, each known by its RFC 7638 JWK SHA-256 thumbprint, which a token may name as its
``kid``. It does not look inside the payload; ``approval_list`` does, once the signature has
verified. ``verify_es256_prehashed`` applies the same rules to a token that was read in chunks
and hashed on the way (``installed_file``), so that no whole token is ever held or decoded.

Refused, with a one-line reason: anything but three base64url parts; padding, ``+``, ``/`` or
a non-canonical last character (so that no two texts carry the same bytes); a header that is
not a JSON object with unique names; ``alg`` other than ES256 (``none`` and HS256 included:
the algorithm is fixed here, never chosen by the token); ``crit`` (RFC 7515 §4.1.11: we
understand no extension); a ``kid`` naming no configured key; a signature that is not the
64-byte R||S or does not verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.approvals import ApprovalError

if TYPE_CHECKING:  # cryptography is imported where keys are loaded or used: no key, no import
    from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"
COORDINATE_BYTES = 32  # P-256: R, S, x and y are each 32 octets, big-endian
SIGNATURE_BYTES = 2 * COORDINATE_BYTES  # RFC 7518 §3.4: R || S, not DER
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")


class JwsError(ApprovalError):
    """Raised when a JWS is malformed, is not ES256, names an unknown key, or its signature
    does not verify with any utility key."""


class UtilityKeyError(ApprovalError):
    """Raised when a utility key file cannot be read or is not an EC P-256 public key."""


@dataclass(frozen=True, slots=True)
class UtilityKey:
    kid: str  # RFC 7638 JWK SHA-256 thumbprint, base64url
    public_key: ec.EllipticCurvePublicKey
    source: str  # the file it came from, for messages


@dataclass(frozen=True, slots=True)
class VerifiedJws:
    header: Mapping[str, Any]
    payload: bytes
    key: UtilityKey  # the key whose signature verified


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: bytes, what: str) -> bytes:
    """Strict base64url without padding; JwsError naming ``what`` otherwise."""
    if len(text) % 4 == 1 or any(c in text for c in (b"+", b"/", b"=")):
        raise JwsError(f"{what} is not base64url")
    try:
        # validate=True refuses any byte outside the alphabet; padding is ours (none was
        # allowed in), so this is as strict as binascii's strict_mode and faster on 90 MB
        data = base64.b64decode(
            text.translate(_TO_STANDARD_ALPHABET) + b"=" * (-len(text) % 4), validate=True
        )
    except binascii.Error as err:
        raise JwsError(f"{what} is not base64url") from err
    tail = len(text) % 4  # the last, partial group: its unused low bits must be zero
    if tail and b64url_encode(data[-(tail - 1) :]).encode() != text[-tail:]:
        raise JwsError(f"{what} is not canonical base64url")
    return data


def jwk_thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """The RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order."""
    numbers = public_key.public_numbers()
    x = b64url_encode(numbers.x.to_bytes(COORDINATE_BYTES, "big"))
    y = b64url_encode(numbers.y.to_bytes(COORDINATE_BYTES, "big"))
    canonical = f'{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}'
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def utility_key(public_key: object, source: str) -> UtilityKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise UtilityKeyError(f"{source}: not an EC P-256 public key (ES256 needs one)")
    return UtilityKey(jwk_thumbprint(public_key), public_key, source)


def load_utility_key(path: Path) -> UtilityKey:
    """A PEM ``PUBLIC KEY`` file (text outside the PEM block, such as a TEST mark, is fine)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        pem = path.read_bytes()
    except OSError as err:
        raise UtilityKeyError(f"{path}: cannot read: {err.strerror}") from err
    try:
        public_key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as err:
        raise UtilityKeyError(f"{path}: not a PEM public key") from err
    return utility_key(public_key, str(path))


def load_utility_keys(paths: Iterable[Path]) -> tuple[UtilityKey, ...]:
    return tuple(load_utility_key(path) for path in paths)


def verify_es256(token: str | bytes, keys: Sequence[UtilityKey]) -> VerifiedJws:
    """Verify a compact JWS (text, or a file's bytes: surrounding whitespace is ignored)
    against ``keys``; the payload is returned only if it verified."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    data = ascii_token(token)
    parts = data.split(b".")
    if len(parts) != 3:
        raise JwsError(f"compact JWS has {len(parts)} part(s), expected 3")
    header = _header(b64url_decode(parts[0], "JWS header"))
    payload = b64url_decode(parts[1], "JWS payload")  # decoded, not looked at, until verified
    signing_input = memoryview(data)[: len(parts[0]) + 1 + len(parts[1])]
    key = _signed_by(header, parts[2], keys, signing_input, ec.ECDSA(hashes.SHA256()))
    return VerifiedJws(header, payload, key)


def verify_es256_prehashed(
    header_part: bytes, signature_part: bytes, signing_sha256: bytes, keys: Sequence[UtilityKey]
) -> UtilityKey:
    """Verify a compact JWS given as its first and last parts (base64url) and the SHA-256 of
    its signing input (RFC 7515 §5.2 step 8), hashed by the caller as it read the token:
    the same header and key rules as ``verify_es256``; the key whose signature verified."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    header = _header(b64url_decode(header_part, "JWS header"))
    algorithm = ec.ECDSA(Prehashed(hashes.SHA256()))
    return _signed_by(header, signature_part, keys, signing_sha256, algorithm)


def _signed_by(
    header: Mapping[str, Any],
    signature_part: bytes,
    keys: Sequence[UtilityKey],
    signed: bytes | memoryview,
    algorithm: ec.ECDSA,
) -> UtilityKey:
    """The key (among those the header allows) whose ES256 signature over ``signed`` verifies;
    JwsError otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    signature = b64url_decode(signature_part, "JWS signature")
    candidates = _candidates(header, keys)
    if len(signature) != SIGNATURE_BYTES:
        raise JwsError(f"ES256 signature is {len(signature)} bytes, expected {SIGNATURE_BYTES}")
    der = encode_dss_signature(
        int.from_bytes(signature[:COORDINATE_BYTES], "big"),
        int.from_bytes(signature[COORDINATE_BYTES:], "big"),
    )
    for key in candidates:
        try:
            key.public_key.verify(der, signed, algorithm)
        except InvalidSignature:
            continue
        return key
    if "kid" in header:
        raise JwsError(f"signature does not verify with the utility key {header['kid']}")
    raise JwsError("signature does not verify with any utility key")


def ascii_token(token: str | bytes) -> bytes:
    """The token as ASCII bytes without surrounding whitespace; bytes are not copied again."""
    data = token.strip()
    if not data.isascii():
        raise JwsError("JWS is not ASCII text")
    return data.encode("ascii") if isinstance(data, str) else data


def sign_es256(payload: bytes, key: ec.EllipticCurvePrivateKey, kid: str | None = None) -> str:
    """A compact JWS of ``payload`` (for tests and tools; the firmware only verifies)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    header: dict[str, str] = {"alg": ALGORITHM}
    if kid is not None:
        header["kid"] = kid
    head = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    signing_input = f"{head}.{b64url_encode(payload)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    raw = r.to_bytes(COORDINATE_BYTES, "big") + s.to_bytes(COORDINATE_BYTES, "big")
    return f"{signing_input}.{b64url_encode(raw)}"


def shown(value: object, limit: int = 48) -> str:
    """``repr`` for a one-line message, cut short: values come from untrusted input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_names)
    except (UnicodeDecodeError, ValueError) as err:
        raise JwsError("JWS header is not JSON") from err
    if not isinstance(header, dict):
        raise JwsError("JWS header is not a JSON object")
    if header.get("alg") != ALGORITHM:
        raise JwsError(f"JWS alg must be {ALGORITHM}, got {shown(header.get('alg'))}")
    if "crit" in header:
        raise JwsError("JWS header has crit: no extension is understood")
    if "kid" in header and not isinstance(header["kid"], str):
        raise JwsError("JWS kid is not a string")
    return header


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §5.2: reject duplicate Header Parameter names
    header = dict(pairs)
    if len(header) != len(pairs):
        raise JwsError("JWS header repeats a parameter name")
    return header


def _candidates(header: Mapping[str, Any], keys: Sequence[UtilityKey]) -> Sequence[UtilityKey]:
    if not keys:
        raise JwsError("no utility key is configured")
    if "kid" not in header:
        return keys
    named = [key for key in keys if key.kid == header["kid"]]
    if not named:
        raise JwsError(f"unknown utility key {shown(header['kid'])}")
    return named
