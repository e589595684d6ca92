"""A running gatekeeper loads a library only when its config uses it: with 2030.5 off, no
utility key, discovery off and the mock bridge, none of lxml, cryptography, aiohttp or
zeroconf is mapped into the process (their compiled modules in /proc/<pid>/maps), also after
``status`` was asked. The import side of the same rule: tests/unit/test_import_costs.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import StartDaemon
from tests.integration.discharging import cli

pytestmark = pytest.mark.integration

NOT_CONFIGURED = ("/lxml/", "/cryptography/", "/aiohttp/", "/zeroconf/")


def test_a_gatekeeper_without_2030_5_or_approvals_maps_none_of_their_libraries(
    start_daemon: StartDaemon,
) -> None:
    running = start_daemon(bridge={"backend": "mock", "site_interface": "site0"})
    config = str(running.daemon.config_path)
    assert cli("status", "--json", "--config", config, timeout_s=30).returncode == 0
    maps = Path(f"/proc/{running.daemon.proc.pid}/maps").read_text()
    assert "_sqlite3" in maps, "the probe sees what the gatekeeper maps (its journal)"
    assert [library for library in NOT_CONFIGURED if library in maps] == []
