"""The permanent-fault record: makes "inoperative" survive a restart or a power cycle.

A welded or failed-to-close contactor, or a failed RCD self-test, is written here (atomically:
write, fsync, rename, fsync the directory) before the daemon reports it, and read at start, so
that no later power-on closes anything until a technician clears it with
``evse-gatekeeper faults clear``. A record that cannot be read counts as a fault: default deny.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from firmware.charger.faults import FaultKind
from firmware.errors import GatekeeperError

FILE_NAME = "inoperative.json"


class FaultStoreError(GatekeeperError):
    """Raised when the record exists but cannot be read or written."""


@dataclass(frozen=True, slots=True)
class PermanentFault:
    kind: FaultKind
    at: str  # ISO 8601 UTC wall-clock time, for the technician


class FaultStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME

    def load(self) -> PermanentFault | None:
        """The recorded fault, None when there is none; FaultStoreError when unreadable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise FaultStoreError(f"{self.path}: cannot read: {err.strerror}") from err
        try:
            data = json.loads(text)
            return PermanentFault(FaultKind(data["kind"]), str(data["at"]))
        except (ValueError, KeyError, TypeError) as err:
            raise FaultStoreError(f"{self.path}: not a fault record: {err}") from err

    def save(self, fault: PermanentFault) -> None:
        body = json.dumps({"kind": fault.kind.value, "at": fault.at}) + "\n"
        temporary = self.path.with_suffix(".tmp")
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            _fsync_dir(self.path.parent)
        except OSError as err:
            raise FaultStoreError(f"{self.path}: cannot write: {err.strerror}") from err

    def clear(self) -> bool:
        """Remove the record; True when there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(self.path.parent)
        return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
