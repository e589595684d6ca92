"""Fixtures that start the real daemon (``python -m firmware run``) on the mock board and
open its virtual rig over the pseudo-terminal with pyserial, as a HIL test engineer would."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.firmware_process import Daemon, toml_dumps
from hil.plc.netns import NetnsUnavailable, Topology
from hil.rig import Rig, wait_for_rig

# Contact protection is lowered so that tests can close the contactor more than once.
BASE_CONFIG: dict[str, Any] = {
    "hal": {
        "backend": "mock",
        "mock": {"relay_delay_ms": 10, "deadman_timeout_ms": 100, "noise_mv": 15},
    },
    "charger": {"max_current_a": 32, "ventilation": False, "sample_rate_hz": 200},
    "contactor": {"min_close_interval_ms": 200, "discharge_min_close_interval_ms": 200},
    "j3072": {"hold_s": 1.0, "follow_s": 2.0},
    "log": {"level": "info"},
}


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


class Running:
    """A started daemon and its rig."""

    def __init__(self, daemon: Daemon, rig: Rig, rig_link: Path) -> None:
        self.daemon = daemon
        self.rig = rig
        self.rig_link = rig_link

    def stop(self) -> int:
        self.rig.close()
        return self.daemon.stop()


StartDaemon = Callable[..., Running]


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    started: list[Running] = []

    def start(**overrides: Any) -> Running:
        index = len(started)
        rig_link = tmp_path / f"rig{index}"
        config = merged(BASE_CONFIG, overrides)
        config["hal"]["mock"]["rig_link"] = str(rig_link)
        config.setdefault("paths", {}).setdefault("state_dir", str(tmp_path / f"state{index}"))
        path = tmp_path / f"config{index}.toml"
        path.write_text(toml_dumps(config))
        daemon = Daemon(path)
        daemon.wait_for("gatekeeper.ready", timeout_s=20)
        running = Running(daemon, wait_for_rig(str(rig_link)), rig_link)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.daemon.proc.poll() is None:
            assert running.stop() == 0, "the daemon must exit 0 on SIGTERM"


@pytest.fixture
def topology() -> Iterator[Topology]:
    """EVSE <-veth-> mock modem <-veth-> PEV in network namespaces; skipped with the
    kernel's reason where namespaces or veth are refused."""
    try:
        with Topology() as made:
            yield made
    except NetnsUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture
def gatekeeper(start_daemon: StartDaemon) -> Running:
    """A daemon with the base config."""
    return start_daemon()


def charge(rig: Rig) -> int:
    """Plug in, request charge, and return how long the contactor took to close (us)."""
    rig.command("EV:STATE B")
    rig.wait_duty(1, 99, 1000)
    rig.command("EV:STATE C")
    return rig.wait_relay("MAIN", "CLOSED", 3000)
