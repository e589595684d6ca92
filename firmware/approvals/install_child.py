"""Installing a downloaded list out of the daemon's process: both sides.

The install (``ApprovalStore.install``, the very checks and atomic write of ``approvals
install`` and ``approvals fetch``) verifies and parses the whole list, which holds the GIL for
seconds on a large one; the daemon's loop must keep turning meanwhile. So the refresher
(``install``) runs ``python -m firmware.approvals.install_child`` (``main``) and awaits it
without blocking the loop. As for an index rebuild (``rebuild``), the child gets the keys the
daemon holds in memory through pipes, not the files they came from. The daemon's watch then
sees the new file and verifies it again its own way, as after any install.

The child answers on stdout with one JSON object (what it installed, and whether it wrote
anything: the same payload again writes nothing) or exits 2 (refused) or 1 (could not read
or write) with the one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from firmware.approvals import ApprovalError
from firmware.approvals.jws import UtilityKey
from firmware.approvals.rebuild import REBUILD_TIMEOUT_S, key_pipe
from firmware.approvals.view import rfc3339

REFUSED_EXIT = 2


class InstallRefused(ApprovalError):
    """Raised when the store refused the downloaded list (its one-line reason)."""


class InstallFailed(ApprovalError):
    """Raised when the install could not run or finish: the child did not start, timed out,
    crashed, or could not read or write the state directory."""


@dataclass(frozen=True, slots=True)
class Installed:
    version: int
    issuer: str
    service_area: str
    expires_at: str  # RFC 3339
    entries: int
    changed: bool  # False: exactly this list was installed already


async def install(
    download: Path,
    state_dir: Path,
    keys: Sequence[UtilityKey],
    service_area: str,
    timeout_s: float = REBUILD_TIMEOUT_S,
) -> Installed:
    """Install ``download`` into ``state_dir`` in a child process; what it installed."""
    command = [sys.executable, "-m", "firmware.approvals.install_child", str(download),
               "--state-dir", str(state_dir), "--service-area", service_area]  # fmt: skip
    pipes: list[int] = []
    try:
        for key in keys:
            pipes.append(key_pipe(key))
            command += ["--key", f"/dev/fd/{pipes[-1]}"]
        child = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, pass_fds=pipes,
        )  # fmt: skip
    except OSError as err:
        raise InstallFailed(f"install could not start: {err.strerror}") from err
    finally:
        for fd in pipes:
            os.close(fd)
    try:
        out, errors = await asyncio.wait_for(child.communicate(), timeout_s)
    except TimeoutError:
        raise InstallFailed(f"install gave up after {timeout_s:g} s") from None
    finally:
        if child.returncode is None:  # timed out, or the refresher was cancelled
            child.kill()
            await child.wait()
    return _answer(child.returncode, out.decode(errors="replace"), errors.decode(errors="replace"))


def _answer(code: int | None, out: str, err: str) -> Installed:
    reason = (err.strip().splitlines() or [f"exit code {code}"])[-1]
    if code == REFUSED_EXIT:
        raise InstallRefused(reason)
    if code != 0:
        raise InstallFailed(reason)
    try:
        return Installed(**json.loads(out))
    except (ValueError, TypeError) as error:
        raise InstallFailed(f"install said {out.strip()[:80]!r}") from error


def main(argv: Sequence[str] | None = None) -> int:
    """The child's side: ``ApprovalStore.install`` of FILE; JSON on stdout, or the exit code
    and the one-line reason on stderr."""
    from firmware.approvals.jws import load_utility_keys
    from firmware.approvals.store import ApprovalStore, ApprovalStoreError

    parser = argparse.ArgumentParser(prog="python -m firmware.approvals.install_child")
    parser.add_argument("file", type=Path)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--service-area", required=True)
    parser.add_argument("--key", required=True, action="append", type=Path, metavar="PEM")
    args = parser.parse_args(argv)
    logging.getLogger("firmware.approvals").addHandler(logging.NullHandler())  # stderr: ours
    try:
        args.file.open("rb").close()  # read in chunks by the install
        store = ApprovalStore(args.state_dir, load_utility_keys(args.key), args.service_area)
        before = _identity(store.path)
        installed = store.install(args.file)
    except OSError as error:
        print(f"{args.file}: cannot read: {error.strerror}", file=sys.stderr)
        return 1
    except ApprovalStoreError as error:
        print(error, file=sys.stderr)
        return 1
    except ApprovalError as error:
        print(error, file=sys.stderr)
        return REFUSED_EXIT
    answer = Installed(installed.version, installed.issuer, installed.service_area,
                       rfc3339(installed.expires_at), len(installed.entries),
                       _identity(store.path) != before)  # fmt: skip
    print(json.dumps(asdict(answer)))
    return 0


def _identity(path: Path) -> tuple[int, int] | None:
    """The installed file's inode and mtime: an install that writes renames a new file in."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns)


if __name__ == "__main__":
    sys.exit(main())
