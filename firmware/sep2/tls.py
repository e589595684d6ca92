"""The 2030.5 TLS policy: the server and client contexts and the peer's identity.

Owns the policy of IEEE 2030.5 §6.11 as J3072 uses it: TLS 1.2 only, the one cipher suite
``ECDHE-ECDSA-AES128-CCM8``, curve P-256, mutual authentication against the configured SERCA
roots only, and EC P-256 keys on both ends. Python's ``ssl`` cannot restrict the peer's key type
during the handshake, so ``peer_identity`` checks it right after, and the server drops the
connection when it raises. It does not serve resources nor decide who may charge.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.errors import GatekeeperError

# cryptography is imported where certificates and keys are read: PeerIdentity needs none
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

CCM8_CIPHER = "ECDHE-ECDSA-AES128-CCM8"
CCM8_SUITE = 0xC0AE  # TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, RFC 7251 §2
ECDH_CURVE = "prime256v1"
# OpenSSL ≥ 3.2 rates CCM8's 64-bit tag below security level 1: the suite then needs level 0.
_CCM8_CANDIDATES = (CCM8_CIPHER, f"{CCM8_CIPHER}:@SECLEVEL=0")


class TlsError(GatekeeperError):
    """Raised when a TLS context cannot be built or a peer's certificate is refused."""


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who is at the other end of an authenticated connection (2030.5 §6.3.4)."""

    lfdi: str
    sfdi: int
    cert_der: bytes
    hw_type: str | None  # HardwareModuleName.hwType: the PEV's make and model


def probe_ccm8() -> str:
    """The cipher string with which this OpenSSL offers ``ECDHE-ECDSA-AES128-CCM8``."""
    for candidate in _CCM8_CANDIDATES:
        if _offers_ccm8(candidate):
            return candidate
    raise TlsError(f"{ssl.OPENSSL_VERSION} does not offer {CCM8_CIPHER}, even at security level 0")


def _offers_ccm8(ciphers: str) -> bool:
    """Whether a TLS 1.2 ClientHello built with ``ciphers`` lists the CCM8 suite.

    ``set_ciphers`` alone is not enough: the security level filters suites out only when a
    hello is built, so build one in memory and look.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        return False
    outgoing = ssl.MemoryBIO()
    try:
        context.wrap_bio(ssl.MemoryBIO(), outgoing).do_handshake()
    except ssl.SSLWantReadError:
        pass  # the hello is out, the answer would come next
    except ssl.SSLError:
        return False
    return CCM8_SUITE in _offered_suites(outgoing.read())


def _offered_suites(record: bytes) -> set[int]:
    # record header (5), handshake header (4), client_version (2), random (32): RFC 5246 §7.4.1.2
    pos = 5 + 4 + 2 + 32
    if len(record) <= pos:
        return set()
    pos += 1 + record[pos]  # session_id
    suites = record[pos + 2 : pos + 2 + int.from_bytes(record[pos : pos + 2], "big")]
    return {int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites) - 1, 2)}


def server_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The EVSE's context: requires a client certificate chaining to a root in ``ca_file``."""
    return _context(ssl.PROTOCOL_TLS_SERVER, ca_file, cert_file, key_file)


def client_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A PEV's context: the same policy, verifying the server against ``ca_file``.

    No host name check: 2030.5 device certificates have no host names; the chain and the LFDI
    authenticate the server.
    """
    return _context(ssl.PROTOCOL_TLS_CLIENT, ca_file, cert_file, key_file)


def _context(
    protocol: ssl._SSLMethod, ca_file: Path, cert_file: Path, key_file: Path
) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(probe_ccm8())
    context.set_ecdh_curve(ECDH_CURVE)
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    # strict: e.g. an empty subject needs a critical SAN (RFC 5280 §4.1.2.6)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        context.load_verify_locations(cafile=ca_file)
    except OSError as err:  # ssl.SSLError included
        raise TlsError(f"{ca_file}: cannot load the trusted roots ({_reason(err)})") from err
    _load_own_credential(context, cert_file, key_file)
    return context


def _load_own_credential(context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from firmware.sep2.identity import PkiError, key_problem, load_certificate

    try:
        cert = load_certificate(cert_file)
    except PkiError as err:
        raise TlsError(str(err)) from err
    problem = key_problem(cert)
    if problem is not None:
        raise TlsError(f"{cert_file}: own {problem}")
    key = _load_key(key_file)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise TlsError(f"{key_file}: not the key of {cert_file}")
    try:
        context.load_cert_chain(cert_file, key_file)
    except OSError as err:
        raise TlsError(f"{cert_file}: cannot load the chain ({_reason(err)})") from err


def _load_key(key_file: Path) -> PrivateKeyTypes:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except OSError as err:
        raise TlsError(f"{key_file}: cannot read ({err.strerror})") from err
    except (ValueError, TypeError) as err:
        raise TlsError(f"{key_file}: not an unencrypted PEM private key") from err


def _reason(err: OSError) -> str:
    if isinstance(err, ssl.SSLError):
        return err.reason or str(err)
    return err.strerror or str(err)


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> PeerIdentity:
    """The verified peer's LFDI, SFDI and hwType; raises TlsError when it must be refused."""
    from cryptography import x509

    from firmware.sep2.identity import (
        PkiError,
        hardware_module_name,
        key_problem,
        lfdi,
        policy_problem,
        sfdi,
    )

    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise TlsError("the peer sent no certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as err:
        raise TlsError("the peer's certificate does not parse") from err
    problem = key_problem(cert) or policy_problem(cert)
    if problem is not None:
        raise TlsError(f"the peer's {problem}")
    try:
        hardware = hardware_module_name(cert)
    except PkiError as err:
        raise TlsError(f"the peer's certificate: {err}") from err
    value = lfdi(der)
    return PeerIdentity(value, sfdi(value), der, hardware.hw_type if hardware else None)
