"""The composition root and supervisor of the gatekeeper process: reads nothing itself, starts
the parts in order, runs the loop, stops the parts in order.

Start-up: the safety process (it opens the board in its safe state, self-tests the RCD, runs
the boot weld check and arms its interlock), then the charger, the communication parts, the
J3072 gate and the control socket; then ``Running`` turns the loop with every part complete.
The relays and the pilot are only ever driven over there: this process sends wishes
(``firmware.safety.link``). Shutdown (a signal or a crash) asks the safety process for its
safe state before anything else; if this process dies instead, the safety process opens
everything on its own. Only this module catches broadly: it logs, forces safe outputs, exits
non-zero.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from firmware import firmware_version
from firmware.charger.controller import Charger, ChargerSettings, PlcPolicy
from firmware.clock.config import clock_required, clock_watch
from firmware.clock.steps import Step
from firmware.daemon.communication import Communication
from firmware.daemon.config import Config
from firmware.daemon.control_socket import ControlServer
from firmware.daemon.running import LoopEvent, Running, board_report
from firmware.daemon.sdnotify import HealthWatchdog, SystemdNotifier
from firmware.errors import ConfigError
from firmware.j3072.gate import Gate
from firmware.j3072.held import HeldViolation
from firmware.j3072.peer import PeerCheck
from firmware.journal.recorder import Recorder
from firmware.logs import kv, log_event
from firmware.safety import channel as ch
from firmware.safety.link import SafetyHandle, SafetyLink, SafetyProcessError, spawn_process
from firmware.safety.settings import SafetySettings
from hal import HalError
from hal.meter import MapError, Meter, open_meter

if TYPE_CHECKING:
    from firmware.ocpp.service import OcppService

logger = logging.getLogger(__name__)

# A thread must get the GIL back quickly even while the loop parses a large XML body;
# CPython's default hand-over interval (5 ms) is a twentieth of the heartbeat's allowance.
GIL_SWITCH_INTERVAL_S = 0.0005
GATEKEEPER_NICE = -10  # the unit sets the same with Nice=; here for runs outside systemd


def _claim_the_cpu() -> None:
    """Ahead of other work on the board (the heartbeat must leave every 20 ms), and the GIL
    handed to the heartbeat thread quickly; where refused, said once."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, GATEKEEPER_NICE)
    except OSError as err:
        log_event(logger, "gatekeeper.priority_refused", logging.WARNING,
                  nice=GATEKEEPER_NICE, reason=err.strerror)  # fmt: skip


def _ocpp(config: Config, recorder: Recorder) -> OcppService | None:
    """The OCPP station when ``[ocpp] url`` is set (loaded only then)."""
    if not config.ocpp.enabled:
        return None
    from firmware.ocpp.service import OcppService

    return OcppService(config.ocpp, recorder, config.site.v_ref_v)


def safety_settings(config: Config) -> SafetySettings:
    """What the safety process needs of the config (it reads no config file itself)."""
    board = config.board
    if board.backend == "mock" and board.mock.rig_link:  # the virtual rig's *IDN? names it
        board = replace(board, mock=replace(board.mock, firmware_version=firmware_version()))
    return SafetySettings(
        board=board,
        ventilation=config.charger.ventilation,
        sample_rate_hz=config.charger.sample_rate_hz,
        proximity=config.charger.proximity,
        state_dir=config.paths.state_dir,
        log_level=config.log.level,
    )


class Gatekeeper:
    def __init__(
        self,
        config: Config,
        clock: Callable[[], int] = time.monotonic_ns,
        launcher: Callable[[socket.socket], SafetyHandle] = spawn_process,
    ) -> None:
        self.config = config
        self._clock = clock
        self._queue: asyncio.Queue[LoopEvent | None] = asyncio.Queue()
        self.safety = SafetyLink(safety_settings(config), self._queue.put_nowait, launcher, clock)
        self.clock_watch = clock_watch(config, self._journal_step)
        self.services = Communication(config, self._queue.put_nowait, self.clock_watch)
        self.recorder = Recorder(None)  # the journal, once the state directory exists
        self.notifier = SystemdNotifier()
        self.ready = threading.Event()
        self.running: Running | None = None  # once every part has started
        self._control: ControlServer | None = None
        self.meter: Meter | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.ocpp: OcppService | None = None

    @property
    def charger(self) -> Charger:
        """The running charger (for tests and benches that watch it)."""
        assert self.running is not None, "not started"
        return self.running.charger

    async def run(self) -> int:
        """Run until ``request_stop``; 0 on a clean stop, 1 after a crash."""
        self._loop = asyncio.get_running_loop()
        try:
            running = self.running = await self._start()
            while not self._stopping:
                await running.step()
            return 0
        except (HalError, ConfigError):
            raise  # the board or the credentials are unusable: the CLI says why in one line
        except SafetyProcessError as err:
            log_event(logger, "gatekeeper.safety_lost", logging.CRITICAL, reason=str(err))
            return 1
        except Exception as err:  # the supervisor: anything unexpected ends in the safe state
            logger.exception("%s", kv("gatekeeper.crash", [("error", repr(err))]))
            return 1
        finally:
            await self._shutdown()

    def request_stop(self) -> None:
        """Thread-safe: ask the loop to stop (signal handlers and tests call this)."""
        self._stopping = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    # --- start-up -----------------------------------------------------------------------

    async def _start(self) -> Running:
        config = self.config
        _claim_the_cpu()
        config.paths.state_dir.mkdir(parents=True, exist_ok=True)
        from firmware.approvals.install_lock import clean_at_start  # sqlite3, as the journal

        clean_at_start(config.paths.state_dir)  # what installs killed part-way left behind
        self.recorder = Recorder.open(config.paths.state_dir)
        self.clock_watch.start()  # before the 2030.5 server serves its Time
        self._clock_task = asyncio.create_task(self.clock_watch.run(), name="clock.watch")
        ready = await self._start_safety()
        charger = self._charger(ready)
        await self.services.start(self.safety.mirror, self.recorder)
        approvals = self.services.approvals
        ocpp = self.ocpp = _ocpp(config, self.recorder)
        gate = Gate(config.site, config.j3072, self.services.sep2,
                    approvals.store if approvals is not None else None,
                    ocpp.journal() if ocpp else self.recorder, self._clock,
                    peer=self._peer_check(config),
                    held=HeldViolation(config.paths.state_dir),
                    policy=config.approvals.policy,
                    clock_problem=self._clock_problem())  # fmt: skip
        self.meter = self._open_meter()
        running = Running(charger, gate, self.safety, self.services, self.recorder,
                          self._queue, self._clock, self.clock_watch,
                          meter=self.meter)  # fmt: skip
        if ocpp is not None:  # its own task: the loop never waits for the CSMS
            running.upstream = ocpp
            watch = self.clock_watch
            ocpp.start(gate, self.services.sep2, running.set_csms_limit, charger.rating_a,
                       firmware_version(), lambda: watch.since_boot)  # fmt: skip
        self._control = ControlServer(config.control_socket, running.status, running.set_limit,
                                      running.set_function)  # fmt: skip
        await self._control.start()
        fields = [("sample_rate_hz", config.charger.sample_rate_hz),
                  ("rig", config.board.mock.rig_link or "none"),
                  ("clock_required", clock_required(config)),
                  *self.services.describe().items()]  # fmt: skip
        logger.info("%s", kv("gatekeeper.ready", fields))
        self.ready.set()
        self._start_watchdog()
        self.notifier.ready("ready: relays open, interlock armed, servers listening")
        return running

    async def _start_safety(self) -> ch.Ready:
        """The safety process, armed before it answers. A board it cannot open is the CLI's
        one-line error, as before the split."""
        try:
            return await self.safety.start()
        except SafetyProcessError as err:
            text = str(err)
            if "board: " in text:
                raise HalError(text.split("board: ", 1)[1]) from None
            raise

    def _clock_problem(self) -> Callable[[], str | None]:
        """What the gate asks of the clock before an authorization: nothing unless required."""
        if clock_required(self.config):
            return self.clock_watch.problem
        return lambda: None

    def _journal_step(self, step: Step) -> None:
        """A step in the journal, between the rows stamped before it and those after."""
        self.recorder.fault("clock_step", f"{step.direction} {abs(step.size_s):.3f} s: rows "
                            "after this one are stamped by the stepped clock")  # fmt: skip

    def _open_meter(self) -> Meter:
        """The EVSE's meter, polling on its own thread (a Modbus backend) before the loop
        turns; plausible power is bounded by the circuit's rating."""
        config = self.config
        settings = replace(config.meter, max_current_a=config.charger.max_current_a)
        try:
            meter = open_meter(settings, config.board.backend, board_report(self.safety))
        except MapError as err:
            raise HalError(f"meter: {err}") from None
        meter.start()
        shown = {k: v for k, v in meter.stats().items() if k in ("backend", "map", "where")}
        log_event(logger, "meter.opened", **shown)
        return meter

    @staticmethod
    def _peer_check(config: Config) -> PeerCheck | None:
        """With a PLC link, only the vehicle SLAC matched, reaching us on that link, is bound."""
        if not config.plc.enabled:
            return None
        interface = config.plc_link_interface
        if interface is None:
            log_event(logger, "j3072.peer_unchecked", logging.WARNING,
                      why="the mock PLC has no link layer: the SLAC match is required, the "
                          "client's address is not checked")  # fmt: skip
        return PeerCheck(interface)

    def _charger(self, ready: ch.Ready) -> Charger:
        """The charger for what the board can do, told of a permanent fault at once."""
        config = self.config
        ventilation = config.charger.ventilation and ready.supports_ventilation
        max_current_a = min(config.charger.max_current_a, ready.max_current_a)
        log_event(logger, "board.opened", backend=config.board.backend,
                  max_current_a=max_current_a, ventilation=ventilation)  # fmt: skip
        # the interlock wants two samples under PWM before a closing: three, plus margin
        settle_ns = 3 * (1_000_000_000 // config.charger.sample_rate_hz) + 5_000_000
        plc = config.plc
        settings = ChargerSettings(
            max_current_a, ventilation, config.contactor.min_close_interval_ms * 1_000_000,
            settle_ns, config.charger.proximity,
            PlcPolicy(plc.duty, plc.fallback) if plc.enabled else None,
            config.contactor.discharge_min_close_interval_ms * 1_000_000,
        )  # fmt: skip
        charger = Charger(settings, self._clock())
        if ready.permanent is not None:
            charger.on_permanent_fault(ready.permanent, self._clock())
        return charger

    def _start_watchdog(self) -> None:
        """WATCHDOG=1 while the safety process's sampler ticks and the loop turns."""
        mirror = self.safety.mirror
        watchdog = HealthWatchdog(
            self.notifier, lambda: mirror.status.t_ns if mirror.status else 0, self._clock
        )
        interval = watchdog.interval_s
        if interval is None:
            return

        async def ping() -> None:
            pinging = True
            while True:
                if watchdog.poll() != pinging:
                    pinging = not pinging
                    if pinging:
                        log_event(logger, "watchdog.resumed")
                    else:
                        log_event(logger, "watchdog.withheld", logging.ERROR,
                                  reason="the sampler has not ticked")  # fmt: skip
                await asyncio.sleep(interval)

        self._watchdog = asyncio.create_task(ping(), name="watchdog")
        log_event(logger, "watchdog.on", interval_s=round(interval, 3))

    # --- shutdown -----------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """The safe state first (the safety process opens both relays, confirms them open and
        drives the pilot to +12 V), then the rest, each step in its own try."""
        steps: list[tuple[str, Callable[[], object]]] = [
            ("relays", self._stop_safety),
            ("notify", self.notifier.stopping),
            ("stats", self._log_stats),
            ("watchdog", self._watchdog.cancel if self._watchdog else lambda: None),
            ("clock", self._clock_task.cancel if self._clock_task else lambda: None),
            ("ocpp", self.ocpp.stop if self.ocpp else lambda: None),
            ("services", self.services.close),
            ("control", self._control.stop if self._control else lambda: None),
            ("services", self.services.stop),
            ("meter", self.meter.close if self.meter else lambda: None),
            ("journal", self.recorder.close),
        ]
        for name, step in steps:
            try:
                result: Any = step()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as err:
                log_event(logger, "gatekeeper.shutdown_step_failed", logging.ERROR,
                          step=name, error=repr(err))  # fmt: skip
        log_event(logger, "gatekeeper.stopped")

    def _log_stats(self) -> None:
        if self.running is not None:
            self.running.log_stats()

    async def _stop_safety(self) -> None:
        safe = await self.safety.stop()
        if safe is not None:
            log_event(logger, "gatekeeper.safe_state", main=safe.main.value,
                      discharge=safe.discharge.value)  # fmt: skip
        else:
            log_event(logger, "gatekeeper.safe_state_unconfirmed", logging.WARNING,
                      reason=self.safety.lost or "no answer")  # fmt: skip
