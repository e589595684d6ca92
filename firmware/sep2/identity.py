"""2030.5 device identity: LFDI, SFDI, the HardwareModuleName in the SubjectAltName, and
chain verification up to the SERCA roots with the key-type rule (every key EC P-256).

IEEE 2030.5 §6.3.4 for the identity arithmetic, RFC 4108 for HardwareModuleName (its DER
codec is here, small and strict). Generating credentials is ``firmware.sep2.pki``'s job.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from firmware.errors import GatekeeperError

HARDWARE_MODULE_NAME_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.4")  # RFC 4108 §5
# IEEE 2030.5 §6.11.7.2 device types and §6.11.7.3 policies, carried in certificatePolicies
DEVICE_GENERIC = "1.3.6.1.4.1.40732.1.1"
DEVICE_MOBILE = "1.3.6.1.4.1.40732.1.2"  # a device that moves between sites: a vehicle
DEVICE_POST_MANUFACTURE = "1.3.6.1.4.1.40732.1.3"
DEVICE_TYPES = (DEVICE_GENERIC, DEVICE_MOBILE, DEVICE_POST_MANUFACTURE)
POLICY_TEST = "1.3.6.1.4.1.40732.2.1"
POLICY_NAMES = {DEVICE_GENERIC: "device", DEVICE_MOBILE: "mobile device",
                DEVICE_POST_MANUFACTURE: "post-manufacture device", POLICY_TEST: "test",
                "1.3.6.1.4.1.40732.2.2": "self-signed", "1.3.6.1.4.1.40732.2.3": "service provider",
                "1.3.6.1.4.1.40732.2.4": "bulk-issued"}  # fmt: skip
MAX_CHAIN_LENGTH = 4  # SERCA -> MCA -> MICA -> device


class PkiError(GatekeeperError):
    """Raised when a certificate is unreadable or refused, or test credentials cannot be written."""


@dataclass(frozen=True, slots=True)
class HardwareModuleName:
    """RFC 4108 §5 ``SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }``."""

    hw_type: str  # dotted OID; in 2030.5 the device's make and model
    hw_serial_num: bytes


def encode_hardware_module_name(name: HardwareModuleName) -> bytes:
    """The DER encoding, the value of the SAN's otherName."""
    try:
        arcs = [int(arc) for arc in x509.ObjectIdentifier(name.hw_type).dotted_string.split(".")]
    except ValueError as err:
        raise PkiError(f"hwType is not an OID: {name.hw_type!r}") from err
    oid = b"".join(_base128(arc) for arc in (40 * arcs[0] + arcs[1], *arcs[2:]))
    return _tlv(0x30, _tlv(0x06, oid) + _tlv(0x04, name.hw_serial_num))


def decode_hardware_module_name(der: bytes) -> HardwareModuleName:
    """Parse the DER of a HardwareModuleName; raises PkiError unless it is exactly one."""
    body, end = _read_tlv(der, 0, 0x30)
    if end != len(der):
        raise PkiError("HardwareModuleName: trailing bytes")
    oid, pos = _read_tlv(body, 0, 0x06)
    serial, pos = _read_tlv(body, pos, 0x04)
    if pos != len(body):
        raise PkiError("HardwareModuleName: trailing bytes in the SEQUENCE")
    return HardwareModuleName(_oid_string(oid), serial)


def _base128(value: int) -> bytes:
    out = [value & 0x7F]
    while value := value >> 7:
        out.append(0x80 | value & 0x7F)
    return bytes(reversed(out))


def _tlv(tag: int, value: bytes) -> bytes:
    size = len(value)
    if size < 0x80:
        return bytes([tag, size]) + value
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + value


def _read_tlv(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    """The value of the DER element of type ``tag`` at ``pos``, and the position after it."""
    if len(data) < pos + 2 or data[pos] != tag:
        raise PkiError(f"DER: expected tag 0x{tag:02x} at offset {pos}")
    size, pos = data[pos + 1], pos + 2
    if size & 0x80:
        count = size & 0x7F
        length = data[pos : pos + count]
        size, pos = int.from_bytes(length, "big"), pos + count
        if not 1 <= count <= 4 or len(length) != count or size < 0x80 or length[0] == 0:
            raise PkiError("DER: bad length")
    if len(data) < pos + size:
        raise PkiError("DER: truncated")
    return data[pos : pos + size], pos + size


def _oid_string(body: bytes) -> str:
    if not body or body[-1] & 0x80:
        raise PkiError("DER: truncated OID")
    values, value = [], 0
    for index, byte in enumerate(body):
        if byte == 0x80 and (index == 0 or not body[index - 1] & 0x80):
            raise PkiError("DER: OID arc not minimally encoded")
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            values.append(value)
            value = 0
    first = min(values[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, values[0] - 40 * first, *values[1:]))


def lfdi(cert_der: bytes) -> str:
    """The Long-form Device Identifier: the first 160 bits of SHA-256 over the DER certificate."""
    return hashlib.sha256(cert_der).hexdigest()[:40].upper()


def sfdi(lfdi: str) -> int:
    """The Short-form Device Identifier: LFDI's first 36 bits, times 10, plus a check digit."""
    if not re.fullmatch(r"[0-9A-Fa-f]{40}", lfdi):
        raise PkiError(f"not an LFDI (40 hex digits): {lfdi!r}")
    value = int(lfdi[:9], 16)
    return value * 10 + sfdi_check_digit(value)


def sfdi_check_digit(value: int) -> int:
    """The digit that makes the digit sum of ``value * 10 + digit`` a multiple of 10."""
    return -sum(int(digit) for digit in str(value)) % 10


def key_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert``'s key breaks the 2030.5 rule (EC P-256 only), or None when it does not."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "key is of an unsupported type, not EC P-256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return None
        return f"key is EC {key.curve.name}, not EC P-256"
    if isinstance(key, rsa.RSAPublicKey):
        return f"key is RSA-{key.key_size}, not EC P-256"
    return f"key is {type(key).__name__}, not EC P-256"


def policies(cert: x509.Certificate) -> tuple[str, ...]:
    """The certificatePolicies OIDs of ``cert`` (dotted), in its order."""
    try:
        found = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(info.policy_identifier.dotted_string for info in found)


def policy_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert`` is not a 2030.5 device certificate by its policies (§6.11.7.2: a device
    certificate names its device type in certificatePolicies), or None."""
    found = policies(cert)
    if not found:
        return "certificate has no certificatePolicies (an IEEE 2030.5 device type is required)"
    if not any(oid in DEVICE_TYPES for oid in found):
        return ("certificate names no IEEE 2030.5 device type in certificatePolicies "
                f"({', '.join(found)})")  # fmt: skip
    return None


def describe_policies(cert: x509.Certificate) -> str:
    """The policies by name, for a log line ("mobile device, test")."""
    return ", ".join(POLICY_NAMES.get(oid, oid) for oid in policies(cert)) or "none"


def hardware_module_name(cert: x509.Certificate) -> HardwareModuleName | None:
    """The HardwareModuleName in ``cert``'s SubjectAltName, or None when it has none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in san.get_values_for_type(x509.OtherName):
        if name.type_id == HARDWARE_MODULE_NAME_OID:
            return decode_hardware_module_name(name.value)
    return None


def load_certificate(path: Path) -> x509.Certificate:
    """The first certificate of a PEM or DER file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PkiError(f"{path}: cannot read ({err.strerror})") from err
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)[0]
        return x509.load_der_x509_certificate(data)
    except ValueError as err:
        raise PkiError(f"{path}: not a PEM or DER certificate") from err


def verify_chain(leaf_pem_chain: bytes, roots_pem: bytes) -> None:
    """Check that the leaf (first PEM) chains through the others to one of the roots.

    Checks names, signatures, CA flags, validity now, the length (≤ 4) and that every key on the
    path, root included, is EC P-256. Raises PkiError saying what is wrong.
    """
    chain, roots = _load_pems(leaf_pem_chain, "chain"), _load_pems(roots_pem, "roots")
    now = datetime.now(UTC)
    path, pool = [chain[0]], chain[1:]
    if _is_ca(chain[0]):
        raise PkiError("the leaf is a CA certificate, not a device certificate")
    while True:
        _check_link(path[-1], len(path), now)
        root = _issuer_among(path[-1], roots)
        if root is not None:
            _check_ca(root, len(path) + 1, now)
            return
        issuer = f"certificate {len(path)}: issuer {path[-1].issuer.rfc4514_string()!r}"
        if len(path) + 1 >= MAX_CHAIN_LENGTH:
            raise PkiError(f"{issuer} is not a trusted root (at most {MAX_CHAIN_LENGTH} certs)")
        parent = _issuer_among(path[-1], pool)
        if parent is None:
            raise PkiError(f"{issuer} is neither in the chain nor a trusted root")
        _check_ca(parent, len(path) + 1, now)
        path.append(parent)


def _load_pems(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as err:
        raise PkiError(f"{what}: no PEM certificates") from err


def _issuer_among(
    cert: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_link(cert: x509.Certificate, position: int, now: datetime) -> None:
    problem = key_problem(cert)
    if problem is None and not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        problem = "not valid now"
    if problem is not None:
        raise PkiError(f"certificate {position}: {problem}")


def _check_ca(cert: x509.Certificate, position: int, now: datetime) -> None:
    _check_link(cert, position, now)
    if not _is_ca(cert):
        raise PkiError(f"certificate {position}: issuer is not a CA")
