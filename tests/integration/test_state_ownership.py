"""Who may do what in the state directory: the CLI run as root (as an installer runs it)
leaves every file it creates to the directory's owner, the service's user, which can then
write the journal and take the install lock; the read-only commands work for an operator who
cannot write the state directory at all.

The other users run in a forked child that drops root with setgid/setuid (this interpreter
lives where other users cannot read, so it cannot be started again as one of them): the
modules it uses are imported before the fork, by the same commands run once as root.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware.approvals.install_lock import install_lock
from firmware.daemon import cli
from firmware.journal.store import FILE_NAME, Journal
from hil.firmware_process import toml_dumps
from hil.utility import keygen, load_key, signed_list

pytestmark = pytest.mark.integration

AREA = "MOCK-UTILITY-NORTH"
SERVICE = (65534, 65534)  # nobody, nogroup: the service's user for these tests
OPERATOR = (65533, 65533)  # an operator with no rights on the state directory

if os.geteuid() != 0:
    pytest.skip("needs root: it changes owners and runs as other users", allow_module_level=True)


def as_user(uid_gid: tuple[int, int], work: Callable[[], int]) -> tuple[int, str, str]:
    """Run ``work`` in a forked child as ``uid_gid``; (its result, stdout, stderr)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code, out, err = 99, io.StringIO(), io.StringIO()
        try:
            os.setgroups([])
            os.setgid(uid_gid[1])
            os.setuid(uid_gid[0])
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = work()
        except BaseException as failure:  # reported to the parent, which fails the test
            err.write(f"child failed: {failure!r}")
        finally:
            os.write(write_end, json.dumps([code, out.getvalue(), err.getvalue()]).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    code, out, err = json.loads(data)
    return code, out, err


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user can traverse (pytest's own tmp_path is root's alone)."""
    made = Path(tempfile.mkdtemp(prefix="evgk-owner-", dir="/tmp"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made)


def _site(base: Path, state: Path) -> Path:
    key, public = keygen(base / "keys")
    (base / "keys").chmod(0o755)
    config = base / "config.toml"
    settings = {"paths": {"state_dir": str(state)}, "site": {"service_area": AREA},
                "approvals": {"utility_keys": [str(public)]}}  # fmt: skip
    config.write_text(toml_dumps(settings))
    for version in (1, 2):
        listed = signed_list(load_key(key), service_area=AREA, version=version,
                             approve={"ISM-1": 7200})  # fmt: skip
        (base / f"v{version}.jws").write_text(listed + "\n")
    return config


def _cli_as_root(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware", *argv], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def test_files_the_root_cli_creates_belong_to_the_state_directory_owner(base: Path) -> None:
    state = base / "state"
    state.mkdir(mode=0o750)
    os.chown(state, *SERVICE)
    config = _site(base, state)
    for version in (1, 2):
        done = _cli_as_root("approvals", "install", str(base / f"v{version}.jws"),
                            "--config", str(config))  # fmt: skip
        assert done.returncode == 0 and done.stderr == "", done
    created = sorted(state.iterdir())
    assert {p.name for p in created} >= {"approvals.jws", "approvals.lock", FILE_NAME}
    owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in created}
    assert set(owners.values()) == {SERVICE}, owners

    def daemon_writes() -> int:  # what the daemon, as the service's user, must be able to do
        with Journal(state / FILE_NAME) as journal:
            journal.record_fault(None, "test", "the service's user writes its journal")
        with install_lock(state) as held:
            return 0 if held else 1

    code, _, err = as_user(SERVICE, daemon_writes)
    assert (code, err) == (0, ""), err


def test_read_only_commands_work_on_a_read_only_state_directory(base: Path) -> None:
    state = base / "state"
    state.mkdir(mode=0o755)
    config = _site(base, state)
    done = _cli_as_root("approvals", "install", str(base / "v2.jws"), "--config", str(config))
    assert done.returncode == 0, done
    with Journal(state / FILE_NAME) as journal:
        journal.open_session(None, ev_mac="02:00:00:00:00:01")
    state.chmod(0o555)
    for path in state.iterdir():
        path.chmod(0o444)
    listing = sorted(p.name for p in state.iterdir())
    commands = (
        (["sessions", "--json"], 0, '"ev_mac": "02:00:00:00:00:01"'),
        (["approvals", "show"], 0, "version=2"),
        (["approvals", "check", "ISM-1"], 0, "approved"),
    )
    try:
        for argv, expected, shown in commands:
            full = [*argv, "--config", str(config)]
            with contextlib.redirect_stdout(io.StringIO()):
                cli.main(full)  # as root first: imports what the child needs, creates nothing
            assert sorted(p.name for p in state.iterdir()) == listing, argv
            code, out, err = as_user(OPERATOR, lambda full=full: cli.main(full))  # type: ignore[misc]
            assert (code, err) == (expected, ""), (argv, out, err)
            assert shown in out, (argv, out)
        assert sorted(p.name for p in state.iterdir()) == listing
    finally:
        state.chmod(0o755)
