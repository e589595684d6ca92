"""The gatekeeper imports a library only when its config uses it: each of these costs the board
megabytes of memory (pyroute2 and the unittest it pulls in, cryptography, aiohttp, lxml,
zeroconf, importlib.metadata). Each probe runs in a fresh interpreter and lists sys.modules."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ("pyroute2", "zeroconf", "aiohttp", "lxml", "cryptography", "importlib.metadata",
            "unittest")  # fmt: skip


def modules_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    return set(done.stdout.split())


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m in names or m.startswith(tuple(n + "." for n in names)))


def test_the_daemon_before_its_config_is_read_imports_no_optional_library() -> None:
    """``run`` imports these before it knows whether 2030.5, approvals, a Linux bridge or
    discovery are configured: none of their libraries may come with them."""
    modules = modules_after("import firmware.daemon.cli, firmware.daemon.app")
    assert loaded(modules, OPTIONAL) == []


def test_status_and_sessions_import_no_event_loop_tls_or_crypto() -> None:
    modules = modules_after(
        "import firmware.daemon.cli, firmware.daemon.config, firmware.daemon.control_socket"
    )
    assert loaded(modules, (*OPTIONAL, "asyncio", "ssl", "sqlite3", "statemachine")) == []


def test_the_mock_bridge_opens_and_closes_without_pyroute2() -> None:
    modules = modules_after(
        "import ipaddress\n"
        "from firmware.net.bridge import MockBridge\n"
        "gate = MockBridge('plc0', 'site0', ipaddress.IPv6Network('fd00:1:2:3::/64'))\n"
        "gate.open('session'); gate.close('done')"
    )
    assert "firmware.net.bridge" in modules
    assert loaded(modules, ("pyroute2",)) == []


def test_the_2030_5_service_imports_zeroconf_only_for_discovery() -> None:
    modules = modules_after("import firmware.sep2.service")
    assert "aiohttp" in modules
    assert loaded(modules, ("zeroconf",)) == []


def test_the_j3072_gate_and_the_approval_store_import_neither_lxml_nor_cryptography() -> None:
    """With 2030.5 off and no utility key the gate still runs (every vehicle denied): the
    2030.5 models without XML, the approval store without a key to verify with."""
    modules = modules_after(
        "import firmware.j3072.gate, firmware.sep2.store, firmware.approvals.store, "
        "firmware.approvals.watch"
    )
    assert loaded(modules, ("lxml", "cryptography")) == []


def test_the_refresher_loads_aiohttp_only_when_it_fetches() -> None:
    """A daemon with ``[approvals] url`` imports the refresher; the HTTP client comes with the
    first fetch, and a daemon without a URL imports neither."""
    modules = modules_after("import firmware.approvals.refresh, firmware.approvals.watch")
    assert loaded(modules, ("aiohttp",)) == []
