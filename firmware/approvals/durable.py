"""Durable replacement of a file in the state directory: the helpers an install and an index
build share. A rename is durable only once the directory entry is on disk (POSIX rename(2),
fsync(2)), so the directory is fsynced after it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(temporary: Path) -> None:
    # already renamed, or never created: then there is nothing to clean up
    with contextlib.suppress(OSError):
        temporary.unlink()
