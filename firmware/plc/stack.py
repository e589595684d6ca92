"""The EVSE's PLC side as one part for the composition root: the link, the port, the modem
client, the SLAC service and the link supervision.

The link is the raw socket on the configured netdev, or (``[plc] interface = "mock"``) the
EVSE end of the in-process world the caller hands in. If the netdev is missing at start (the
qcaspi driver may probe late), the stack says so, reports every plug-in as a give-up (the
charger applies its fallback), and keeps trying to open it.

The supervisor asks the modem for its link status every second and logs each change. A keyed
link that goes down while the vehicle stays plugged in ends that SLAC session: the modem is
re-keyed and SLAC listens again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from firmware.errors import GatekeeperError
from firmware.logs import log_event
from firmware.plc.frame import Header
from firmware.plc.keys import new_nmk
from firmware.plc.link import FrameLink, LinkError, RawSocketLink
from firmware.plc.messages import Message
from firmware.plc.modem import ModemClient
from firmware.plc.port import PlcPort
from firmware.plc.service import SlacService
from firmware.plc.slac import GaveUp, Matched, PilotWakeUp, SlacEvse

logger = logging.getLogger(__name__)

LINK_POLL_S = 1.0
REOPEN_EVERY_S = 5.0
UNAVAILABLE = "the PLC interface is unavailable"


@dataclass(frozen=True, slots=True)
class LinkChange:
    up: bool


PlcEvent = Matched | PilotWakeUp | GaveUp | LinkChange


class PlcStack:
    def __init__(
        self,
        interface: str,
        init_timeout_s: float,
        on_event: Callable[[PlcEvent], None],
        link: FrameLink | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.interface = interface
        self._init_timeout_ns = int(init_timeout_s * 1e9)
        self._on_event = on_event
        self._clock = clock
        self.link = link
        self.port: PlcPort | None = None
        self.service: SlacService | None = None
        self.link_up: bool | None = None  # None until the modem has answered once
        self._plugged = False
        self._tasks: list[asyncio.Task[None]] = []

    # --- what the charger side tells us -------------------------------------------------

    def plugged_in(self) -> None:
        self._plugged = True
        if self.service is not None:
            self.service.plugged_in()
        else:
            self._on_event(GaveUp(UNAVAILABLE))

    def unplugged(self) -> None:
        self._plugged = False
        if self.service is not None:
            self.service.unplugged()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.link is None:
            try:
                self.link = RawSocketLink(self.interface)
            except LinkError as err:
                log_event(logger, "plc.unavailable", logging.ERROR, ifname=self.interface,
                          error=str(err))  # fmt: skip
                self._tasks.append(asyncio.create_task(self._reopen()))
                return
        self._wire(self.link)

    def close(self) -> None:
        """Stop the tasks and close the link (synchronous: the shutdown path calls it)."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self.link is not None:
            self.link.close()

    @property
    def malformed(self) -> int:
        return self.port.malformed if self.port is not None else 0

    @property
    def notices(self) -> int:
        """QCA7005 sound notices: recognized and ignored, not malformed."""
        return self.port.notices if self.port is not None else 0

    def _wire(self, link: FrameLink) -> None:
        port = self.port = PlcPort(link, self._on_frame)
        modem = ModemClient(port)
        slac = SlacEvse(link.mac, new_nmk, self._init_timeout_ns)
        self.service = SlacService(slac, port, modem, self._on_event, self._clock)
        log_event(logger, "plc.opened", ifname=self.interface, mac=link.mac.hex(":"))
        self._tasks += [
            asyncio.create_task(port.run()),
            asyncio.create_task(self.service.run()),
            asyncio.create_task(self._supervise(modem)),
        ]
        if self._plugged:
            self.service.plugged_in()

    def _on_frame(self, header: Header, message: Message) -> None:
        assert self.service is not None
        self.service.on_message(header, message)

    async def _reopen(self) -> None:
        while True:
            await asyncio.sleep(REOPEN_EVERY_S)
            try:
                self.link = RawSocketLink(self.interface)
            except LinkError:
                continue
            self._wire(self.link)
            return

    async def _log_network(self, modem: ModemClient) -> None:
        """Who shares the link: what an engineer bringing up a board wants to see."""
        try:
            networks = await modem.network_info()
        except GatekeeperError as err:
            log_event(logger, "plc.network_unknown", logging.WARNING, error=str(err))
            return
        for net in networks:
            peers = ",".join(sta.mac.hex(":") for sta in net.stations) or "none"
            log_event(logger, "plc.network", nid=net.nid.hex(), role=net.role, peers=peers)

    async def _supervise(self, modem: ModemClient) -> None:
        """Poll the modem's link status; log changes; end a keyed session whose link drops."""
        silent = False
        while True:
            await asyncio.sleep(LINK_POLL_S)
            try:
                up = await modem.link_up()
            except GatekeeperError as err:
                if not silent:  # one line per outage, not one per second
                    log_event(logger, "plc.modem_silent", logging.WARNING, error=str(err))
                silent = True
                continue
            silent = False
            if up == self.link_up:
                continue
            was_up, self.link_up = self.link_up, up
            log_event(logger, "plc.link", state="up" if up else "down")
            if up:
                await self._log_network(modem)
            self._on_event(LinkChange(up))
            service = self.service
            if was_up and not up and service is not None:
                service.link_lost()  # re-keys and listens again if a vehicle was matched
