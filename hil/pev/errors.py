"""The PEV simulator's errors: one line each, fit for the timeline and the summary."""

from __future__ import annotations

from firmware.errors import GatekeeperError


class PevError(GatekeeperError):
    """Raised when a step of the session fails: a refused or unexpected answer, a document
    that does not parse, a link that leaves the EVSE, or no answer at all."""


class TlsHandshakeError(PevError):
    """Raised when the mutual TLS handshake with the EVSE fails (either side refused the
    other's certificate): the session ends and the PEV only charges (§4.5.2)."""
