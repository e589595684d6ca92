"""The QCA7000/7005 modem client: keying, link status, software version, reset.

Every request goes to the Qualcomm localcast address, never to broadcast (a bridged consumer
powerline adapter would take the key too). SET_KEY is single-flight with a 1 s timeout; its
result 1 (Qualcomm, HomePlug AV 1.0) and 0 (others) both mean success and the log says which;
afterwards the modem restarts for about a second, so the client waits that out before the
next request. docs/homeplug-slac.md "The modem" and "Sequence and timing".
"""

from __future__ import annotations

import asyncio
import logging

from firmware.errors import GatekeeperError
from firmware.logs import log_event
from firmware.plc import cm_messages as cm
from firmware.plc import vs_messages as vs
from firmware.plc.frame import LOCALCAST
from firmware.plc.keys import nid_from_nmk
from firmware.plc.messages import Message
from firmware.plc.port import PlcPort

logger = logging.getLogger(__name__)

SET_KEY_TIMEOUT_S = 1.0
SET_KEY_SETTLE_S = 1.0  # the modem restarts after a new key (carrier flap ~1 s)
REQUEST_TIMEOUT_S = 1.0
SET_KEY_RESULTS = {1: "success (Qualcomm, HomePlug AV 1.0)", 0: "success (result 0)"}
KEY_TYPE_NMK = 1
PID_HLE = 4
NEW_EKS = 1


class ModemError(GatekeeperError):
    """Raised when the modem refuses a request or answers it badly."""


class ModemClient:
    def __init__(
        self, port: PlcPort, settle_s: float = SET_KEY_SETTLE_S, name: str = "evse"
    ) -> None:
        self._port = port
        self.name = name  # whose modem, in the log (the mock mode runs the vehicle's too)
        self._settle_s = settle_s
        self._keying = asyncio.Lock()

    async def set_key(self, nmk: bytes) -> int:
        """Key the local modem; returns the result code it answered (0 or 1)."""
        async with self._keying:  # never two SET_KEYs in flight
            request = cm.SetKeyReq(
                KEY_TYPE_NMK, 0, 0, PID_HLE, 0, 0, 0, nid_from_nmk(nmk), NEW_EKS, nmk
            )
            reply = await self._port.request(LOCALCAST, request, cm.SetKeyCnf, SET_KEY_TIMEOUT_S)
            assert isinstance(reply, cm.SetKeyCnf)
            meaning = SET_KEY_RESULTS.get(reply.result)
            if meaning is None:
                raise ModemError(f"SET_KEY refused with result {reply.result}")
            log_event(logger, "plc.set_key", modem=self.name, result=reply.result, meaning=meaning)
            await asyncio.sleep(self._settle_s)
            return reply.result

    async def link_up(self) -> bool:
        reply = await self._request(vs.VsPlLinkStatusReq(), vs.VsPlLinkStatusCnf)
        assert isinstance(reply, vs.VsPlLinkStatusCnf)
        if reply.status != 0:
            raise ModemError(f"link status request failed with status {reply.status}")
        return reply.link == 1

    async def network_info(self) -> tuple[vs.NwNetwork, ...]:
        """The networks the modem belongs to, with their stations (who shares our key)."""
        reply = await self._request(vs.VsNwInfoReq(), vs.VsNwInfoCnf)
        assert isinstance(reply, vs.VsNwInfoCnf)
        return reply.networks

    async def software_version(self) -> str:
        reply = await self._request(vs.VsSwVerReq(), vs.VsSwVerCnf)
        assert isinstance(reply, vs.VsSwVerCnf)
        if reply.status != 0:
            raise ModemError(f"version request failed with status {reply.status}")
        return reply.version

    async def reset(self) -> None:
        reply = await self._request(vs.VsRsDevReq(), vs.VsRsDevCnf)
        assert isinstance(reply, vs.VsRsDevCnf)
        if reply.status != 0:
            raise ModemError(f"reset refused with status {reply.status}")

    async def _request(self, message: Message, reply: type[Message]) -> Message:
        async with self._keying:  # not while the modem restarts after a new key
            return await self._port.request(LOCALCAST, message, reply, REQUEST_TIMEOUT_S)
