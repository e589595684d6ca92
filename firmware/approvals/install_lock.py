"""The install lock, ``<state_dir>/approvals.lock``, and the leftovers of installs that died.

Two installs at once must not both pass the version check before either renames its file
into place: the older could then land last and roll the list back while both report
success. So whatever replaces ``approvals.jws`` or builds an index beside it (``store``'s
install, ``rebuild``'s child) holds ``flock(LOCK_EX)`` on this file from before the version
check until after the rename and the removal of the stale indexes. The kernel releases the
lock when its holder dies, even by SIGKILL, so a killed install never blocks the next one.

An install writes its list's temporary file and builds its index before it takes the lock,
each under a name of its own and each locked (``flock``) by the install while it lives. So a
temporary found unlocked is the leftover of a killed install (up to the size of a list):
``remove_leftovers`` removes those, list and index temporaries alike (``index``). An install
does so first thing under the lock; the daemon at start, if no install holds the lock
(one that does cleans up itself).

It owns no list and decides nothing about versions (``store``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from firmware.approvals.index import remove_abandoned, remove_abandoned_temporaries
from firmware.approvals.installed_file import FILE_NAME
from firmware.state_owner import hand_over

logger = logging.getLogger(__name__)

LOCK_NAME = "approvals.lock"
TEMPORARY_SUFFIX = ".tmp"
# ``approvals.jws.<random>.tmp`` since installs are serialized; ``approvals.jws.tmp`` before
TEMPORARY_GLOB = f"{FILE_NAME}*{TEMPORARY_SUFFIX}"


def temporary_name(token: str) -> str:
    """A list's temporary file name, unique per install (``token``: random hex)."""
    return f"{FILE_NAME}.{token}{TEMPORARY_SUFFIX}"


@contextlib.contextmanager
def install_lock(state_dir: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the install lock for the block; yields True once held, or False when ``wait``
    is False and another process holds it. OSError if the lock file cannot be opened."""
    with _open_lock(state_dir) as handle:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(handle.fileno(), flags)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the file releases the lock


def _open_lock(state_dir: Path) -> BinaryIO:
    path = state_dir / LOCK_NAME
    # "a": created if missing, never truncated; the content is never used
    handle = path.open("ab")
    try:
        hand_over(handle.fileno(), state_dir)
    except BaseException:
        handle.close()
        raise
    return handle


def remove_leftovers(state_dir: Path) -> list[Path]:
    """Remove the temporary files of installs and index builds that died; the paths removed.
    The caller holds the install lock."""
    removed = [path for path in sorted(state_dir.glob(TEMPORARY_GLOB))
               if remove_abandoned(path)]  # fmt: skip
    return removed + remove_abandoned_temporaries(state_dir)


def clean_at_start(state_dir: Path) -> list[Path]:
    """The daemon's clean-up at start: the leftovers, unless an install is running (it
    removes them itself). Never raises: a state directory it cannot clean is logged."""
    try:
        with install_lock(state_dir, wait=False) as held:
            removed = remove_leftovers(state_dir) if held else []
    except OSError as err:
        logger.warning("approvals.leftovers_kept dir=%s reason=%s", state_dir, err.strerror)
        return []
    for path in removed:
        logger.info("approvals.leftover_removed path=%s", path)
    return removed
