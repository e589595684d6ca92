"""A mock of the two modems and the powerline between an EVSE host and a PEV host.

Each host talks to its own modem on the localcast address (SET_KEY, link status, version,
reset). SLAC frames cross the line unkeyed, as they do for real; for every MNBC_SOUND.IND
from the PEV, the EVSE's modem reports one ATTEN_PROFILE.IND to its host. Anything that is
not an MME (IPv6) crosses only while both modems hold the same NMK. Fault knobs: drop or
duplicate sounds, and a delay on every crossing. reference/homeplug-slac.md "Testing
without hardware".
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from firmware.errors import ProtocolError
from firmware.plc import cm_messages as cm
from firmware.plc import vs_messages as vs
from firmware.plc.codec import decode, encode
from firmware.plc.frame import BROADCAST, ETHERTYPE_HOMEPLUG, LOCALCAST
from firmware.plc.link import Link
from firmware.plc.messages import Message

MODEM_EVSE = bytes.fromhex("00B052000E5E")
MODEM_PEV = bytes.fromhex("00B0520000EF")


@dataclass
class Knobs:
    set_key_result: int = 1
    drop_sounds: set[int] = field(default_factory=set)  # by CNT (9 .. 0)
    duplicate_sounds: bool = False
    delay_s: float = 0.0
    attenuation_db: int = 20
    line_connected: bool = True  # the cable is plugged in: nothing crosses otherwise


class MockModemPair:
    def __init__(self, evse_side: Link, pev_side: Link, knobs: Knobs | None = None) -> None:
        self.evse_side, self.pev_side = evse_side, pev_side
        self.knobs = knobs or Knobs()
        self.nmk: dict[str, bytes | None] = {"evse": None, "pev": None}
        self.host_mac: dict[str, bytes] = {"evse": BROADCAST, "pev": BROADCAST}
        self.crossed = 0

    @property
    def keyed(self) -> bool:
        same = self.nmk["evse"] is not None and self.nmk["evse"] == self.nmk["pev"]
        return same and self.knobs.line_connected

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._serve("evse", self.evse_side, self.pev_side, MODEM_EVSE))
            group.create_task(self._serve("pev", self.pev_side, self.evse_side, MODEM_PEV))

    async def _serve(self, side: str, host: Link, line: Link, modem_mac: bytes) -> None:
        while True:
            frame = await host.recv()
            ethertype = int.from_bytes(frame[12:14], "big")
            if ethertype != ETHERTYPE_HOMEPLUG:
                if self.keyed:
                    await self._cross(line, frame)
                continue
            with contextlib.suppress(ProtocolError):
                header, msg = decode(frame)
                self.host_mac[side] = header.src
                if header.dst == LOCALCAST:
                    self._answer(side, host, header.src, modem_mac, msg)
                elif side == "pev" and isinstance(msg, cm.MnbcSoundInd):
                    await self._sound(msg, frame, header.src)
                else:
                    await self._cross(line, frame)

    def _answer(self, side: str, host: Link, dst: bytes, me: bytes, msg: Message) -> None:
        reply: Message | None = None
        if isinstance(msg, cm.SetKeyReq):
            if self.knobs.set_key_result in (0, 1):
                self.nmk[side] = msg.nmk
            reply = cm.SetKeyCnf(self.knobs.set_key_result, 0, 0, 4, 0, 0, 0)
        elif isinstance(msg, vs.VsPlLinkStatusReq):
            reply = vs.VsPlLinkStatusCnf(0, 1 if self.keyed else 0)
        elif isinstance(msg, vs.VsSwVerReq):
            reply = vs.VsSwVerCnf(0, 0x20, "MOCK-QCA7000-1.0")
        elif isinstance(msg, vs.VsRsDevReq):
            reply = vs.VsRsDevCnf(0)
        if reply is not None:
            host.send(encode(reply, dst, me))

    async def _sound(self, msg: cm.MnbcSoundInd, frame: bytes, pev_mac: bytes) -> None:
        if msg.cnt in self.knobs.drop_sounds or not self.knobs.line_connected:
            return
        for _ in range(2 if self.knobs.duplicate_sounds else 1):
            await self._cross(self.evse_side, frame)
            aag = bytes([self.knobs.attenuation_db]) * cm.NUM_GROUPS
            profile = cm.AttenProfileInd(pev_mac, cm.NUM_GROUPS, 0, aag)
            self.evse_side.send(encode(profile, self.host_mac["evse"], MODEM_EVSE))

    async def _cross(self, line: Link, frame: bytes) -> None:
        if self.knobs.delay_s:
            await asyncio.sleep(self.knobs.delay_s)
        if not self.knobs.line_connected:
            return
        self.crossed += 1
        line.send(frame)
