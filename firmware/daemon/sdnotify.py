"""The systemd service-manager protocol (sd_notify(3)): ``READY=1``, ``WATCHDOG=1``,
``STATUS=``, ``STOPPING=1`` as datagrams to ``$NOTIFY_SOCKET``, and the watchdog period from
``$WATCHDOG_USEC`` (for this process only, per ``$WATCHDOG_PID``).

Written against the protocol, not libsystemd: one ``AF_UNIX`` ``SOCK_DGRAM`` send per
message, to a path or to an abstract address (``@`` prefix). Outside systemd (no
``NOTIFY_SOCKET``) every call is a no-op. A send that fails is reported as ``False`` and
never raises: the service manager being gone must not stop the charger.

``HealthWatchdog`` decides whether a ping is earned: the sampler thread must have ticked
since the last ping and recently (the interlock runs in it), and the loop must be turning
(the pinging task runs on it). A stalled sampler therefore stops the pings and systemd
restarts the service after ``WatchdogSec=``; the relays' dead-man drops them sooner.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

MAX_TICK_AGE_NS = 200_000_000  # a sampler silent this long is stalled (it ticks every 5 ms)


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and address.startswith("@"):
            address = "\0" + address[1:]  # the abstract namespace
        self.address = address
        self.watchdog_ns = _watchdog_ns(env)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of ``KEY=value`` lines; True once it was handed to the socket."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping: relays open")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")


def _watchdog_ns(env: Mapping[str, str]) -> int | None:
    """``WATCHDOG_USEC`` in ns when it is meant for this process; None otherwise."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid is not None and pid.strip() != str(os.getpid())):
        return None
    return usec * 1000


class HealthWatchdog:
    """Pings only while the sampler is alive: ``poll`` is called on the loop."""

    def __init__(
        self,
        notifier: SystemdNotifier,
        last_tick_ns: Callable[[], int],
        clock: Callable[[], int],
    ) -> None:
        self._notifier = notifier
        self._last_tick_ns = last_tick_ns
        self._clock = clock
        self._seen_tick = -1
        self.pings = 0
        self.withheld = 0

    @property
    def interval_s(self) -> float | None:
        """Ping at half the period systemd set (sd_watchdog_enabled(3) advice)."""
        period = self._notifier.watchdog_ns
        return None if period is None or not self._notifier.enabled else period / 2e9

    def healthy(self) -> bool:
        tick = self._last_tick_ns()
        fresh = self._clock() - tick <= MAX_TICK_AGE_NS
        advanced = tick != self._seen_tick
        self._seen_tick = tick
        return fresh and advanced

    def poll(self) -> bool:
        """Ping if earned; True when a ping went out."""
        if self.healthy() and self._notifier.watchdog():
            self.pings += 1
            return True
        self.withheld += 1
        return False
