"""The control socket (firmware/daemon/control_socket.py) on real unix sockets: the server on
an event loop in a background thread, the blocking client and ``evse-gatekeeper status`` in the
test thread."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.daemon.cli import main
from firmware.daemon.control_socket import (
    ControlError,
    ControlServer,
    RequestRefused,
    query,
    render,
    render_current,
    set_limit,
)
from firmware.errors import ConfigError

SNAPSHOT: dict[str, Any] = {
    "firmware": "0.1.0",
    "pilot": "C",
    "charger": "charging",
    "relays": {"main": "closed", "discharge": "open"},
    "plc": {"link": "up", "ev_mac": "02:00:00:00:00:01"},
    "session": {
        "id": 3,
        "plugged_in_at": "2026-03-01T12:00:00Z",
        "lfdi": "0123456789ABCDEF0123456789ABCDEF01234567",
        "ism": "ISM-7",
        "vin": "1HGCM82633A004352",
    },
    "authorization": {
        "state": "denied",
        "limit_w": None,
        "reasons": ["not J3072-certified (mfModel=None)", "no DERSettings"],
    },
    "approvals": {
        "version": 3,
        "issuer": "MOCK-UTILITY",
        "expires_at": "2026-04-01T00:00:00Z",
        "entries": 12,
        "in_force": True,
        "problem": None,
    },
    "faults": ["diode", "rcd"],
    "meter_w": 0.0,
}


class Running:
    """A ControlServer on its own event loop in a background thread."""

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], dict[str, Any]],
        set_limit: Callable[[float | None], Any] | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = ControlServer(path, snapshot, set_limit)
        self.stopped = False

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def start(self) -> Running:
        self.call(self.server.start())
        return self

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.call(self.server.stop())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start(
        path: Path,
        snapshot: Callable[[], dict[str, Any]] = lambda: SNAPSHOT,
        set_limit: Callable[[float | None], Any] | None = None,
    ) -> Running:
        server = Running(path, snapshot, set_limit)
        running.append(server)
        return server.start()

    yield start
    for server in running:
        server.close()


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


def exchange(path: Path, data: bytes) -> dict[str, Any]:
    """Send raw bytes, read the one-line answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(30)
        client.connect(str(path))
        client.sendall(data)
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
    assert answer.endswith(b"\n") and answer.count(b"\n") == 1, answer
    result: dict[str, Any] = json.loads(answer)
    return result


def stale_socket(path: Path) -> None:
    """A socket file with nobody listening: what a crashed daemon leaves behind."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


# --- the server ------------------------------------------------------------------------------


def test_answers_the_snapshot(serve: Callable[..., Running], sock_path: Path) -> None:
    serve(sock_path)
    assert query(sock_path) == SNAPSHOT


def test_the_answer_is_one_sorted_json_line(serve: Callable[..., Running], sock_path: Path) -> None:
    serve(sock_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(sock_path))
        client.sendall(b"status\n")
        answer = client.makefile("rb").read()
    assert answer == (json.dumps(SNAPSHOT, sort_keys=True) + "\n").encode()


def test_each_query_sees_the_current_snapshot(
    serve: Callable[..., Running], sock_path: Path
) -> None:
    state = {"pilot": "A"}
    serve(sock_path, lambda: dict(state))
    assert query(sock_path) == {"pilot": "A"}
    state["pilot"] = "B"
    assert query(sock_path) == {"pilot": "B"}


def test_the_socket_is_mode_0660(serve: Callable[..., Running], sock_path: Path) -> None:
    serve(sock_path)
    mode = os.lstat(sock_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


def test_a_missing_directory_is_made_private_and_left_clean(
    serve: Callable[..., Running], tmp_path: Path
) -> None:
    path = tmp_path / "run" / "control.sock"
    serve(path)
    assert stat.S_IMODE(os.stat(path.parent).st_mode) & 0o007 == 0
    assert os.listdir(path.parent) == ["control.sock"], "no staging directory left behind"
    assert query(path) == SNAPSHOT


def test_a_stale_socket_file_is_replaced(serve: Callable[..., Running], sock_path: Path) -> None:
    stale_socket(sock_path)
    with pytest.raises(ControlError, match="refused"):
        query(sock_path)
    serve(sock_path)
    assert query(sock_path) == SNAPSHOT
    assert stat.S_IMODE(os.lstat(sock_path).st_mode) == 0o660


def test_a_regular_file_at_the_path_is_refused(
    serve: Callable[..., Running], sock_path: Path
) -> None:
    sock_path.write_text("precious\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        serve(sock_path)
    assert info.value.problems == [f"control.socket: {sock_path} exists and is not a socket"]
    assert sock_path.read_text(encoding="utf-8") == "precious\n", "left untouched"


def test_a_live_daemon_is_not_displaced(serve: Callable[..., Running], sock_path: Path) -> None:
    serve(sock_path)
    with pytest.raises(ConfigError, match="another daemon is listening"):
        serve(sock_path, lambda: {"pilot": "impostor"})
    assert query(sock_path) == SNAPSHOT


def test_a_directory_that_cannot_be_made_is_a_config_error(
    serve: Callable[..., Running], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    path = tmp_path / "file" / "control.sock"
    with pytest.raises(ConfigError) as info:
        serve(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"control.socket: cannot listen on {path}: ")


def test_an_unknown_request_gets_an_error_and_the_server_keeps_serving(
    serve: Callable[..., Running], sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    serve(sock_path)
    with caplog.at_level(logging.WARNING, logger="firmware.daemon.control_socket"):
        assert exchange(sock_path, b"reboot\n") == {"error": "unknown request: 'reboot'"}
    assert "control.refused" in caplog.text
    assert query(sock_path) == SNAPSHOT


@pytest.mark.parametrize(
    "data",
    [
        b"x" * 2000 + b"\n",  # a long line
        b"status" + b" " * 1100 + b"\n",  # the right word, padded past the limit
        b"y" * 10_000,  # no newline at all
    ],
)
def test_an_over_long_request_gets_an_error_and_does_not_crash(
    serve: Callable[..., Running], sock_path: Path, data: bytes
) -> None:
    serve(sock_path)
    answer = exchange(sock_path, data)
    assert answer == {"error": "request longer than 1024 bytes"}
    assert query(sock_path) == SNAPSHOT


def test_a_request_cut_short_gets_an_error(serve: Callable[..., Running], sock_path: Path) -> None:
    serve(sock_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(sock_path))
        client.sendall(b"stat")
        client.shutdown(socket.SHUT_WR)
        answer = client.makefile("rb").read()
    assert json.loads(answer) == {"error": "request not terminated by a newline"}
    assert query(sock_path) == SNAPSHOT


def test_a_client_that_hangs_up_at_once_does_not_crash_it(
    serve: Callable[..., Running], sock_path: Path
) -> None:
    serve(sock_path)
    for _ in range(3):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(sock_path))
    assert query(sock_path) == SNAPSHOT


def test_a_silent_client_does_not_block_others(
    serve: Callable[..., Running], sock_path: Path
) -> None:
    serve(sock_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(str(sock_path))
        silent.sendall(b"sta")  # and nothing more while the others are served
        assert query(sock_path) == SNAPSHOT
        assert query(sock_path) == SNAPSHOT


def test_a_failing_snapshot_gets_an_error_and_the_server_keeps_serving(
    serve: Callable[..., Running], sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def snapshot() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("charger not ready")
        return {"pilot": "A"}

    serve(sock_path, snapshot)
    with caplog.at_level(logging.ERROR, logger="firmware.daemon.control_socket"):
        answer = exchange(sock_path, b"status\n")
    assert answer == {"error": "snapshot failed: charger not ready"}
    assert "control.snapshot_failed" in caplog.text
    assert query(sock_path) == {"pilot": "A"}


def test_a_snapshot_that_is_not_json_gets_an_error(
    serve: Callable[..., Running], sock_path: Path
) -> None:
    serve(sock_path, lambda: {"at": object()})
    with pytest.raises(ControlError, match="snapshot failed"):
        query(sock_path)


def test_stop_removes_the_socket_file(serve: Callable[..., Running], sock_path: Path) -> None:
    server = serve(sock_path)
    server.stop()
    assert not os.path.lexists(sock_path)
    with pytest.raises(ControlError, match="no such socket"):
        query(sock_path)


def test_stop_leaves_a_newer_daemons_socket_alone(
    serve: Callable[..., Running], sock_path: Path
) -> None:
    old = serve(sock_path)
    os.unlink(sock_path)
    serve(sock_path, lambda: {"pilot": "B"})
    old.stop()
    assert query(sock_path) == {"pilot": "B"}


# --- the client ------------------------------------------------------------------------------


def _one_line(err: ControlError) -> str:
    message = str(err)
    assert message and "\n" not in message
    return message


def test_query_without_a_daemon_says_so(sock_path: Path) -> None:
    with pytest.raises(ControlError) as info:
        query(sock_path)
    message = _one_line(info.value)
    assert str(sock_path) in message
    assert "no such socket" in message and "daemon running" in message


def test_query_of_a_stale_socket_says_refused(sock_path: Path) -> None:
    stale_socket(sock_path)
    with pytest.raises(ControlError) as info:
        query(sock_path)
    assert "connection refused" in _one_line(info.value)


def _fake_daemon(path: Path, answer: bytes) -> threading.Thread:
    """A one-shot server that answers ``answer`` whatever it is asked."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve_once() -> None:
        with listener, listener.accept()[0] as conn:
            conn.recv(256)
            conn.sendall(answer)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"hello\n", "not JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"error": "unknown request: \'status\'"}\n', "the daemon refused: unknown request"),
        (b"", "closed the connection without an answer"),
    ],
)
def test_query_refuses_a_bad_answer(sock_path: Path, answer: bytes, expected: str) -> None:
    thread = _fake_daemon(sock_path, answer)
    with pytest.raises(ControlError) as info:
        query(sock_path)
    assert expected in _one_line(info.value)
    thread.join(timeout=30)


def test_query_reads_an_answer_without_a_final_newline(sock_path: Path) -> None:
    thread = _fake_daemon(sock_path, b'{"pilot": "A"}')
    assert query(sock_path) == {"pilot": "A"}
    thread.join(timeout=30)


# --- render ----------------------------------------------------------------------------------


def test_render_shows_the_key_facts() -> None:
    text = render(SNAPSHOT)
    lines = text.splitlines()
    assert "pilot:         C" in lines
    assert "charger:       charging" in lines
    assert "relays:        main closed, discharge open" in lines
    assert "plc:           link up, ev_mac 02:00:00:00:00:01" in lines
    assert "authorization: denied, no limit" in lines
    assert "               - not J3072-certified (mfModel=None)" in lines
    assert "               - no DERSettings" in lines
    assert "faults:        diode, rcd" in lines
    for fact in ("0.1.0", "session:       3", "2026-03-01T12:00:00Z", "ISM-7", "1HGCM82633A004352"):
        assert fact in text
    assert "version 3 from MOCK-UTILITY, 12 entries, in force" in text
    assert "expires 2026-04-01T00:00:00Z" in text
    assert "meter:         0.0 W" in lines


def test_render_shows_a_limit_and_an_approval_problem() -> None:
    snapshot = {
        **SNAPSHOT,
        "authorization": {"state": "authorized", "limit_w": 7200, "reasons": []},
        "approvals": {**SNAPSHOT["approvals"], "in_force": False, "problem": "expired"},
        "faults": [],
    }
    text = render(snapshot)
    assert "authorization: authorized, limit 7200 W" in text
    assert "NOT in force" in text
    assert "problem: expired" in text
    assert "faults:        none" in text


def test_render_of_nulls() -> None:
    snapshot = {
        **SNAPSHOT,
        "plc": {"link": "off", "ev_mac": None},
        "session": None,
        "approvals": None,
    }
    text = render(snapshot)
    assert "plc:           link off, ev_mac -" in text
    assert "session:       none" in text
    assert "approvals:     none installed" in text


@pytest.mark.parametrize(
    "snapshot",
    [{}, {"relays": None, "authorization": "odd", "faults": "diode", "approvals": {"x": [1]}}],
)
def test_render_tolerates_a_minimal_snapshot(snapshot: dict[str, Any]) -> None:
    text = render(snapshot)
    assert text.splitlines()[0] == "firmware:      -"
    assert "pilot:         -" in text


# --- limit ----------------------------------------------------------------------------------


class Limits:
    """The daemon's side of ``limit``: records what it was asked, refuses above 32 A."""

    def __init__(self) -> None:
        self.asked: list[float | None] = []
        self.limit_a = 32.0

    async def __call__(self, amps: float | None) -> dict[str, Any]:
        if amps is not None and amps > 32:
            raise RequestRefused(f"{amps:g} A is above the circuit rating 32 A")
        self.asked.append(amps)
        self.limit_a = 32.0 if amps is None else amps
        return {"limit_a": self.limit_a, "rating_a": 32.0, "paused": self.limit_a == 0}


def test_limit_requests_reach_the_daemon_and_answer_what_is_in_force(
    serve: Callable[..., Running], sock_path: Path
) -> None:
    limits = Limits()
    serve(sock_path, set_limit=limits)
    assert set_limit(sock_path, 0) == {"limit_a": 0.0, "rating_a": 32.0, "paused": True}
    assert set_limit(sock_path, 16.5)["limit_a"] == 16.5
    assert set_limit(sock_path, None)["limit_a"] == 32.0
    assert limits.asked == [0.0, 16.5, None]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"limit\n", "limit: expected amps or 'default', got ''"),
        (b"limit sixteen\n", "limit: expected amps or 'default', got 'sixteen'"),
        (b"limit nan\n", "limit: expected a finite number of amps, got 'nan'"),
        (b"limit inf\n", "limit: expected a finite number of amps, got 'inf'"),
        (b"limit 40\n", "limit: 40 A is above the circuit rating 32 A"),
    ],
)
def test_a_bad_or_refused_limit_gets_an_error_and_changes_nothing(
    serve: Callable[..., Running], sock_path: Path, line: bytes, expected: str
) -> None:
    limits = Limits()
    serve(sock_path, set_limit=limits)
    assert exchange(sock_path, line) == {"error": expected}
    assert limits.asked == [] and limits.limit_a == 32.0
    assert query(sock_path) == SNAPSHOT  # still serving


def test_a_server_without_a_limit_callable_does_not_know_the_request(
    serve: Callable[..., Running], sock_path: Path
) -> None:
    serve(sock_path)
    with pytest.raises(ControlError, match="unknown request: 'limit 10'"):
        set_limit(sock_path, 10)


def test_render_current() -> None:
    assert render_current({"limit_a": 16.0, "rating_a": 32.0, "paused": False}) == (
        "current:       offer up to 16 A of 32 A"
    )
    paused = render_current({"limit_a": 0.0, "rating_a": 32.0, "paused": True})
    assert paused.endswith("offer up to 0 A of 32 A (charging paused)")
    assert render_current({}) == "current:       offer up to - of -"


# --- evse-gatekeeper status ------------------------------------------------------------------


def _config(tmp_path: Path, socket_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[control]\nsocket = "{socket_path}"\n', encoding="utf-8")
    return config


def test_cli_status_json(
    serve: Callable[..., Running],
    tmp_path: Path,
    sock_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve(sock_path)
    assert main(["status", "--json", "--config", str(_config(tmp_path, sock_path))]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == SNAPSHOT
    assert out == json.dumps(SNAPSHOT, indent=2, sort_keys=True) + "\n"
    assert err == ""


def test_cli_status_text(
    serve: Callable[..., Running],
    tmp_path: Path,
    sock_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve(sock_path)
    assert main(["status", "--config", str(_config(tmp_path, sock_path))]) == 0
    out, _ = capsys.readouterr()
    assert out == render(SNAPSHOT) + "\n"


def test_cli_status_without_a_daemon(
    tmp_path: Path, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--json", "--config", str(_config(tmp_path, sock_path))]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"evse-gatekeeper: status: {sock_path}: no such socket")


def test_cli_status_with_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[control]\nsocket = ""\n', encoding="utf-8")
    assert main(["status", "--config", str(config)]) == 2
    _, err = capsys.readouterr()
    assert err == "evse-gatekeeper: config: control.socket: must not be empty\n"


def test_cli_limit(
    serve: Callable[..., Running],
    tmp_path: Path,
    sock_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    limits = Limits()
    serve(sock_path, set_limit=limits)
    config = str(_config(tmp_path, sock_path))
    assert main(["limit", "0", "--config", config]) == 0
    assert capsys.readouterr().out == "current:       offer up to 0 A of 32 A (charging paused)\n"
    assert main(["limit", "default", "--config", config]) == 0
    assert main(["limit", "40", "--config", config]) == 1
    out, err = capsys.readouterr()
    assert out == "current:       offer up to 32 A of 32 A\n"  # the default; nothing for 40
    assert err == (
        "evse-gatekeeper: limit: the daemon refused: limit: 40 A is above the circuit rating 32 A\n"
    )
    assert main(["limit", "lots", "--config", config]) == 2
    assert "'lots' is not amps or 'default'" in capsys.readouterr().err
    assert limits.asked == [0.0, None]


def test_render_shows_both_processes() -> None:
    processes = {
        "gatekeeper": {"pid": 100},
        "safety": {"pid": 101, "alive": True, "realtime": True, "lost": None,
                   "sampler": {"ticks": 9000, "overruns": 0, "max_late_ms": 0.4}},
    }  # fmt: skip
    lines = render({**SNAPSHOT, "processes": processes}).splitlines()
    assert "processes:     gatekeeper pid 100" in lines
    assert "               safety pid 101, running, real time" in lines
    assert "               sampler 9000 ticks, 0 overruns, at most 0.4 ms late" in lines
    lost = {**processes["safety"], "alive": False, "realtime": False, "lost": "channel closed"}
    text = render({**SNAPSHOT, "processes": {**processes, "safety": lost}})
    assert "safety pid 101, lost (channel closed), NOT real time" in text


def test_render_shows_the_meter_its_health_and_its_bus() -> None:
    meter = {"healthy": False, "reason": "exception: exception 2 (illegal data address)",
             "power_w": None, "import_wh": None, "export_wh": None, "voltage_v": None,
             "frequency_hz": None, "age_ms": None, "read_at": None,
             "bus": {"backend": "modbus-rtu", "map": "Eastron SDM630", "where": "/dev/ttyAMA0",
                     "rate": "fast", "interval_ms": {"p50": 100.0, "p99": 100.4, "max": 101.0},
                     "bus_errors": {"timeout": 0, "exception": 12}}}  # fmt: skip
    lines = render({**SNAPSHOT, "meter_w": None, "meter": meter}).splitlines()
    assert (
        "meter:         - W (export +), UNHEALTHY: exception: exception 2 (illegal data address)"
        in lines
    )
    assert ("               modbus-rtu Eastron SDM630 at /dev/ttyAMA0: fast poll, interval p50 "
            "100.0 p99 100.4 max 101.0 ms; errors: timeout 0, exception 12") in lines  # fmt: skip
