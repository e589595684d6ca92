"""The gatekeeper's end of the safety channel: starts the safety process, sends it wishes and
a heartbeat, and turns what it reports into events for the event loop.

The heartbeat comes from a thread of its own every ``HEARTBEAT_EVERY_S``, so that disk or
network waits on the event loop do not stop it; it stops when the loop has not turned for
``LOOP_STALL_LIMIT_NS`` (a hung loop is a hung gatekeeper) or the process is gone. It keeps
a mirror of what the board last reported (relays, pilot, meter, the sampler's health) for
the status and the J3072 checks; the relays themselves are only ever driven over there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from firmware.errors import GatekeeperError
from firmware.logs import log_event
from firmware.pilot.levels import PilotState
from firmware.safety import channel as ch
from firmware.safety.settings import SafetySettings, to_json
from hal import SAFE_PILOT, PilotOutput, Relay

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 0.01  # a tenth of the safety process's 100 ms allowance
HEARTBEAT_PRIORITY = 1  # SCHED_FIFO, lowest: wakes ahead of CPU-bound work, runs for µs
# a loop that has not turned for 2 s is hung (the service watchdog's period): a journal fsync
# on a busy SD card may hold it for a second, and that is not a hang
LOOP_STALL_LIMIT_NS = 2_000_000_000
LATE_HEARTBEAT_NS = 50_000_000  # a gap this long is logged: half the allowance is gone
LOOP_STAMP_EVERY_S = 0.05
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 2.0


class SafetyProcessError(GatekeeperError):
    """Raised when the safety process cannot be started, fails, or is lost."""


class SafetyHandle(Protocol):
    """A started safety process (a real child, or a thread in tests)."""

    @property
    def pid(self) -> int: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


def spawn_process(child_end: socket.socket) -> SafetyHandle:
    """``python -m firmware.safety`` with its end of the channel; in a process group of its
    own, so a terminal's Ctrl-C reaches the gatekeeper, which then stops it in order."""
    fd = child_end.fileno()
    env = {**os.environ, "MALLOC_ARENA_MAX": "1"}  # one arena: fewer pages to lock
    command = [sys.executable, "-m", "firmware.safety", "--channel-fd", str(fd)]
    return subprocess.Popen(command, pass_fds=(fd,), env=env, process_group=0)


@dataclass(slots=True)
class BoardMirror:
    """What the safety process last reported."""

    pilot: PilotState = PilotState.A
    relays: dict[Relay, bool] = field(default_factory=lambda: dict.fromkeys(Relay, False))
    status: ch.Status | None = None
    ready: ch.Ready | None = None
    simulated_vehicle: tuple[bool, bool] = (False, False)  # (plugged, PLC on), mock board


@dataclass(frozen=True, slots=True)
class SafetyLost:
    """The safety process is gone, or said it failed."""

    reason: str


SafetyEvent = (
    ch.PilotChange
    | ch.Trip
    | ch.RelayResult
    | ch.RcdChange
    | ch.ProximityChange
    | ch.FaultRecorded
    | SafetyLost
)


class SafetyLink:
    def __init__(
        self,
        settings: SafetySettings,
        post: Callable[[SafetyEvent], None],
        launcher: Callable[[socket.socket], SafetyHandle] = spawn_process,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._settings = settings
        self._post = post
        self._launcher = launcher
        self._clock = clock
        self.mirror = BoardMirror()
        self.pilot_output: PilotOutput = SAFE_PILOT
        self.handle: SafetyHandle | None = None
        self._sock: socket.socket | None = None
        self._requests = 0
        self._loop_turned_ns = clock()
        self._beating = threading.Event()
        self._stamper: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[ch.Ready] | None = None
        self._safe: asyncio.Future[ch.SafeState | None] | None = None
        self.lost: str | None = None
        self.max_heartbeat_gap_ns = 0  # between two heartbeats sent: the safety allows 100 ms

    async def start(self) -> ch.Ready:
        """Start the safety process and wait until its interlock is armed."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.handle = self._launcher(theirs)
        except OSError as err:
            raise SafetyProcessError(f"cannot start the safety process: {err}") from err
        finally:
            theirs.close()  # the child has its copy
        self._sock = ours
        ours.sendall(ch.encode(ch.Setup(to_json(self._settings))))
        ours.setblocking(False)
        self._ready, self._safe = loop.create_future(), loop.create_future()
        loop.add_reader(ours.fileno(), self._readable)
        self._beating.set()
        self._stamper = asyncio.create_task(self._stamp_loop(), name="safety-loop-stamp")
        threading.Thread(target=self._heartbeat, name="safety-heartbeat", daemon=True).start()
        try:
            ready = await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT_S)
        except TimeoutError:
            raise SafetyProcessError("the safety process did not become ready") from None
        log_event(logger, "safety.ready", pid=self.handle.pid, realtime=ready.realtime)
        return ready

    # --- wishes --------------------------------------------------------------------------------

    def set_pilot(self, output: PilotOutput) -> None:
        self.pilot_output = output
        self._send(ch.SetPilot(output))

    def wish(self, relay: Relay, closed: bool) -> int:
        """Ask for a relay; the answer comes back as a ``RelayResult`` event."""
        self._requests += 1
        if not closed:
            self.mirror.relays[relay] = False  # opening is always granted
            if relay is Relay.MAIN:
                self.mirror.relays[Relay.DISCHARGE] = False
        self._send(ch.RelayWish(self._requests, relay, closed))
        return self._requests

    def closed(self, relay: Relay) -> bool:
        return self.mirror.relays[relay]

    async def _stamp_loop(self) -> None:
        """The event loop's proof of life for the heartbeat thread."""
        while self._beating.is_set():
            self._loop_turned_ns = self._clock()
            await asyncio.sleep(LOOP_STAMP_EVERY_S)

    def _send(self, message: ch.Message) -> None:
        if self._sock is None or self.lost is not None:
            return
        try:
            self._sock.send(ch.encode(message))
        except OSError as err:  # full (it stopped reading) or gone: it fails safe on its own
            self._lose(f"channel: {err.strerror or err}")

    def _heartbeat(self) -> None:
        sock = self._sock
        assert sock is not None
        with contextlib.suppress(OSError):  # this thread only (Linux: 0 = the caller)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(HEARTBEAT_PRIORITY))
        sent_at: int | None = None
        while self._beating.is_set():
            now = self._clock()
            loop_age = now - self._loop_turned_ns
            if loop_age > LOOP_STALL_LIMIT_NS:
                if sent_at is not None:
                    log_event(logger, "safety.heartbeat_withheld", logging.ERROR,
                              loop_stalled_ms=loop_age // 1_000_000)  # fmt: skip
                sent_at = None
            else:
                with contextlib.suppress(BlockingIOError):
                    try:
                        sock.send(ch.encode(ch.Heartbeat(now)))
                    except OSError:
                        return  # gone: the loop hears of it from the reader
                if sent_at is not None:
                    self._note_gap(now - sent_at, loop_age)
                sent_at = now
            time.sleep(HEARTBEAT_EVERY_S)

    def _note_gap(self, gap_ns: int, loop_age_ns: int) -> None:
        self.max_heartbeat_gap_ns = max(self.max_heartbeat_gap_ns, gap_ns)
        if gap_ns >= LATE_HEARTBEAT_NS:
            log_event(logger, "safety.heartbeat_late", logging.WARNING,
                      gap_ms=gap_ns // 1_000_000, loop_age_ms=loop_age_ns // 1_000_000)  # fmt: skip

    # --- reports -------------------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                data = sock.recv(ch.MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError as err:
                self._lose(f"channel: {err.strerror}")
                return
            if not data:
                self._lose("the safety process closed the channel")
                return
            try:
                self._take(ch.decode(data))
            except ch.ChannelError as err:
                self._lose(f"bad message from the safety process: {err}")
                return

    def _take(self, message: ch.Message) -> None:
        mirror = self.mirror
        match message:
            case ch.Status():
                mirror.status = message
                mirror.relays[Relay.MAIN] = message.main_closed
                mirror.relays[Relay.DISCHARGE] = message.discharge_closed
                return
            case ch.Ready():
                mirror.ready = message
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(message)
                return
            case ch.SafeState():
                if self._safe is not None and not self._safe.done():
                    self._safe.set_result(message)
                return
            case ch.SimulatedVehicle(plugged, plc_on):
                mirror.simulated_vehicle = (plugged, plc_on)
                return
            case ch.Failed(error):
                self._lose(f"the safety process failed: {error}")
                return
            case ch.PilotChange(current=current):
                mirror.pilot = current
            case ch.Trip():
                mirror.relays = dict.fromkeys(Relay, False)
            case ch.RelayResult(relay=relay, closed=closed, granted=granted):
                if granted:
                    mirror.relays[relay] = closed
            case ch.RcdChange() | ch.ProximityChange() | ch.FaultRecorded():
                pass
            case _:
                log_event(logger, "safety.unexpected_message", logging.WARNING,
                          type=type(message).__name__)  # fmt: skip
                return
        self._post(message)

    def _lose(self, reason: str) -> None:
        if self.lost is not None:
            return
        self.lost = reason
        self._beating.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(SafetyProcessError(reason))  # start() awaits it
        if self._safe is not None and not self._safe.done():
            self._safe.set_result(None)  # no safe state will be reported
        self._post(SafetyLost(reason))

    # --- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The board as last reported (pilot, relays, meter, latches) and both processes."""
        mirror, status = self.mirror, self.mirror.status
        sampler = None
        if status is not None:
            age_ms = max(0, self._clock() - status.t_ns) // 1_000_000
            sampler = {"ticks": status.ticks, "overruns": status.overruns,
                       "max_late_ms": round(status.max_late_ns / 1e6, 3),
                       "last_report_ms_ago": age_ms}  # fmt: skip
        ready = mirror.ready
        return {
            "pilot": mirror.pilot.value,
            "relays": {r.value: "closed" if self.closed(r) else "open" for r in Relay},
            "meter_w": status.meter_w if status is not None else 0.0,
            "latched": list(status.latched) if status is not None else [],
            "processes": {
                "gatekeeper": {"pid": os.getpid()},
                "safety": {
                    "pid": self.handle.pid if self.handle is not None else None,
                    "alive": self.lost is None and ready is not None,
                    "realtime": ready.realtime if ready is not None else None,
                    "sampler": sampler,
                    "lost": self.lost,
                    "max_heartbeat_gap_ms": round(self.max_heartbeat_gap_ns / 1e6, 3),
                },
            },
        }

    def log_stats(self) -> None:
        status = self.mirror.status
        if status is not None:
            log_event(logger, "sampler.stats", ticks=status.ticks, overruns=status.overruns,
                      max_late_ms=round(status.max_late_ns / 1e6, 3))  # fmt: skip

    # --- stop ----------------------------------------------------------------------------------

    async def stop(self) -> ch.SafeState | None:
        """Ask for the safe state and wait (bounded) for the report and the exit."""
        safe = None
        if self.lost is None and self._safe is not None:
            self._send(ch.Shutdown())
            with contextlib.suppress(TimeoutError):
                safe = await asyncio.wait_for(asyncio.shield(self._safe), STOP_TIMEOUT_S)
        self.close()
        await asyncio.to_thread(self._reap)
        return safe

    def close(self) -> None:
        """Stop the heartbeat and the reader: the safety process opens everything alone."""
        self._beating.clear()
        if self._stamper is not None:
            self._stamper.cancel()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()

    def _reap(self) -> None:
        handle = self.handle
        if handle is None:
            return
        try:
            code = handle.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            handle.kill()
            code = handle.wait(STOP_TIMEOUT_S)
        log_event(logger, "safety.exited", pid=handle.pid, code=code)
