"""The communication parts around the safety core: the PLC stack (on its netdev, or on the
mock world in mock mode), the PLC link's addressing and router advertisements, the site bridge
gate (``firmware.net``), and the 2030.5 service.

None of them drives a relay or the pilot: what they learn reaches the charger as events on
its queue, in order with the pilot's. A background task that fails is logged and changes
nothing else. The composition root starts them after the interlock runs and stops them
after the relays are open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from firmware.approvals import ApprovalError
from firmware.daemon.config import Config
from firmware.errors import ConfigError
from firmware.logs import log_event
from firmware.net.plc_network import PlcLink
from firmware.plc.config import PLC_MOCK
from firmware.plc.stack import PlcEvent, PlcStack
from firmware.safety.link import BoardMirror

if TYPE_CHECKING:
    from firmware.approvals.jws import UtilityKey
    from firmware.approvals.refresh import Outcome, Refresher
    from firmware.approvals.watch import ApprovalWatch
    from firmware.journal.recorder import Recorder
    from firmware.sep2.clock import TimeQuality
    from firmware.sep2.service import Sep2Service
    from firmware.sep2.store import PevEvent

logger = logging.getLogger(__name__)

PLC_HOST = "plc"  # [sep2] host: the EVSE's own address on the PLC link


class Communication:
    def __init__(
        self,
        config: Config,
        post: Callable[[PlcEvent | PevEvent], None],
        time_quality: TimeQuality | None = None,
    ) -> None:
        """``time_quality``: the 2030.5 Time resource's quality (the daemon's clock watch)."""
        self.config = config
        self._time_quality = time_quality
        self._post = post
        self.plc: PlcStack | None = None
        self.sep2: Sep2Service | None = None
        self._plugged = False
        self._background: list[asyncio.Task[None]] = []
        self.approvals: ApprovalWatch | None = None
        self.refresher: Refresher | None = None  # only with [approvals] url
        self.link = PlcLink(config)

    async def start(self, board: BoardMirror, recorder: Recorder | None = None) -> None:
        await self._start_approvals(recorder)
        await self._start_plc(board)
        await self.link.start(self._watched)
        await self._start_sep2()
        if self.sep2 is not None and self.config.sep2.port == 0:  # known only now
            await self.link.isolate(self.sep2.server.port)

    async def _start_approvals(self, recorder: Recorder | None) -> None:
        """The installed approval list, kept current (only with utility keys configured), and
        fetched from the utility (only with a URL)."""
        config = self.config
        if not config.approvals.utility_keys:
            log_event(logger, "approvals.off", reason="approvals.utility_keys not set")
            return
        from firmware.approvals.jws import load_utility_keys  # cryptography: only with keys
        from firmware.approvals.store import ApprovalStore
        from firmware.approvals.watch import ApprovalWatch

        try:
            keys = load_utility_keys(config.approvals.utility_keys)
        except ApprovalError as err:
            raise ConfigError([f"approvals.utility_keys: {err}"]) from err
        store = ApprovalStore(config.paths.state_dir, keys, config.site.service_area)
        self.approvals = ApprovalWatch(store)
        # off the loop like every later check: a missing index is rebuilt by a child process
        # for seconds, and the loop must keep turning (the safety process's heartbeat)
        await asyncio.to_thread(self.approvals.check)
        self._background.append(self._watched(self.approvals.run(), "approvals.watch"))
        if config.approvals.url is not None:
            await self._start_refresh(keys, recorder)

    async def _start_refresh(self, keys: Sequence[UtilityKey], recorder: Recorder | None) -> None:
        """Fetch the list from ``[approvals] url`` every ``refresh_s`` (``approvals.refresh``)."""
        from firmware.approvals.refresh import FetchResult, refresher_for, tls_context

        config = self.config
        try:  # checked with the config; the file may have changed since
            context = await asyncio.to_thread(tls_context, config.approvals.ca_file)
        except (OSError, ValueError) as err:
            raise ConfigError([f"approvals.ca_file: cannot use: {err}"]) from err

        def journal(url: str, outcome: Outcome) -> None:
            if recorder is None:
                return
            recorder.approval_fetch(url, outcome.result.value, outcome.version, outcome.reason)
            done = outcome.installed
            if outcome.result is FetchResult.INSTALLED and done is not None:
                recorder.approval_install(done.version, done.issuer, done.service_area,
                                          done.expires_at, done.entries)  # fmt: skip

        self.refresher = refresher_for(config.approvals, config.paths.state_dir, keys,
                                       config.site.service_area, context, journal)  # fmt: skip
        self._background.append(self._watched(self.refresher.run(), "approvals.refresh"))

    def status(self) -> dict[str, Any]:
        """The PLC link, the approval list and the site bridge, for ``status``."""
        plc = self.plc
        return {
            "plc": {"link": "off" if plc is None else ("up" if plc.link_up else "down")},
            "approvals": self._approvals_status(),
            "bridge": self.link.state(),
        }

    def _approvals_status(self) -> dict[str, Any] | None:
        if self.approvals is None:
            return None
        refresh = self.refresher.status() if self.refresher is not None else None
        return {**self.approvals.status(), "refresh": refresh}

    def describe(self) -> dict[str, str]:
        """For the ready line: where each part is."""
        return {
            "plc": self.config.plc.interface or "none",
            "sep2": f"[{self.sep2.host}]:{self.sep2.server.port}" if self.sep2 else "off",
            "bridge": self.link.describe(),
        }

    def follow_plug(self, present: bool) -> None:
        """SLAC listens from plug-in (B) and stops when the vehicle leaves (A)."""
        if self.plc is not None and present != self._plugged:
            self._plugged = present
            if present:
                self.plc.plugged_in()
            else:
                self.plc.unplugged()

    def log_stats(self) -> None:
        if self.plc is not None:
            link = self.plc.link
            log_event(
                logger,
                "plc.stats",
                malformed=self.plc.malformed,
                notices=self.plc.notices,
                dropped=link.dropped if link is not None else 0,
                link="up" if self.plc.link_up else "down",
            )

    def close(self) -> None:
        """The synchronous part of the shutdown: the PLC link and the background tasks."""
        if self.plc is not None:
            self.plc.close()
        for task in self._background:
            task.cancel()

    async def stop(self) -> None:
        await self.link.stop()
        if self.sep2 is not None:
            await self.sep2.stop()

    async def _start_plc(self, board: BoardMirror) -> None:
        """The PLC stack on its netdev, or on the in-process mock world (``firmware.plc.mock``,
        imported only then), which follows the mock board's simulated vehicle."""
        plc = self.config.plc
        if plc.interface is None:
            return
        link = None
        if plc.interface == PLC_MOCK:
            from firmware.plc.mock.world import MockPlcWorld

            world = MockPlcWorld(lambda: board.simulated_vehicle)
            self._background.append(self._watched(world.run(), "plc.mock_world"))
            link = world.evse_link
        self.plc = PlcStack(plc.interface, plc.slac_init_timeout_s, self._post, link)
        await self.plc.start()
        log_event(
            logger,
            "plc.configured",
            interface=plc.interface,
            duty=plc.duty.value,
            fallback=plc.fallback.value,
            slac_init_timeout_s=plc.slac_init_timeout_s,
        )

    async def _start_sep2(self) -> None:
        """The 2030.5 server (after the board is safe and the interlock runs)."""
        if not self.config.sep2.enabled:
            return
        from firmware.sep2.service import Sep2Service  # aiohttp only when the server is on

        host = self.config.sep2.host
        if host == PLC_HOST:
            if self.link.address is None:
                problem = 'sep2.host: "plc" needs a PLC link interface ([bridge] plc_interface)'
                raise ConfigError([problem])
            host = str(self.link.address.ip)
        self.sep2 = Sep2Service(self.config, on_event=self._post, host=host,
                                time_quality=self._time_quality)  # fmt: skip
        await self.sep2.start()

    def _watched(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)

        def done(finished: asyncio.Task[None]) -> None:
            if not finished.cancelled() and finished.exception() is not None:
                log_event(logger, "gatekeeper.task_failed", logging.ERROR, task=name,
                          error=repr(finished.exception()))  # fmt: skip

        task.add_done_callback(done)
        return task
