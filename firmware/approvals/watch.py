"""The daemon's view of the installed approval list: verified at start, verified again within
a second of a new install (``evse-gatekeeper approvals install`` renames a new file into
place), so a running daemon uses a new list without a restart.

The check is a ``stat`` of the installed file (inode, size, mtime); only a change costs a
verification. What the list says is asked of the store (``status_of``); a list that expires
is out of force at once because the store checks validity on every question. A new file that
is refused leaves the list in force in force (``approvals.kept``); only a deleted file, or
none that verifies at start, leaves none (``approvals.none``). A list in force that is about
to expire (``expiry``) is logged once (``approvals.expiring``) and ``status`` warns.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from firmware.approvals.expiry import expiry_warning
from firmware.approvals.store import ApprovalStore, utc_now
from firmware.approvals.view import rfc3339
from firmware.logs import log_event

logger = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5  # a new install is seen within a second

Signature = tuple[int, int, int] | None


class ApprovalWatch:
    def __init__(self, store: ApprovalStore, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self._clock = clock
        self._seen: Signature | object = object()  # nothing seen yet: the first check loads
        self._warned: tuple[int, datetime] | None = None  # the list whose expiry was logged
        self.reloads = 0

    def check(self) -> bool:
        """Reload when the installed file changed since the last check; True if it did."""
        signature = self._signature()
        if signature == self._seen:
            return False
        self._seen = signature
        self.reloads += 1
        # found by the file's identity, in force at once; then confirmed by the file's hash
        if self.store.load_confirmed() is None:
            kept = self.store.current
            if kept is None:
                log_event(logger, "approvals.none", logging.WARNING,
                          reason=self.store.problem or "no list installed")  # fmt: skip
            else:
                log_event(logger, "approvals.kept", logging.WARNING,
                          version=kept.version, reason=self.store.problem)  # fmt: skip
        return True

    def expiry_warning(self) -> str | None:
        """Why the list in force needs replacing soon (``expiry``); None when it does not."""
        current = self.store.in_force()
        if current is None:
            return None
        return expiry_warning(current.issued_at, current.expires_at, self._clock())

    def warn_once(self) -> None:
        """Log ``approvals.expiring`` once for each list that enters its warning time."""
        warning, current = self.expiry_warning(), self.store.current
        if warning is None or current is None:
            return
        which = (current.version, current.expires_at)
        if which != self._warned:
            self._warned = which
            log_event(logger, "approvals.expiring", logging.WARNING, version=current.version,
                      expires_at=rfc3339(current.expires_at), warning=warning)  # fmt: skip

    def status(self) -> dict[str, Any]:
        """The list in force (or why there is none), for ``status``."""
        store = self.store
        current = store.current
        if current is None:
            return {"version": None, "in_force": False,
                    "problem": store.problem or "none installed"}  # fmt: skip
        in_force = store.in_force() is not None
        return {
            "version": current.version,
            "issuer": current.issuer,
            "expires_at": rfc3339(current.expires_at),
            "entries": len(current.entries),
            "in_force": in_force,
            "problem": None if in_force else (store.date_problem or store.problem),
            "expiry_warning": self.expiry_warning(),
        }

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            self.warn_once()  # a subtraction: on the loop
            # a new list is verified off the loop, in chunks that never hold the GIL long
            # (an index rebuild runs in a child process): the charger and the gate keep
            # turning meanwhile, and the store swaps the verified list in with one assignment
            await asyncio.to_thread(self.check)

    def _signature(self) -> Signature:
        try:
            stat = os.stat(self.store.path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)
