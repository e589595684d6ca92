"""The harnesses write configs with ``hil.firmware_process.toml_dumps`` (tomli-w): every shape our
configs have (tables, sub-tables, arrays of tables, nested arrays, floats, booleans) must come
back the same through tomllib, the reader the firmware uses."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from hil.firmware_process import toml_dumps

REPO_ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((REPO_ROOT / "config").glob("*.toml")) + sorted(
    (REPO_ROOT / "hil" / "scenarios").glob("*.toml")
)


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_the_repositorys_toml_round_trips(path: Path) -> None:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert tomllib.loads(toml_dumps(data)) == data


def test_a_harness_config_round_trips() -> None:
    """What the tests merge into a config: an absolute path, a sub-table, a list of keys, a
    float, an array of tables with a curve of pairs."""
    data: dict[str, Any] = {
        "hal": {"backend": "mock", "mock": {"rig_link": "/tmp/x y/rig", "noise_mv": 0.5}},
        "paths": {"state_dir": 'C:\\state "quoted"'},
        "sep2": {"enabled": False, "port": 0},
        "approvals": {"utility_keys": ["/a.pem", "/b.pem"]},
        "site": {
            "max_w": 7200,
            "functions": [
                {"mode": "volt-var", "curve": [[92, 44], [98, 0], [102, 0], [108, -44]]},
                {"mode": "fixed-w", "percent": 50},
            ],
        },
    }
    assert tomllib.loads(toml_dumps(data)) == data
