"""The pure parts of the TLS refusal log: the client's Certificate message read from the bytes
it sent in the clear, the rate limit, and the Accept header rule (406)."""

from __future__ import annotations

import logging

import pytest

from firmware.sep2.server import accepts_xml
from firmware.sep2.tls_refusals import (
    RefusalLog,
    client_certificates,
    describe_certificate,
    why,
)


def record(kind: int, payload: bytes) -> bytes:
    return bytes([kind, 3, 3]) + len(payload).to_bytes(2, "big") + payload


def handshake(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def certificate_message(*ders: bytes) -> bytes:
    entries = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    return handshake(11, len(entries).to_bytes(3, "big") + entries)


def test_the_certificates_are_read_from_the_clients_handshake_records() -> None:
    hello = handshake(1, b"\x03\x03" + b"r" * 32)
    message = certificate_message(b"LEAF-DER", b"MICA-DER")
    # the message split across two records, as a long chain is; then ChangeCipherSpec and
    # encrypted records that must not be read
    stream = (record(22, hello) + record(22, message[:7]) + record(22, message[7:])
              + record(20, b"\x01") + record(22, b"\xff" * 40))  # fmt: skip
    assert client_certificates(stream) == [b"LEAF-DER", b"MICA-DER"]


@pytest.mark.parametrize(
    "stream",
    [b"", b"\x16\x03", record(22, handshake(1, b"hello")), record(23, b"application data"),
     record(22, handshake(11, b"\x00\x00\x09\x00\x00\x20abc"))],  # a truncated entry
)  # fmt: skip
def test_no_certificate_or_a_broken_one_yields_none_and_never_raises(stream: bytes) -> None:
    found = client_certificates(stream)
    assert found in ([], [b"abc"])


def test_refusals_are_rate_limited_and_count_what_was_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = RefusalLog(burst=3, per_s=1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="firmware.sep2.tls_refusals"):
        for _ in range(10):
            log.refused("::1", "cipher")
        now[0] += 2.0
        log.refused("::1", "cipher")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and log.logged == 4
    assert "suppressed=7" in lines[-1] and "suppressed" not in lines[0]


@pytest.mark.parametrize(
    ("accept", "ok"),
    [(None, True), ("", True), ("*/*", True), ("application/*", True),
     ("application/sep+xml", True), ("Application/SEP+XML; q=0.3", True),
     ("application/sep-exi", False), ("application/sep+xml;q=0", False),
     ("application/sep-exi, application/sep+xml;q=0.1", True), ("text/html", False),
     ("application/sep+xml;q=zero", False)],
)  # fmt: skip
def test_a_client_must_accept_xml(accept: str | None, ok: bool) -> None:
    assert accepts_xml(accept) is ok


def test_a_hostile_certificate_is_named_by_its_lfdi_and_never_raises() -> None:
    """A self-signed certificate whose certificatePolicies is garbage: reading its extensions
    raises inside cryptography; the refusal line still names its LFDI."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtensionOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    garbage = x509.UnrecognizedExtension(ExtensionOID.CERTIFICATE_POLICIES, b"\x30\x03\x02\x01")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(datetime.now(UTC)).not_valid_after(datetime.now(UTC)
                                                                 + timedelta(days=1))
            .add_extension(garbage, critical=False).sign(key, hashes.SHA256()))  # fmt: skip
    fields = describe_certificate(cert.public_bytes(Encoding.DER))
    assert len(fields["lfdi"]) == 40 and fields.get("certificate") == "does not parse"


def test_a_handshake_that_takes_too_long_is_called_a_timeout() -> None:
    err = ConnectionAbortedError("SSL handshake is taking longer than 5.0 seconds: aborting")
    assert why(err, []) == "handshake timeout: no complete handshake in time"
