"""Synchronized once since boot: kept in the state directory under the kernel's boot id, so
a daemon restarted within the same boot still knows, and a reboot starts over.

The file holds the boot id (``/proc/sys/kernel/random/boot_id``) of the boot in which the
clock was seen synchronized. It is written durably once per boot; a file that cannot be read
or names another boot means not yet (default deny).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from firmware.approvals.durable import replace_durably
from firmware.logs import log_event

logger = logging.getLogger(__name__)

FILE_NAME = "clock-synchronized"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MAX_BYTES = 64


def kernel_boot_id() -> str:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""  # no boot id: the latch is kept for this run only


class BootLatch:
    def __init__(self, state_dir: Path, boot_id: Callable[[], str] = kernel_boot_id) -> None:
        self.path = state_dir / FILE_NAME
        self._boot_id = boot_id()

    def load(self) -> bool:
        """Whether this boot's clock was seen synchronized by a daemon before this one."""
        if not self._boot_id:
            return False
        try:
            with self.path.open("rb") as f:
                text = f.read(MAX_BYTES).decode("ascii", errors="replace").strip()
        except OSError:
            return False
        return text == self._boot_id

    def save(self) -> None:
        """Durably; a disk that refuses is logged and the latch holds for this run."""
        if not self._boot_id:
            return
        temporary = self.path.with_name(f".{FILE_NAME}.tmp")
        try:
            replace_durably(self.path, temporary, f"{self._boot_id}\n".encode(), 0o644)
        except OSError as err:
            log_event(logger, "clock.latch_unsaved", logging.WARNING, error=err.strerror)
