"""A violation outlives the daemon: kept in the state directory until the pilot shows the
vehicle unplugged (state A), so that a restart in the middle of a plug-in (a crash, an
update, a watchdog) does not give a vehicle that discharged over its limit a clean slate.

The file is replaced durably (written, fsynced, renamed, the directory fsynced) when a
violation is recorded, and removed when the pilot shows state A. A file that cannot be read
counts as a violation: fail safe, and the next unplug clears it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from firmware.approvals.durable import fsync_directory, replace_durably
from firmware.logs import log_event

logger = logging.getLogger(__name__)

FILE_NAME = "j3072-violation.json"
MAX_BYTES = 4096
UNREADABLE = "a violation record that cannot be read"


class HeldViolation:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME

    def load(self) -> str | None:
        """The reason of the violation held from before the start, if any."""
        try:
            with self.path.open("rb") as f:
                data = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as err:
            log_event(logger, "j3072.violation_unreadable", logging.ERROR, error=err.strerror)
            return UNREADABLE
        try:
            reason = json.loads(data)["reason"] if len(data) <= MAX_BYTES else None
        except (ValueError, KeyError, TypeError, RecursionError):
            reason = None
        return reason if isinstance(reason, str) and reason else UNREADABLE

    def save(self, reason: str) -> bool:
        """Durably; False (logged) when the disk refuses: the violation still holds in memory."""
        temporary = self.path.with_name(f".{FILE_NAME}.tmp")
        data = json.dumps({"reason": reason[:1000]}).encode()
        try:
            replace_durably(self.path, temporary, data, 0o640)
        except OSError as err:
            log_event(logger, "j3072.violation_not_kept", logging.ERROR, error=err.strerror,
                      effect="held until unplug or restart")  # fmt: skip
            return False
        return True

    def clear(self) -> None:
        try:
            self.path.unlink()
            fsync_directory(self.path.parent)
        except FileNotFoundError:
            return
        except OSError as err:
            log_event(logger, "j3072.violation_not_cleared", logging.ERROR, error=err.strerror)
