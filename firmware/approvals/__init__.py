"""The utility approval list (SAE J3072 gatekeeper): which vehicles' inverters may discharge.

A utility publishes a signed list of ISM numbers, each approved (with an optional discharge
limit) or revoked, as a compact JWS (RFC 7515, ES256). This package owns verifying it
(``jws``), validating its payload into an O(1) lookup (``approval_list``), indexing the
verified list in SQLite (``index``; rebuilt out of the daemon's process by ``rebuild``),
installing it atomically under the state directory and verifying it again at start and after
each install (``store``, reading the file in chunks: ``installed_file``), what readers ask of
a list in either form (``view``), and the ``evse-gatekeeper approvals`` commands (``cli``).
It does not decide whether a session may discharge: the authorization logic asks it about
one ISM and applies the answer.

The errors of the package derive from :class:`ApprovalError`; each one's message is the
one-line reason given to the operator.
"""

from __future__ import annotations

from firmware.errors import GatekeeperError


class ApprovalError(GatekeeperError):
    """Raised when an approval list is refused or cannot be read or stored; the message is
    the one-line reason."""
