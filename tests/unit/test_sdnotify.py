"""The sd_notify protocol against real datagram sockets: path and abstract addresses, the
watchdog period meant for this process only, and the health rule that earns a ping."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.daemon.sdnotify import MAX_TICK_AGE_NS, HealthWatchdog, SystemdNotifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(1.0)
    yield sock, path
    sock.close()


def test_ready_reaches_a_path_socket_as_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert SystemdNotifier({"NOTIFY_SOCKET": path}).ready("up")
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_an_abstract_address_is_used_as_such() -> None:
    name = f"evse-gatekeeper-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(1.0)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_outside_systemd_nothing_is_sent_and_nothing_raises(tmp_path: Path) -> None:
    assert not SystemdNotifier({}).enabled and not SystemdNotifier({}).ready("x")
    gone = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.enabled and not gone.stopping(), "a missing manager is reported, not raised"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 2_000_000_000),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 2_000_000_000),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_period_is_for_this_process_only(
    env: dict[str, str], expected: int | None
) -> None:
    assert SystemdNotifier(env).watchdog_ns == expected


def test_a_ping_is_earned_only_by_a_fresh_advancing_sampler(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    now = [10_000_000_000]
    tick = [now[0]]
    watchdog = HealthWatchdog(
        SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}),
        lambda: tick[0],
        lambda: now[0],
    )
    assert watchdog.interval_s == 0.5, "half the period"
    assert watchdog.poll() and sock.recv(64) == b"WATCHDOG=1"
    now[0] += 50_000_000
    assert not watchdog.poll(), "no tick since the last ping: the sampler is stuck"
    tick[0] = now[0]
    assert watchdog.poll()
    tick[0] = now[0] + 1
    now[0] += MAX_TICK_AGE_NS + 2
    assert not watchdog.poll(), "a tick, but too long ago"
    assert watchdog.pings == 2 and watchdog.withheld == 2
