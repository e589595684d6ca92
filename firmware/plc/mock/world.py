"""The PLC side of the mock board: our modem, the powerline, the vehicle's modem and the
vehicle's SLAC client, all in the daemon's process over in-process links.

The composition root builds it for ``[plc] interface = "mock"`` and hands the EVSE end of the
link to the PLC stack, exactly where a raw socket would otherwise go. It follows the virtual
rig through what the mock board reports of its simulated vehicle (the board lives in the
safety process, which sends its plug and PLC modem state on every change): the line carries
frames only while the vehicle is plugged in
(pilot not A), and ``EV:PLC ON`` makes the vehicle's modem join and run SLAC as a PEV (again
after each failed attempt, as a vehicle keeps trying); ``EV:PLC OFF`` or an unplug makes it
leave, which drops the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from firmware.logs import log_event
from firmware.plc.frame import Header
from firmware.plc.link import InProcessLink
from firmware.plc.messages import Message
from firmware.plc.mock.modems import MODEM_EVSE, MODEM_PEV, Knobs, MockModemPair
from firmware.plc.mock.pev_slac import PevSlacClient, PevSlacError
from firmware.plc.modem import ModemClient
from firmware.plc.port import PlcPort

logger = logging.getLogger(__name__)

EVSE_HOST_MAC = bytes.fromhex("02EB5E000001")  # locally administered
PEV_HOST_MAC = bytes.fromhex("02EB5E00EE01")
WATCH_EVERY_S = 0.02
RETRY_AFTER_S = 1.0
PEV_SETTLE_S = 0.05


class MockPlcWorld:
    def __init__(
        self, vehicle: Callable[[], tuple[bool, bool]], knobs: Knobs | None = None
    ) -> None:
        self._vehicle_seen = vehicle  # (plugged, PLC modem on), as the mock board reports it
        self.evse_link, modem_evse = InProcessLink.pair(EVSE_HOST_MAC, MODEM_EVSE)
        self._pev_link, modem_pev = InProcessLink.pair(PEV_HOST_MAC, MODEM_PEV)
        self.modems = MockModemPair(modem_evse, modem_pev, knobs)
        self._pev_port = PlcPort(self._pev_link, self._to_client)
        self._pev_modem = ModemClient(self._pev_port, settle_s=PEV_SETTLE_S, name="pev")
        self._client: PevSlacClient | None = None
        self._vehicle: asyncio.Task[None] | None = None
        self.matches = 0

    async def run(self) -> None:
        """Until cancelled: the modems, the vehicle's port, and the watch on the rig."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.modems.run())
            group.create_task(self._pev_port.run())
            group.create_task(self._watch())

    def _to_client(self, header: Header, message: Message) -> None:
        if self._client is not None:
            self._client.on_message(header, message)

    async def _watch(self) -> None:
        try:
            while True:
                plugged, plc_on = self._vehicle_seen()
                self.modems.knobs.line_connected = plugged
                if plugged and plc_on and self._vehicle is None:
                    log_event(logger, "mock.pev_joins")
                    self._vehicle = asyncio.create_task(self._pev_session())
                elif not (plugged and plc_on) and self._vehicle is not None:
                    await self._leave("unplugged" if not plugged else "plc off")
                await asyncio.sleep(WATCH_EVERY_S)
        finally:
            if self._vehicle is not None:
                self._vehicle.cancel()

    async def _leave(self, why: str) -> None:
        assert self._vehicle is not None
        self._vehicle.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._vehicle
        self._vehicle, self._client = None, None
        self.modems.nmk["pev"] = None  # the vehicle's modem forgets the key
        log_event(logger, "mock.pev_leaves", why=why)

    async def _pev_session(self) -> None:
        """SLAC until matched (retrying as a vehicle does), then stay on the keyed link."""
        while True:
            self._client = PevSlacClient(self._pev_port, self._pev_modem)
            try:
                match = await self._client.match()
            except PevSlacError as err:
                log_event(logger, "mock.pev_slac_failed", logging.WARNING, error=str(err))
                await asyncio.sleep(RETRY_AFTER_S)
                continue
            self.matches += 1
            log_event(logger, "mock.pev_matched", nid=match.nid.hex(),
                      parm_to_match_ms=round(match.parm_to_match_s * 1000, 1))  # fmt: skip
            await asyncio.Event().wait()  # keyed; stays until it leaves
