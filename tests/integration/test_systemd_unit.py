"""The service unit as systemd judges it (verify, offline security exposure <= 2.5), the
directives the unit must carry, and the install script staged into a temporary root."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from firmware.daemon.config import load_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "evse-gatekeeper.service"
needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def check_unit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_unit", REPO / "systemd" / "check_unit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


@needs_systemd
def test_the_unit_verifies_and_its_exposure_is_at_most_2_5(
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = check_unit()
    assert module.main() == 0
    printed = capsys.readouterr().out
    assert "verify evse-gatekeeper.service: ok" in printed
    assert module.exposure(UNIT) <= 2.5, printed


@needs_systemd
def test_the_check_fails_a_unit_without_its_hardening(tmp_path: Path) -> None:
    kept = [ln for ln in UNIT.read_text().splitlines()
            if not ln.startswith(("Protect", "Restrict", "SystemCall", "Capability", "Private",
                                  "NoNewPrivileges", "MemoryDeny", "DevicePolicy"))]  # fmt: skip
    weak = tmp_path / "evse-gatekeeper.service"
    weak.write_text("\n".join(kept) + "\n")
    assert check_unit().exposure(weak) > 2.5


def test_the_unit_says_what_the_issue_requires() -> None:
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] and d["Restart"] == ["on-failure"]
    assert d["User"] == ["evse-gatekeeper"] and d["SupplementaryGroups"] == ["gpio spi dialout"]
    assert d["CapabilityBoundingSet"] == ["CAP_NET_RAW CAP_NET_ADMIN"]
    assert d["AmbientCapabilities"] == ["CAP_NET_RAW CAP_NET_ADMIN"]
    for key, value in (("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                       ("DevicePolicy", "closed"), ("StateDirectory", "evse-gatekeeper"),
                       ("SystemCallFilter", "@system-service")):  # fmt: skip
        assert value in d[key], key
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET6 AF_INET AF_NETLINK AF_PACKET"]
    board = load_config(REPO / "config" / "reference-board.toml")
    rpi, meter = board.board.rpi, board.meter
    adc = f"/dev/spidev{rpi.spi_bus}.{rpi.spi_device} rw"  # CE1: the QCA7000 takes CE0
    assert adc in d["DeviceAllow"], "the ADC, where the reference board's config puts it"
    assert f"{meter.port} rw" in d["DeviceAllow"], "the energy meter's RS-485 port"


def test_the_unit_grants_real_time_by_limits_not_by_a_capability() -> None:
    """The safety process's SCHED_FIFO and locked memory come from RLIMIT_RTPRIO and
    RLIMIT_MEMLOCK (no CAP_SYS_NICE, no CAP_IPC_LOCK); SIGTERM goes to the gatekeeper alone,
    which stops the safety process in order."""
    d = directives(UNIT.read_text())
    assert d["LimitRTPRIO"] == ["50"] and d["LimitMEMLOCK"] == ["64M"] and d["Nice"] == ["-10"]
    assert d["LimitNOFILE"] == ["1024"], "a bounded descriptor budget the server stays under"
    assert d["KillMode"] == ["mixed"] and d["RestrictRealtime"] == ["no"]
    assert "CAP_SYS_NICE" not in d["CapabilityBoundingSet"][0]
    assert "CAP_IPC_LOCK" not in d["CapabilityBoundingSet"][0]
    assert d["SystemCallFilter"][-1] == "sched_setscheduler sched_getscheduler setpriority"


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(REPO / "systemd" / "install.sh"), *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_install_stages_the_files_and_uninstall_keeps_the_records(tmp_path: Path) -> None:
    root = tmp_path / "root"
    done = install("--root", str(root))
    assert done.returncode == 0, done.stderr
    config = root / "etc/evse-gatekeeper/config.toml"
    unit = root / "etc/systemd/system/evse-gatekeeper.service"
    assert config.read_text() == (REPO / "config/reference-board.toml").read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert oct(config.parent.stat().st_mode & 0o777) == "0o750"
    assert unit.read_text() == UNIT.read_text()
    config.write_text(config.read_text() + "# the site's own edit\n")
    assert install("--root", str(root)).returncode == 0
    assert config.read_text().endswith("# the site's own edit\n"), "never overwritten"
    done = install("--root", str(root), "--uninstall")
    assert done.returncode == 0 and not unit.exists() and config.exists()
    assert "kept" in done.stdout
    assert install("--bogus").returncode == 2
