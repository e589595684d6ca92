"""One simulated vehicle's 2030.5 session on its own thread and event loop, for callers that
drive the rig meanwhile (the end-to-end tests, ``make run``).

``start`` returns at once; ``stop`` ends the heartbeat phase and returns the report.
``heartbeats`` and ``energize`` read the live session log (plain attribute reads of values
the session's thread replaces, safe across threads).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from hil.firmware_process import Daemon
from hil.pev.client import PevClient
from hil.pev.profiles import Profile
from hil.pev.report import PevReport
from hil.rig import Rig


class BackgroundPev:
    def __init__(self, server_url: str, pki_dir: Path, profile: Profile) -> None:
        self.client = PevClient(server_url, pki_dir, profile)
        self.report: PevReport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pev-{profile.name}", daemon=True)

    def start(self) -> BackgroundPev:
        self._thread.start()
        self._ready.wait(5.0)
        return self

    @property
    def heartbeats(self) -> int:
        return self.client.log.heartbeats_sent

    @property
    def energize(self) -> bool | None:
        history = self.client.log.energize_history
        return history[-1].energize if history else None

    @property
    def errors(self) -> list[str]:
        return list(self.client.log.errors)

    def wait_heartbeats(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.heartbeats < count:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise TimeoutError(f"{self.heartbeats} heartbeats, not {count}: {self.errors}")
            time.sleep(0.02)

    def go_silent(self) -> None:
        """No heartbeat from now on (the session stays, watching)."""
        self.client.silent = True

    def call(self, make: Callable[[], Coroutine[Any, Any, None]], timeout_s: float = 5.0) -> None:
        """Run one of the client's coroutines on the session's loop and wait for it."""
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            raise RuntimeError("the simulated vehicle is not running")
        asyncio.run_coroutine_threadsafe(make(), loop).result(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> PevReport:
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(self.client.stop)
        self._thread.join(timeout_s)
        if self.report is None:
            raise TimeoutError(f"the simulated vehicle did not finish within {timeout_s} s")
        return self.report

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            self.report = await self.client.run(None)

        try:
            asyncio.run(main())
        finally:
            self._ready.set()


def sep2_url(daemon: Daemon) -> str:
    """The 2030.5 server's URL as the daemon announced it (``sep2.listening ... port=N``)."""
    listening = next(line for line in daemon.lines if "sep2.listening" in line)
    return f"https://[::1]:{int(listening.rsplit('port=', 1)[1])}"


def plug_in_authorized(daemon: Daemon, rig: Rig, pki_dir: Path, profile: Profile) -> BackgroundPev:
    """The simulated vehicle plugged in on the rig (state B, the PLC link matched), its
    J3072 exchange run until the gate authorizes it, then charging (state C) with the
    discharge path closed: the vehicle's session, running on."""
    rig.command("EV:STATE B")
    rig.wait_duty(1, 99, 1000)
    rig.command("EV:PLC ON")
    daemon.wait_for("plc.link state=up", timeout_s=10)
    pev = BackgroundPev(sep2_url(daemon), pki_dir, profile).start()
    daemon.wait_for("j3072.authorized", timeout_s=15)
    rig.command("EV:STATE C")
    rig.wait_relay("MAIN", "CLOSED", 3000)
    rig.wait_relay("DISCHARGE", "CLOSED", 3000)
    return pev
