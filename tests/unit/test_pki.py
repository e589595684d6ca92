"""2030.5 identities and the TEST PKI (firmware/sep2/identity.py, pki.py), per
docs/v2g-ac-profile.md "Device identifiers: LFDI and SFDI".

LFDI = first 160 bits of SHA-256 over the DER certificate; SFDI = its first 36 bits in decimal,
times 10, plus a check digit making the digit sum a multiple of 10. Device certificates: empty
subject, critical SAN with one HardwareModuleName (RFC 4108), never expiring (99991231235959Z),
EC P-256 keys and ECDSA-SHA256 signatures; chains SERCA -> [MCA ->] [MICA ->] device.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from firmware.sep2.identity import (
    HARDWARE_MODULE_NAME_OID,
    HardwareModuleName,
    PkiError,
    decode_hardware_module_name,
    describe_policies,
    encode_hardware_module_name,
    hardware_module_name,
    lfdi,
    policies,
    policy_problem,
    sfdi,
    sfdi_check_digit,
    verify_chain,
)
from firmware.sep2.pki import (
    DEFAULT_PEV_NAMES,
    EVSE_HW_TYPE,
    TEST_ORGANIZATION,
    Credential,
    build_hierarchy,
    init_pki,
    issue_ca,
    issue_device,
    new_root,
)

HW_TYPE = "1.3.6.1.4.1.55555.1.5"


def digit_sum(value: int) -> int:
    return sum(int(digit) for digit in str(value))


def test_sfdi_vector_from_the_reference() -> None:
    assert sfdi("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5") == 167261211391
    assert sfdi("3e4f45ab31edfe5b67e343e5e4562e31984e23e5") == 167261211391


def test_lfdi_is_the_first_160_bits_of_sha256_in_uppercase_hex() -> None:
    # FIPS 180-2 example: SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a3 96177a9c...
    assert lfdi(b"abc") == "BA7816BF8F01CFEA414140DE5DAE2223B00361A3"


def test_sfdi_takes_only_the_first_36_bits() -> None:
    high = "FFFFFFFFF" + "0" * 31
    assert sfdi(high) // 10 == 2**36 - 1
    assert sfdi(high) == sfdi("FFFFFFFFF" + "F" * 31)
    assert sfdi("000000001" + "F" * 31) // 10 == 1


@pytest.mark.parametrize("value", [*range(0, 300), 2**36 - 1, 16726121139, 10**10, 99999])
def test_the_check_digit_makes_the_digit_sum_a_multiple_of_10(value: int) -> None:
    digit = sfdi_check_digit(value)
    assert 0 <= digit <= 9
    assert digit_sum(value * 10 + digit) % 10 == 0
    others = [d for d in range(10) if d != digit]
    assert all(digit_sum(value * 10 + d) % 10 != 0 for d in others), "the digit is unique"


@pytest.mark.parametrize("bad", ["", "3E4F", "G" * 40, "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5A"])
def test_sfdi_refuses_what_is_not_an_lfdi(bad: str) -> None:
    with pytest.raises(PkiError):
        sfdi(bad)


def test_hardware_module_name_der_matches_a_hand_encoding() -> None:
    # SEQUENCE(20) { OID(10) 1.3.6.1.4.1.55555.1.5, OCTET STRING(6) "silent" };
    # 55555 = 3*128^2 + 50*128 + 3 -> 83 B2 03
    expected = bytes.fromhex("3014060A2B0601040183B20301050406") + b"silent"
    assert encode_hardware_module_name(HardwareModuleName(HW_TYPE, b"silent")) == expected
    assert decode_hardware_module_name(expected) == HardwareModuleName(HW_TYPE, b"silent")


@pytest.mark.parametrize(
    ("hw_type", "serial"),
    [
        ("1.3.6.1.4.1.55555.1.1", b""),
        ("2.999.1", b"x" * 200),  # first-arc 2 with a large second arc; long-form lengths
        ("0.39.4294967296", bytes(range(256))),
    ],
)
def test_hardware_module_name_round_trips(hw_type: str, serial: bytes) -> None:
    name = HardwareModuleName(hw_type, serial)
    assert decode_hardware_module_name(encode_hardware_module_name(name)) == name


@pytest.mark.parametrize(
    "der",
    [
        "",
        "3100",  # SET, not SEQUENCE
        "3014060A2B0601040183B2030105040673696C656E",  # truncated
        "3014060A2B0601040183B2030105040673696C656E7400",  # trailing byte
        "30080603808101040100",  # OID arc with a leading 0x80 (not minimal)
        "300606010004020000",  # SEQUENCE length too short for its content
        "30820005060129040100",  # long-form length for a short value
        "3003040100",  # no OID
    ],
)
def test_malformed_hardware_module_names_are_refused(der: str) -> None:
    with pytest.raises(PkiError):
        decode_hardware_module_name(bytes.fromhex(der))


def test_an_invalid_hw_type_is_refused() -> None:
    with pytest.raises(PkiError):
        encode_hardware_module_name(HardwareModuleName("not.an.oid", b""))


def test_device_certificates_have_the_2030_5_shape() -> None:
    device = issue_device(build_hierarchy(3).issuer, HW_TYPE, b"SN-1")
    cert = device.cert
    assert cert.subject == x509.Name([]) and len(cert.subject.rdns) == 0
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    [other] = san.value.get_values_for_type(x509.OtherName)
    assert len(san.value) == 1 and other.type_id == HARDWARE_MODULE_NAME_OID
    assert decode_hardware_module_name(other.value) == HardwareModuleName(HW_TYPE, b"SN-1")
    assert hardware_module_name(cert) == HardwareModuleName(HW_TYPE, b"SN-1")
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_agreement
    assert not usage.value.key_cert_sign and not usage.value.key_encipherment
    assert cert.not_valid_after_utc == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    # GeneralizedTime (tag 0x18, 15 bytes) as RFC 5280 §4.1.2.5 requires after 2049
    assert b"\x18\x0f99991231235959Z" in cert.public_bytes(Encoding.DER)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    # §6.11.7.2/§6.11.7.3: the device type and the policy, critical, as real ones have them
    found = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert found.critical
    assert policies(cert) == ("1.3.6.1.4.1.40732.1.1", "1.3.6.1.4.1.40732.2.1")
    assert policy_problem(cert) is None and describe_policies(cert) == "device, test"


def test_vehicle_certificates_are_mobile_devices_and_a_bare_one_is_refused(
    pki_dir: Path,
) -> None:
    pev = _certs(pki_dir / f"pev-{DEFAULT_PEV_NAMES[0]}.pem")[0]
    assert describe_policies(pev) == "mobile device, test"
    bare = _certs(pki_dir / "bad" / "pev-no-policy.pem")[0]
    assert policy_problem(bare) == (
        "certificate has no certificatePolicies (an IEEE 2030.5 device type is required)"
    )
    other = issue_device(build_hierarchy(2).issuer, HW_TYPE, b"X", None, ("1.2.3.4",))
    assert "names no IEEE 2030.5 device type" in (policy_problem(other.cert) or "")


def test_ca_certificates_are_critical_test_cas() -> None:
    hierarchy = build_hierarchy(4)
    names = [
        ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for ca in hierarchy.cas
    ]
    assert names == ["TEST SERCA", "TEST MCA", "TEST MICA"]
    for ca in hierarchy.cas:
        org = ca.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        assert org == TEST_ORGANIZATION
        basic = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.critical and basic.value.ca
        usage = ca.cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        assert not usage.value.digital_signature
        assert isinstance(ca.key, ec.EllipticCurvePrivateKey)
        assert isinstance(ca.key.curve, ec.SECP256R1)
        assert ca.cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    serca, mca, mica = hierarchy.cas
    assert serca.cert.issuer == serca.cert.subject
    assert mca.cert.issuer == serca.cert.subject and mica.cert.issuer == mca.cert.subject
    assert mica.chain == (mca.cert,), "the root is never part of a sent chain"


@pytest.mark.parametrize("length", [2, 3, 4])
def test_verify_chain_accepts_lengths_2_3_and_4(length: int) -> None:
    hierarchy = build_hierarchy(length)
    device = issue_device(hierarchy.issuer, HW_TYPE, b"SN")
    assert len(device.chain) == length - 2
    verify_chain(device.cert_pem(), hierarchy.root.cert_pem())


def test_verify_chain_accepts_one_of_several_roots() -> None:
    hierarchy = build_hierarchy(3, " A")
    device = issue_device(hierarchy.issuer, HW_TYPE, b"SN")
    other = new_root("TEST OTHER ROOT")
    verify_chain(device.cert_pem(), other.cert_pem() + hierarchy.root.cert_pem())


def test_verify_chain_refuses_an_untrusted_root() -> None:
    device = issue_device(build_hierarchy(4).issuer, HW_TYPE, b"SN")
    with pytest.raises(PkiError, match="not a trusted root"):
        verify_chain(device.cert_pem(), build_hierarchy(4, " OTHER").root.cert_pem())


def test_verify_chain_refuses_a_forged_issuer_of_the_same_name() -> None:
    """Names match, signatures do not: two hierarchies with identical names."""
    device = issue_device(build_hierarchy(2).issuer, HW_TYPE, b"SN")
    with pytest.raises(PkiError):
        verify_chain(device.cert_pem(), build_hierarchy(2).root.cert_pem())


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "secp384r1"),
        (rsa.generate_private_key(65537, 2048), "RSA-2048"),
    ],
)
def test_verify_chain_refuses_a_device_key_that_is_not_p256(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, needle: str
) -> None:
    hierarchy = build_hierarchy(4)
    device = issue_device(hierarchy.issuer, HW_TYPE, b"SN", key)
    with pytest.raises(PkiError, match=f"certificate 1: key is .*{needle}"):
        verify_chain(device.cert_pem(), hierarchy.root.cert_pem())


def test_verify_chain_refuses_a_missing_intermediate() -> None:
    hierarchy = build_hierarchy(4)
    device = issue_device(hierarchy.issuer, HW_TYPE, b"SN")
    without_mca = Credential(device.cert, device.key, device.chain[:1])
    verify_chain(device.cert_pem(), hierarchy.root.cert_pem())
    with pytest.raises(PkiError):
        verify_chain(without_mca.cert_pem(), hierarchy.root.cert_pem())


def test_verify_chain_refuses_a_chain_longer_than_4() -> None:
    hierarchy = build_hierarchy(4)
    extra = issue_ca(hierarchy.issuer, "TEST EXTRA CA")
    device = issue_device(extra, HW_TYPE, b"SN")
    with pytest.raises(PkiError, match="at most 4"):
        verify_chain(device.cert_pem(), hierarchy.root.cert_pem())


def test_verify_chain_refuses_a_device_as_an_issuer() -> None:
    hierarchy = build_hierarchy(2)
    device = issue_device(hierarchy.issuer, HW_TYPE, b"SN")
    second = issue_device(device, HW_TYPE, b"SN-2")  # signed by the device's key
    assert second.chain == (device.cert,)
    with pytest.raises(PkiError, match="not a CA"):
        verify_chain(second.cert_pem(), hierarchy.root.cert_pem())


def test_verify_chain_refuses_a_ca_as_the_leaf() -> None:
    hierarchy = build_hierarchy(3)
    with pytest.raises(PkiError, match="CA"):
        verify_chain(hierarchy.issuer.cert_pem(), hierarchy.root.cert_pem())


def test_build_hierarchy_refuses_other_lengths() -> None:
    for length in (1, 5):
        with pytest.raises(PkiError):
            build_hierarchy(length)


KEY_FILES = {
    "serca.key", "mca.key", "mica.key", "evse.key",
    *(f"pev-{name}.key" for name in DEFAULT_PEV_NAMES),
    "bad/pev-untrusted.key", "bad/pev-p384.key", "bad/pev-rsa.key", "bad/pev-no-policy.key",
}  # fmt: skip
CERT_FILES = {
    "serca.pem", "mca.pem", "mica.pem", "evse.pem",
    *(f"pev-{name}.pem" for name in DEFAULT_PEV_NAMES),
    "bad/untrusted-root.pem", "bad/pev-untrusted.pem", "bad/pev-p384.pem", "bad/pev-rsa.pem",
    "bad/pev-no-policy.pem",
}  # fmt: skip


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "fresh"
    init_pki(directory)
    return directory


def _written(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


def test_init_pki_writes_the_layout(pki_dir: Path) -> None:
    assert _written(pki_dir) == KEY_FILES | CERT_FILES | {"README.txt"}
    for name in KEY_FILES:
        assert stat.S_IMODE((pki_dir / name).stat().st_mode) == 0o600, name
    readme = (pki_dir / "README.txt").read_text()
    assert "TEST" in readme and "NOT FOR PRODUCTION" in readme
    assert all(name in readme for name in KEY_FILES | CERT_FILES)


def _certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_init_pki_device_files_carry_their_chain_and_hw_type(pki_dir: Path) -> None:
    roots = (pki_dir / "serca.pem").read_bytes()
    assert [_cn(c) for c in _certs(pki_dir / "serca.pem")] == ["TEST SERCA"]
    hw_types = set()
    for stem in ["evse", *(f"pev-{name}" for name in DEFAULT_PEV_NAMES)]:
        leaf, *chain = _certs(pki_dir / f"{stem}.pem")
        assert [_cn(c) for c in chain] == ["TEST MICA", "TEST MCA"], stem
        verify_chain((pki_dir / f"{stem}.pem").read_bytes(), roots)
        name = hardware_module_name(leaf)
        assert name is not None
        hw_types.add(name.hw_type)
    assert hardware_module_name(_certs(pki_dir / "evse.pem")[0]) is not None
    assert EVSE_HW_TYPE in hw_types and len(hw_types) == len(DEFAULT_PEV_NAMES) + 1


def test_init_pki_bad_credentials_are_refused_by_verify_chain(pki_dir: Path) -> None:
    roots = (pki_dir / "serca.pem").read_bytes()
    for name in ("untrusted", "p384", "rsa"):
        with pytest.raises(PkiError):
            verify_chain((pki_dir / "bad" / f"pev-{name}.pem").read_bytes(), roots)
    untrusted = (pki_dir / "bad" / "untrusted-root.pem").read_bytes()
    verify_chain((pki_dir / "bad" / "pev-untrusted.pem").read_bytes(), untrusted)


def test_init_pki_refuses_an_initialised_directory(tmp_path: Path) -> None:
    init_pki(tmp_path, ["one"])
    before = {name: (tmp_path / name).read_bytes() for name in _written(tmp_path)}
    with pytest.raises(PkiError, match="already holds"):
        init_pki(tmp_path, ["two"])
    assert {name: (tmp_path / name).read_bytes() for name in _written(tmp_path)} == before


def test_init_pki_returns_what_it_wrote(tmp_path: Path) -> None:
    layout = init_pki(tmp_path / "new", ["a-1", "b"])
    assert {str(p.relative_to(layout.directory)) for p in layout.files} == _written(
        layout.directory
    )
    assert [p.name for p in layout.pevs] == ["a-1", "b"]
    assert all(p.cert.is_file() and p.key.is_file() for p in layout.pevs)
    assert layout.serca.is_file() and layout.evse.is_file() and layout.evse_key.is_file()
    leaf_name = hardware_module_name(_certs(layout.pevs[1].cert)[0])
    assert leaf_name is not None and leaf_name.hw_type == layout.pevs[1].hw_type


@pytest.mark.parametrize("names", [["ok", "ok"], ["../escape"], ["Upper"], [""]])
def test_init_pki_refuses_unsafe_pev_names(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(PkiError):
        init_pki(tmp_path, names)
    assert not any(tmp_path.iterdir())
