"""``evse-gatekeeper faults show|clear`` on real files: a state directory or a record that cannot
be used is refused with exactly one line on stderr and exit 1, never a traceback."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from hil.firmware_process import toml_dumps

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RECORD = b'{"kind": "main_welded", "at": "2026-11-22T03:00:00+00:00"}\n'


@pytest.fixture
def root() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's own lives under a 0700 one)."""
    directory = Path(tempfile.mkdtemp(prefix="faults-cli-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        for parent, children, _ in os.walk(directory):
            for child in children:  # a test's mode 000 directory, before walking into it
                os.chmod(os.path.join(parent, child), 0o755)
        shutil.rmtree(directory)


def config_for(root: Path, state_dir: Path) -> Path:
    config = root / "faults.toml"
    config.write_text(toml_dumps({"paths": {"state_dir": str(state_dir)}}))
    config.chmod(0o644)
    return config


def faults(
    action: str, config: Path, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "firmware", "faults", action, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def assert_refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("evse-gatekeeper: faults: "), lines
    for word in words:
        assert word in lines[0]


def assert_ok(result: subprocess.CompletedProcess[str], stdout: str) -> None:
    assert (result.returncode, result.stdout, result.stderr) == (0, stdout, "")


def test_no_state_dir_is_no_fault_and_show_does_not_create_it(root: Path) -> None:
    state_dir = root / "state"
    config = config_for(root, state_dir)
    assert_ok(faults("show", config), "none\n")
    assert_ok(faults("clear", config), "no permanent fault recorded\n")
    assert not state_dir.exists()


@pytest.mark.parametrize("under", [False, True], ids=["a file", "under a file"])
def test_a_state_dir_that_is_a_file_is_refused(root: Path, under: bool) -> None:
    (root / "file").write_text("")
    config = config_for(root, root / "file" / "state" if under else root / "file")
    for action in ("show", "clear"):
        assert_refused(faults(action, config), "Not a directory")


def test_a_record_that_is_not_utf8_is_shown_as_a_fault_and_cleared(root: Path) -> None:
    state_dir = root / "state"
    state_dir.mkdir()
    (state_dir / "inoperative.json").write_bytes(b'{"kind": "\xff"}')
    config = config_for(root, state_dir)
    assert_refused(faults("show", config), "inoperative.json", "not valid UTF-8")
    assert_ok(faults("clear", config), "cleared unreadable record\n")
    assert_ok(faults("show", config), "none\n")


@pytest.mark.parametrize(
    ("name", "content"),
    [("inoperative.tmp", b""), ("inoperative.reserve", RECORD + bytes(4096 - len(RECORD)))],
)
def test_a_leftover_of_an_interrupted_save_is_a_fault(
    root: Path, name: str, content: bytes
) -> None:
    state_dir = root / "state"
    state_dir.mkdir()
    (state_dir / name).write_bytes(content)
    config = config_for(root, state_dir)
    assert_refused(faults("show", config), name, "interrupted save")
    assert_ok(faults("clear", config), "cleared unreadable record\n")
    assert_ok(faults("show", config), "none\n")
    assert list(state_dir.iterdir()) == []


def test_an_unused_reserve_is_no_fault(root: Path) -> None:
    state_dir = root / "state"
    state_dir.mkdir()
    (state_dir / "inoperative.reserve").write_bytes(bytes(4096))
    assert_ok(faults("show", config_for(root, state_dir)), "none\n")


def _probe(prefix: list[str], root: Path) -> str | None:
    """None when the command runs our interpreter and the kernel refuses it a mode 000
    directory; otherwise why not."""
    closed = root / "probe"
    closed.mkdir(mode=0)
    try:
        run = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-c",
                "import firmware, os, sys; os.listdir(sys.argv[1])",
                str(closed),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )
    finally:
        closed.rmdir()
    if "PermissionError" in run.stderr:
        return None
    return (run.stderr.strip().splitlines() or ["permissions not enforced"])[-1]


@pytest.fixture
def unprivileged(root: Path) -> list[str]:
    """A command prefix under which file permissions apply: nobody, or else root without the
    capabilities that override them."""
    if os.geteuid() != 0:
        return [] if _probe([], root) is None else pytest.skip("permissions not enforced")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    nobody = pwd.getpwnam("nobody")
    no_dac = "-dac_override,-dac_read_search"
    candidates = {
        "nobody": [
            "setpriv",
            f"--reuid={nobody.pw_uid}",
            f"--regid={nobody.pw_gid}",
            "--clear-groups",
        ],
        "root without CAP_DAC_*": ["setpriv", f"--bounding-set={no_dac}", f"--inh-caps={no_dac}"],
    }
    reasons = []
    for name, prefix in candidates.items():
        reason = _probe(prefix, root)
        if reason is None:
            return prefix
        reasons.append(f"{name}: {reason}")
    pytest.skip("; ".join(reasons))


def test_a_state_dir_without_permission_is_refused(root: Path, unprivileged: list[str]) -> None:
    state_dir = root / "state"
    state_dir.mkdir()
    (state_dir / "inoperative.json").write_bytes(RECORD)
    state_dir.chmod(0)
    config = config_for(root, state_dir)
    for action in ("show", "clear"):
        assert_refused(faults(action, config, unprivileged), "Permission denied")
    state_dir.chmod(0o755)
    assert (state_dir / "inoperative.json").read_bytes() == RECORD


def test_a_record_without_permission_is_refused(root: Path, unprivileged: list[str]) -> None:
    state_dir = root / "state"
    state_dir.mkdir()
    (state_dir / "inoperative.json").write_bytes(RECORD)
    (state_dir / "inoperative.json").chmod(0)
    state_dir.chmod(0o555)  # nor may the record be removed
    config = config_for(root, state_dir)
    assert_refused(faults("show", config, unprivileged), "inoperative.json", "Permission denied")
    assert_refused(faults("clear", config, unprivileged), "Permission denied")
    assert (state_dir / "inoperative.json").exists()
