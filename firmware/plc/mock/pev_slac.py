"""The vehicle's side of SLAC, for tests and the mock mode: PARM, sounding, characterization,
match, then key its own modem with the NMK the EVSE handed over."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from firmware.errors import GatekeeperError
from firmware.plc import cm_messages as cm
from firmware.plc.frame import BROADCAST, Header
from firmware.plc.messages import Message
from firmware.plc.modem import ModemClient
from firmware.plc.port import PlcPort

PARM_TIMEOUT_S = 0.25
PARM_ATTEMPTS = 3
CHAR_TIMEOUT_S = 2.0
MATCH_TIMEOUT_S = 1.0
SOUND_GAP_S = 0.005


class PevSlacError(GatekeeperError):
    """Raised when the vehicle side of SLAC does not complete."""


@dataclass(frozen=True, slots=True)
class PevMatch:
    evse_mac: bytes
    nid: bytes
    nmk: bytes
    parm_to_match_s: float  # our SLAC_PARM.REQ sent -> the EVSE's SLAC_MATCH.CNF received
    sound_to_char_s: float  # our 10th sound sent -> the EVSE's ATTEN_CHAR.IND received


class PevSlacClient:
    def __init__(
        self,
        port: PlcPort,
        modem: ModemClient,
        run_id: bytes | None = None,
        ignore_chars: int = 0,
        stop_after_sounds: bool = False,
    ) -> None:
        self.port = port
        self.modem = modem
        self.run_id = run_id or secrets.token_bytes(8)
        self.ignore_chars = (
            ignore_chars  # fault knob: pretend the first N ATTEN_CHAR.INDs were lost
        )
        self.stop_after_sounds = stop_after_sounds  # fault knob: the vehicle leaves mid-match
        self.inbox: asyncio.Queue[tuple[Header, Message]] = asyncio.Queue()

    def on_message(self, header: Header, message: Message) -> None:
        """The port's callback: unsolicited frames from the EVSE (ATTEN_CHAR.IND)."""
        self.inbox.put_nowait((header, message))

    async def match(self) -> PevMatch:
        me, run = self.port.link.mac, self.run_id
        clock = asyncio.get_running_loop().time
        started = clock()
        evse_mac = await self._parm(me, run)
        for _ in range(3):
            self.port.send(BROADCAST, cm.StartAttenCharInd(0, 0, 10, 6, 1, me, run))
        for count in range(9, -1, -1):
            rnd = secrets.token_bytes(16)
            self.port.send(BROADCAST, cm.MnbcSoundInd(0, 0, bytes(17), count, run, bytes(8), rnd))
            if count:
                await asyncio.sleep(SOUND_GAP_S)
        last_sound = clock()
        if self.stop_after_sounds:
            raise PevSlacError("stopped after sounding (fault knob)")
        for _ in range(self.ignore_chars + 1):
            await self._expect(cm.AttenCharInd, CHAR_TIMEOUT_S)
        characterized = clock()
        self.port.send(evse_mac, cm.AttenCharRsp(0, 0, me, run, bytes(17), bytes(17), 0))
        request = cm.SlacMatchReq(0, 0, cm.MVF_MATCH_REQ, bytes(17), me, bytes(17), evse_mac, run,
                                  bytes(8))  # fmt: skip
        reply = await self.port.request(evse_mac, request, cm.SlacMatchCnf, MATCH_TIMEOUT_S)
        matched = clock()
        assert isinstance(reply, cm.SlacMatchCnf)
        if reply.run_id != run or reply.pev_mac != me:
            raise PevSlacError("SLAC_MATCH.CNF names another session")
        await self.modem.set_key(reply.nmk)
        return PevMatch(
            evse_mac, reply.nid, reply.nmk, matched - started, characterized - last_sound
        )

    async def _parm(self, me: bytes, run: bytes) -> bytes:
        for _ in range(PARM_ATTEMPTS):
            try:
                header, reply = await self.port.exchange(
                    BROADCAST, cm.SlacParmReq(0, 0, run), cm.SlacParmCnf, PARM_TIMEOUT_S
                )
            except GatekeeperError:
                continue
            assert isinstance(reply, cm.SlacParmCnf)
            if reply.run_id == run and reply.forwarding_sta == me:
                return header.src
        raise PevSlacError("no SLAC_PARM.CNF")

    async def _expect(self, kind: type[Message], timeout_s: float) -> Message:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                _header, message = await asyncio.wait_for(self.inbox.get(), max(remaining, 0))
            except TimeoutError:
                raise PevSlacError(f"no {kind.__name__} in time") from None
            if isinstance(message, kind):
                return message
