"""Why a vehicle's TLS handshake was refused, in one log line an installer can act on.

A refused handshake leaves the vehicle with a closed connection and nothing else; this module
turns OpenSSL's reason into the project's words (no certificate, unknown root, incomplete
chain, protocol, cipher, curve, key type, policy, timeout) and names the certificate the
vehicle sent, when it sent one: in TLS 1.2 the client's Certificate message travels in the
clear (RFC 5246 §7.4.6), so the bytes the server received before the failure are kept
(``TapSocket``, at most 16 KiB) and the message is read from them. The lines are rate-limited
(a burst, then one a second, with a count of those left out), so a flood of bad handshakes
cannot fill the journal.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable

from firmware.logs import log_event

logger = logging.getLogger(__name__)

MAX_RECORDED = 16 * 1024
HANDSHAKE = 22  # TLS record content types (RFC 5246 §6.2.1)
CHANGE_CIPHER_SPEC = 20
CERTIFICATE = 11  # handshake message type (RFC 5246 §7.4)
PROTOCOL_REASONS = ("UNSUPPORTED_PROTOCOL", "WRONG_VERSION_NUMBER", "VERSION_TOO_LOW",
                    "TLSV1_ALERT_PROTOCOL_VERSION", "UNKNOWN_PROTOCOL", "HTTP_REQUEST")  # fmt: skip


class TapSocket(socket.socket):
    """An accepted socket that keeps the first bytes it receives, for ``client_certificates``
    after a failed handshake; ``stop`` once the handshake is done."""

    def __init__(self, accepted: socket.socket) -> None:
        super().__init__(accepted.family, accepted.type, accepted.proto, fileno=accepted.detach())
        self.recorded = bytearray()
        self.recording = True

    def stop(self) -> None:
        self.recording, self.recorded = False, bytearray()

    def recv_into(self, buffer: object, nbytes: int = 0, flags: int = 0) -> int:
        count = super().recv_into(buffer, nbytes, flags)  # type: ignore[arg-type]
        if self.recording and len(self.recorded) < MAX_RECORDED:
            self.recorded += memoryview(buffer)[:count].tobytes()  # type: ignore[arg-type]
        return count

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        if self.recording and len(self.recorded) < MAX_RECORDED:
            self.recorded += data
        return data


def client_certificates(recorded: bytes) -> list[bytes]:
    """The DER certificates of the client's Certificate message in ``recorded`` (the bytes the
    client sent), or [] when there is none in the clear."""
    payload = bytearray()
    pos = 0
    while pos + 5 <= len(recorded):
        kind, length = recorded[pos], int.from_bytes(recorded[pos + 3 : pos + 5], "big")
        if kind == CHANGE_CIPHER_SPEC:
            break
        if kind == HANDSHAKE:
            payload += recorded[pos + 5 : pos + 5 + length]
        pos += 5 + length
    pos = 0
    while pos + 4 <= len(payload):
        kind, length = payload[pos], int.from_bytes(payload[pos + 1 : pos + 4], "big")
        body = bytes(payload[pos + 4 : pos + 4 + length])
        if kind == CERTIFICATE:
            return _certificate_list(body)
        pos += 4 + length
    return []


def _certificate_list(body: bytes) -> list[bytes]:
    certificates, pos = [], 3
    end = min(len(body), 3 + int.from_bytes(body[:3], "big"))
    while pos + 3 <= end:
        length = int.from_bytes(body[pos : pos + 3], "big")
        certificates.append(body[pos + 3 : pos + 3 + length])
        pos += 3 + length
    return certificates


def why(err: BaseException, chain: list[bytes]) -> str:
    """The refusal in the project's words (``chain``: the certificates the client sent)."""
    chain_length = len(chain)
    if isinstance(err, TimeoutError) or "handshake is taking longer" in str(err):
        return "handshake timeout: no complete handshake in time"
    if not isinstance(err, ssl.SSLError):
        return f"connection lost during the handshake ({type(err).__name__})"
    reason = err.reason or ""
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE" or (
        reason == "CERTIFICATE_VERIFY_FAILED" and chain_length == 0
    ):
        return "no certificate: the vehicle sent none"
    if reason == "CERTIFICATE_VERIFY_FAILED":
        message = getattr(err, "verify_message", "") or ""
        if "local issuer" in message and chain_length == 1:
            return ("incomplete chain or unknown root: the device certificate came alone, "
                    f"issued by {_issuer(chain[-1])}, which is no configured SERCA")  # fmt: skip
        if "local issuer" in message or "self-signed" in message or "self signed" in message:
            return (f"unknown root: the chain of {chain_length} ends at {_issuer(chain[-1])}, "
                    "which is no configured SERCA")  # fmt: skip
        return f"certificate refused: {message or reason}"
    if reason in PROTOCOL_REASONS:
        return f"protocol: not TLS 1.2 ({reason})"
    if reason == "NO_SHARED_CIPHER":
        return "cipher: the vehicle offered no ECDHE-ECDSA-AES128-CCM8"
    if "GROUP" in reason or "CURVE" in reason or "KEY_SHARE" in reason:
        return f"curve: the vehicle offered no P-256 ({reason})"
    return f"TLS: {reason or err}"


def _issuer(der: bytes) -> str:
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der).issuer.rfc4514_string() or "(empty)"
    except ValueError:
        return "(a certificate that does not parse)"


class RefusalLog:
    """One line per refused handshake, rate-limited: ``burst`` at once, then ``per_s``."""

    def __init__(
        self, burst: int = 20, per_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst, self._per_s, self._clock = burst, per_s, clock
        self._tokens, self._at = float(burst), clock()
        self.suppressed = 0
        self.logged = 0

    def refused(self, peer: str, reason: str, certificate: dict[str, str] | None = None) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1:
            self.suppressed += 1
            return
        self._tokens -= 1
        self.logged += 1
        fields = {"peer": peer, "reason": reason, **(certificate or {})}
        if self.suppressed:
            fields["suppressed"] = str(self.suppressed)
            self.suppressed = 0
        log_event(logger, "sep2.tls_refused", logging.WARNING, **fields)


def describe_certificate(der: bytes) -> dict[str, str]:
    """What a log line says of the certificate a vehicle sent: its LFDI, subject, hwType and
    2030.5 policies (as far as it parses)."""
    from cryptography import x509

    from firmware.sep2.identity import (
        PkiError,
        describe_policies,
        hardware_module_name,
        lfdi,
    )

    fields = {"lfdi": lfdi(der)}
    try:
        cert = x509.load_der_x509_certificate(der)
        fields["subject"] = cert.subject.rfc4514_string() or "(empty)"
        try:
            hardware = hardware_module_name(cert)
        except PkiError:
            hardware = None
        if hardware is not None:
            fields["hw_type"] = hardware.hw_type
        fields["policies"] = describe_policies(cert)
    except Exception:  # a hostile certificate's extensions raise on reading: name it only
        fields["certificate"] = "does not parse"
    return fields
