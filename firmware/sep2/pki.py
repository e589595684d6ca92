"""TEST credentials for 2030.5: a SERCA -> MCA -> MICA -> device hierarchy, generated with
``cryptography`` and written to disk by ``evse-gatekeeper pki init``.

Device certificates in the 2030.5 shape: empty subject, critical SubjectAltName with a
HardwareModuleName (one hwType per vehicle model), critical certificatePolicies (the device
type, mobile for vehicles, and the test policy), P-256, notAfter 99991231235959Z. Never
production credentials. The identity arithmetic and verification live in
``firmware.sep2.identity``.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from firmware.sep2.identity import (
    DEVICE_GENERIC,
    DEVICE_MOBILE,
    HARDWARE_MODULE_NAME_OID,
    MAX_CHAIN_LENGTH,
    POLICY_TEST,
    HardwareModuleName,
    PkiError,
    encode_hardware_module_name,
)

# A made-up test arc under 1.3.6.1.4.1 (not a registered enterprise number): .1.<n> PEV models,
# .2.1 the EVSE itself, .9.<n> the deliberately bad credentials.
PEV_HW_TYPE_ARC = "1.3.6.1.4.1.55555.1"
EVSE_HW_TYPE = "1.3.6.1.4.1.55555.2.1"
BAD_HW_TYPE_ARC = "1.3.6.1.4.1.55555.9"
# 2030.5 device certificates never expire: RFC 5280 §4.1.2.5's "no well-defined expiration".
NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
DEFAULT_PEV_NAMES = ("certified-4q", "uncertified", "unapproved-ism", "over-limits", "silent")
TEST_ORGANIZATION = "evse-gatekeeper TEST ONLY"
VEHICLE_POLICIES = (DEVICE_MOBILE, POLICY_TEST)  # a vehicle is a mobile device (§6.11.7.2)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_KEY_USAGES = (
    *("digital_signature", "content_commitment", "key_encipherment", "data_encipherment"),
    *("key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
)


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate, its private key and its issuers below the root (nearest first)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def cert_pem(self) -> bytes:
        """The certificate followed by its chain, as ``SSLContext.load_cert_chain`` wants."""
        pem = serialization.Encoding.PEM
        return b"".join(c.public_bytes(pem) for c in (self.cert, *self.chain))

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """Test CAs from the root down to the one that issues device certificates."""

    cas: tuple[Credential, ...]

    @property
    def root(self) -> Credential:
        return self.cas[0]

    @property
    def issuer(self) -> Credential:
        return self.cas[-1]


def new_p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def build_hierarchy(chain_length: int, label: str = "") -> Hierarchy:
    """CAs for device chains of ``chain_length`` (2: root only, 3: + MICA, 4: + MCA + MICA)."""
    if not 2 <= chain_length <= MAX_CHAIN_LENGTH:
        raise PkiError(f"chain length {chain_length} is not 2, 3 or 4")
    cas = [new_root(f"TEST SERCA{label}")]
    for kind in ("MCA", "MICA")[4 - chain_length :]:
        cas.append(issue_ca(cas[-1], f"TEST {kind}{label}"))
    return Hierarchy(tuple(cas))


def new_root(common_name: str) -> Credential:
    """A self-signed test root CA (SERCA)."""
    key = new_p256_key()
    name = _ca_name(common_name)
    builder = _ca_extensions(_builder(name, name, key), key)
    return Credential(builder.sign(key, hashes.SHA256()), key)


def issue_ca(issuer: Credential, common_name: str) -> Credential:
    """A test intermediate CA (MCA or MICA) issued by ``issuer``."""
    key = new_p256_key()
    builder = _ca_extensions(_builder(_ca_name(common_name), issuer.cert.subject, key), key)
    builder = builder.add_extension(_authority_key_id(issuer), critical=False)
    return Credential(builder.sign(issuer.key, hashes.SHA256()), key, _chain_below(issuer))


def issue_device(
    issuer: Credential,
    hw_type: str,
    hw_serial_num: bytes,
    key: PrivateKey | None = None,
    policies: tuple[str, ...] = (DEVICE_GENERIC, POLICY_TEST),
) -> Credential:
    """A 2030.5 device certificate: empty subject, critical SAN with a HardwareModuleName,
    critical certificatePolicies naming its device type and (here) the test policy, as real
    2030.5 device certificates carry them (§6.11.7.2, §6.11.7.3); ``()`` leaves them out."""
    key = key or new_p256_key()
    other_name = x509.OtherName(
        HARDWARE_MODULE_NAME_OID,
        encode_hardware_module_name(HardwareModuleName(hw_type, hw_serial_num)),
    )
    builder = (
        _builder(x509.Name([]), issuer.cert.subject, key)
        .add_extension(x509.SubjectAlternativeName([other_name]), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_agreement=True), critical=True)
        .add_extension(_authority_key_id(issuer), critical=False)
    )
    if policies:
        infos = [x509.PolicyInformation(x509.ObjectIdentifier(oid), None) for oid in policies]
        builder = builder.add_extension(x509.CertificatePolicies(infos), critical=True)
    return Credential(builder.sign(issuer.key, hashes.SHA256()), key, _chain_below(issuer))


def _builder(subject: x509.Name, issuer: x509.Name, key: PrivateKey) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(63) + 1)
        .not_valid_before(datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(NOT_AFTER)
    )


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEST_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_extensions(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.CertificateBuilder:
    return (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _key_usage(**usages: bool) -> x509.KeyUsage:
    return x509.KeyUsage(**{name: usages.get(name, False) for name in _KEY_USAGES})


def _authority_key_id(issuer: Credential) -> x509.AuthorityKeyIdentifier:
    public_key = issuer.key.public_key()
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)


def _chain_below(issuer: Credential) -> tuple[x509.Certificate, ...]:
    if issuer.cert.subject == issuer.cert.issuer:  # a root is trusted, never sent
        return ()
    return (issuer.cert, *issuer.chain)


@dataclass(frozen=True, slots=True)
class PevFiles:
    """One test vehicle's credential on disk: device certificate + MICA + MCA, and its key."""

    name: str
    hw_type: str
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class PkiLayout:
    """What ``init_pki`` wrote, in writing order."""

    directory: Path
    files: tuple[Path, ...]
    pevs: tuple[PevFiles, ...]

    @property
    def serca(self) -> Path:
        return self.directory / "serca.pem"

    @property
    def evse(self) -> Path:
        return self.directory / "evse.pem"

    @property
    def evse_key(self) -> Path:
        return self.directory / "evse.key"


_README = """TEST credentials for evse-gatekeeper. NOT FOR PRODUCTION: private keys lie unprotected
on disk and the roots are trusted by nobody but your own test setup. Device certificates have
the IEEE 2030.5 shape (empty subject, critical SubjectAltName with a HardwareModuleName whose
hwType is under the made-up test arc 1.3.6.1.4.1.55555, critical certificatePolicies with the
2030.5 device type and test policy) and never expire.

"""


def init_pki(directory: Path, pev_names: Sequence[str] = DEFAULT_PEV_NAMES) -> PkiLayout:
    """Write a fresh test PKI into ``directory``; refuses if it already holds one."""
    bad = [n for n in pev_names if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n)]
    if bad or len(set(pev_names)) != len(pev_names):
        raise PkiError(f"PEV names must be distinct, lowercase words joined by '-': {bad}")
    if (directory / "serca.pem").exists():
        raise PkiError(f"{directory}: already holds a PKI (serca.pem); refusing to overwrite keys")
    entries = _pki_entries(pev_names)
    readme = "".join(f"{name:<24} {what}\n" for name, what, _ in entries)
    entries.append(("README.txt", "", (_README + readme).encode()))
    try:
        (directory / "bad").mkdir(parents=True, exist_ok=True)
        for name, _, content in entries:
            _write_new(directory / name, content, secret=name.endswith(".key"))
    except OSError as err:
        raise PkiError(f"{err.filename or directory}: cannot write ({err.strerror})") from err
    stems = [(name, _pev_hw_type(i), directory / f"pev-{name}") for i, name in enumerate(pev_names)]
    pevs = tuple(
        PevFiles(n, hw, stem.with_suffix(".pem"), stem.with_suffix(".key")) for n, hw, stem in stems
    )
    return PkiLayout(directory, tuple(directory / name for name, _, _ in entries), pevs)


def _pev_hw_type(index: int) -> str:
    return f"{PEV_HW_TYPE_ARC}.{index + 1}"


def _pki_entries(pev_names: Sequence[str]) -> list[tuple[str, str, bytes]]:
    """(file name, description, content) of every credential file, ``serca.pem`` first."""
    serca, mca, mica = build_hierarchy(4).cas
    untrusted = new_root("TEST UNTRUSTED ROOT")
    made = [
        ("serca", "root CA (SERCA): the trust anchor (ca_file) of both sides", serca),
        ("mca", "intermediate CA (MCA) issued by the SERCA", Credential(mca.cert, mca.key)),
        ("mica", "intermediate CA (MICA) issued by the MCA", Credential(mica.cert, mica.key)),
        ("evse", "the EVSE: device cert + MICA + MCA", issue_device(mica, EVSE_HW_TYPE, b"EVSE")),
    ]
    for i, name in enumerate(pev_names):
        pev = issue_device(mica, _pev_hw_type(i), name.encode(), None, VEHICLE_POLICIES)
        made.append((f"pev-{name}", f"PEV hwType {_pev_hw_type(i)}: device + MICA + MCA", pev))
    p384, rsa2048 = ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048)
    bad: list[tuple[str, str, Credential, PrivateKey, tuple[str, ...]]] = [
        ("untrusted", "device issued by bad/untrusted-root.pem", untrusted, new_p256_key(),
         VEHICLE_POLICIES),
        ("p384", "device on P-384 issued by the MICA", mica, p384, VEHICLE_POLICIES),
        ("rsa", "device on RSA-2048 issued by the MICA", mica, rsa2048, VEHICLE_POLICIES),
        ("no-policy", "device without certificatePolicies, by the MICA", mica, new_p256_key(),
         ()),
    ]  # fmt: skip
    for i, (name, what, issuer, key, policy) in enumerate(bad, start=1):
        device = issue_device(issuer, f"{BAD_HW_TYPE_ARC}.{i}", name.encode(), key, policy)
        made.append((f"bad/pev-{name}", what, device))
    entries = []
    for stem, what, credential in made:  # serca.pem first: it marks the directory as taken
        entries.append((f"{stem}.pem", what, credential.cert_pem()))
        entries.append((f"{stem}.key", f"private key of {stem}.pem", credential.key_pem()))
    entries.append(("bad/untrusted-root.pem", "a root that nobody trusts", untrusted.cert_pem()))
    return entries


def _write_new(path: Path, content: bytes, *, secret: bool) -> None:
    """Create ``path`` (never overwrite it); keys are readable by their owner only."""
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), mode)
        file.write(content)
