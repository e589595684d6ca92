"""Who owns the files created in the state directory: the owner of the directory itself.

The daemon runs as the service's own user, and the state directory belongs to that user
(the unit's ``StateDirectory=``, ``systemd/install.sh``). An operator or an installer often
runs ``evse-gatekeeper approvals install`` as root; a file root creates there would be
root's, and the daemon could no longer write it (a journal it cannot write denies every
grant). So whoever runs as root hands each file it creates in the state directory over to
the directory's owner and group, before the file is renamed into place or used; any other
user creates files as itself, which is the directory's owner whenever it may write there.

This module only changes owners; it creates and removes nothing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def state_owner(state_dir: Path) -> tuple[int, int] | None:
    """The (uid, gid) that files created in ``state_dir`` must have, when that is not what
    this process gives them by itself: only when running as root. OSError if the directory
    cannot be examined."""
    if os.geteuid() != 0:
        return None
    stat = os.stat(state_dir)
    return stat.st_uid, stat.st_gid


def hand_over(target: int | Path, state_dir: Path) -> None:
    """Give the open file ``target`` (a descriptor) or the file at ``target`` to the state
    directory's owner, if it is not theirs yet (OSError as chown raises it)."""
    owner = state_owner(state_dir)
    if owner is None:
        return
    stat = os.stat(target, follow_symlinks=False) if isinstance(target, Path) else os.fstat(target)
    if (stat.st_uid, stat.st_gid) == owner:
        return
    if isinstance(target, Path):
        os.chown(target, *owner, follow_symlinks=False)
    else:
        os.fchown(target, *owner)


def hand_over_if_present(paths: tuple[Path, ...], state_dir: Path) -> None:
    """``hand_over`` each of ``paths`` that exists (SQLite's side files come and go)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            hand_over(path, state_dir)
