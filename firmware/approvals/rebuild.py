"""Rebuilding the installed list's index out of the daemon's process: both sides.

Reading a large list in full (base64 and JSON over 100 MB and more, into SQLite) takes
seconds of work in the interpreter; the daemon's other threads must not wait on it. So the
daemon (``rebuild_index``) runs ``python -m firmware.approvals.index`` (``main``) as a child
and waits for it in the calling thread, which is already a worker thread. The child gets the
keys the daemon holds in memory (a pipe each, named ``/dev/fd/N``), not the files they came
from, so it verifies exactly as the daemon would even if a file changed since. It reads the
installed file in chunks and verifies it (``installed_file.decode``,
``jws.verify_es256_prehashed``), checks its service area, builds its index
(``index.build_from_payload``) and removes the stale ones, all under the install lock
(``install_lock``), as an install does (``rebuild_locked``, which an install holding the
lock calls directly).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from firmware.approvals import ApprovalError
from firmware.approvals.fast_list import ListHeader
from firmware.approvals.index import (
    ApprovalIndexError,
    Binding,
    build_from_payload,
    file_id,
    remove_stale,
)
from firmware.approvals.install_lock import LOCK_NAME, install_lock
from firmware.approvals.installed_file import FILE_NAME, decode
from firmware.approvals.jws import UtilityKey, load_utility_keys
from firmware.approvals.view import service_area_problem

# far above the 2,000,000-entry bench (bench/approvals.py, seconds on a laptop core):
# a list at the size limit on the reference board's slower cores must still finish
REBUILD_TIMEOUT_S = 600.0


def rebuild_index(
    state_dir: Path,
    keys: Sequence[UtilityKey],
    service_area: str,
    timeout_s: float = REBUILD_TIMEOUT_S,
) -> bytes:
    """Rebuild the index of ``<state_dir>/approvals.jws`` in a child process; the binding
    hash of the file it indexed (it may have changed since the caller hashed it).
    ApprovalIndexError with the child's one-line reason if it refused or failed."""
    command = [sys.executable, "-m", "firmware.approvals.index", "--state-dir", str(state_dir),
               "--service-area", service_area]  # fmt: skip
    pipes: list[int] = []
    try:
        for key in keys:
            pipes.append(key_pipe(key))
            command += ["--key", f"/dev/fd/{pipes[-1]}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              pass_fds=pipes, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as err:
        raise ApprovalIndexError(f"index rebuild gave up after {timeout_s:g} s") from err
    except OSError as err:
        raise ApprovalIndexError(f"index rebuild could not start: {err.strerror}") from err
    finally:
        for fd in pipes:
            os.close(fd)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
        raise ApprovalIndexError(lines[-1])
    try:
        return bytes.fromhex(done.stdout.strip())
    except ValueError as err:
        raise ApprovalIndexError(f"index rebuild said {done.stdout.strip()!r}") from err


def key_pipe(key: UtilityKey) -> int:
    """The read end of a pipe holding ``key`` as PEM (a few hundred bytes: it fits the pipe's
    buffer, so the write does not wait for the child)."""
    from cryptography.hazmat.primitives import serialization

    pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, pem)
    except OSError:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end


def main(argv: Sequence[str] | None = None) -> int:
    """The child's side of a rebuild: verify the installed file in full with ``--key``, check
    its service area, build its index; the binding hash on stdout, or exit 2 with the
    one-line reason on stderr."""
    parser = argparse.ArgumentParser(prog="python -m firmware.approvals.index")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--service-area", required=True)
    parser.add_argument("--key", required=True, action="append", type=Path, metavar="PEM")
    args = parser.parse_args(argv)
    try:
        jws_sha256 = _rebuild(args.state_dir, load_utility_keys(args.key), args.service_area)
    except ApprovalError as err:
        print(err, file=sys.stderr)
        return 2
    print(jws_sha256.hex())
    return 0


def _rebuild(state_dir: Path, keys: Sequence[UtilityKey], service_area: str) -> bytes:
    # under the install lock: an install between the read and remove_stale would otherwise
    # have its new index removed as stale
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(install_lock(state_dir))
        except OSError as err:
            lock = state_dir / LOCK_NAME
            raise ApprovalIndexError(f"{lock}: cannot lock: {err.strerror}") from err
        return rebuild_locked(state_dir, keys, service_area)


def rebuild_locked(state_dir: Path, keys: Sequence[UtilityKey], service_area: str) -> bytes:
    """The rebuild itself, by a caller that holds the install lock; the binding hash of the
    file it indexed."""
    path = state_dir / FILE_NAME
    try:
        decoded = decode(path)
        identity = file_id(os.stat(path))  # under the lock nobody renames a file in
    except OSError as err:
        raise ApprovalIndexError(f"{path}: cannot read: {err.strerror}") from err
    scanned = decoded.scanned
    scanned.verify(keys)

    def here(header: ListHeader) -> None:
        problem = service_area_problem(header.service_area, service_area)
        if problem is not None:
            raise ApprovalIndexError(problem)

    binding = Binding(identity, scanned.signing_sha256, scanned.header, scanned.signature)
    _, built = build_from_payload(state_dir, decoded.payload, scanned.file_sha256,
                                  decoded.payload_sha256, binding, here)  # fmt: skip
    try:
        built.commit()
    finally:
        built.discard()
    remove_stale(state_dir, scanned.file_sha256)
    return scanned.file_sha256
