"""Durable replacement of a file in the state directory: the helpers an install, an index
build and the held J3072 violation share. A rename is durable only once the directory entry
is on disk (POSIX rename(2), fsync(2)), so the directory is fsynced after it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
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


def replace_durably(
    path: Path,
    temporary: Path,
    data: bytes,
    mode: int,
    *,
    exclusive: bool = False,
    prepare: Callable[[int], None] = lambda fd: None,
) -> None:
    """Write ``data`` to ``temporary`` (created with ``mode``; ``exclusive``: it must not
    exist yet), fsync it, rename it over ``path`` and fsync the directory. ``prepare`` gets
    the new file's descriptor before the write (to hand it over, say). OSError when a step
    fails, and then the temporary is gone: ``path`` holds the old bytes or the new ones."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        fd = os.open(temporary, flags, mode)
        try:
            prepare(fd)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except OSError:
        discard(temporary)
        raise
