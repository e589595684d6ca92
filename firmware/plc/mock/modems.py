"""A mock of the two modems and the powerline between an EVSE host and a PEV host.

Each host talks to its own modem (SET_KEY, link status, version, reset), which answers
requests sent to the localcast address, to its own MAC or to broadcast, as a Qualcomm modem
does, and echoes the request's nonce in SET_KEY.CNF. SLAC frames cross the line unkeyed, as
they do for real, and so does any MME the modem cannot decode (it bridges what it does not
consume). For every MNBC_SOUND.IND from the PEV, the EVSE's modem reports one
ATTEN_PROFILE.IND (58 groups, or none as some other makes send) and, like a QCA7005, one
sound notice (0xA14E). Anything that is not an MME (IPv6) crosses only while both modems hold
the same NMK. Fault knobs: drop, duplicate or reorder sounds, a delay on every crossing, and
a second EV: a vehicle at the neighbouring charger whose SLAC crosstalks onto our line at the
same time as ours (weaker, and matching with its own EVSE). docs/homeplug-slac.md "Testing
without hardware".
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field

from firmware.errors import ProtocolError
from firmware.plc import cm_messages as cm
from firmware.plc import vs_messages as vs
from firmware.plc.codec import decode, encode
from firmware.plc.frame import BROADCAST, ETHERTYPE_HOMEPLUG, LOCALCAST, Header
from firmware.plc.keys import nid_from_nmk
from firmware.plc.link import FrameLink
from firmware.plc.messages import Message

MODEM_EVSE = bytes.fromhex("00B052000E5E")
MODEM_PEV = bytes.fromhex("00B0520000EF")
SECOND_EV = bytes.fromhex("0A5ECE000002")  # the neighbour's vehicle
SECOND_EVSE = bytes.fromhex("02E5E0000002")  # the neighbour's charger, which it matches
SECOND_EV_ATTENUATION_DB = 45  # crosstalk: much weaker than our own vehicle
MODEM_NONCE = 0x51A7C0DE  # the modem's own nonce in SET_KEY.CNF (MyNonce)
MODEM_REQUESTS = (cm.SetKeyReq, vs.VsPlLinkStatusReq, vs.VsNwInfoReq, vs.VsSwVerReq, vs.VsRsDevReq)


@dataclass
class Knobs:
    set_key_result: int = 1
    drop_sounds: set[int] = field(default_factory=set)  # by CNT (9 .. 0)
    duplicate_sounds: bool = False
    reorder_sounds: bool = False  # swap each pair of sounds on the line
    second_ev: bool = False
    delay_s: float = 0.0
    attenuation_db: int = 20
    empty_profiles: bool = False  # a modem of another make: NumGroups 0, nothing measured
    line_connected: bool = True  # the cable is plugged in: nothing crosses otherwise


class MockModemPair:
    def __init__(
        self, evse_side: FrameLink, pev_side: FrameLink, knobs: Knobs | None = None
    ) -> None:
        self.evse_side, self.pev_side = evse_side, pev_side
        self.knobs = knobs or Knobs()
        self.nmk: dict[str, bytes | None] = {"evse": None, "pev": None}
        self.host_mac: dict[str, bytes] = {"evse": BROADCAST, "pev": BROADCAST}
        self.crossed = 0
        self.second_ev: SecondEv | None = None
        self._second_ev_task: asyncio.Task[None] | None = None
        self._held: tuple[cm.MnbcSoundInd, bytes, bytes] | None = None

    @property
    def keyed(self) -> bool:
        same = self.nmk["evse"] is not None and self.nmk["evse"] == self.nmk["pev"]
        return same and self.knobs.line_connected

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._serve("evse", self.evse_side, self.pev_side, MODEM_EVSE))
            group.create_task(self._serve("pev", self.pev_side, self.evse_side, MODEM_PEV))

    async def _serve(self, side: str, host: FrameLink, line: FrameLink, modem_mac: bytes) -> None:
        while True:
            frame = await host.recv()
            ethertype = int.from_bytes(frame[12:14], "big")
            if ethertype != ETHERTYPE_HOMEPLUG:
                if self.keyed:
                    await self._cross(line, frame)
                continue
            try:
                header, msg = decode(frame)
            except ProtocolError:
                if frame[0:6] not in (LOCALCAST, modem_mac):
                    await self._cross(line, frame)  # not ours to consume: bridged as it is
                continue
            self.host_mac[side] = header.src
            await self._route(side, host, line, modem_mac, frame, header, msg)

    async def _route(
        self, side: str, host: FrameLink, line: FrameLink, modem_mac: bytes, frame: bytes,
        header: Header, msg: Message,
    ) -> None:  # fmt: skip
        """A decoded MME from a host: the modem's own, a sound, the neighbour's, or the line's."""
        if header.dst in (LOCALCAST, modem_mac) or (
            header.dst == BROADCAST and isinstance(msg, MODEM_REQUESTS)
        ):
            self._answer(side, host, header.src, modem_mac, msg)
        elif side == "pev" and isinstance(msg, cm.MnbcSoundInd):
            await self._sound(msg, frame, header.src)
        elif side == "evse" and header.dst == SECOND_EV and self.second_ev:
            self.second_ev.inbox.put_nowait((header, msg))  # to the neighbour's car
        else:
            if side == "pev" and isinstance(msg, cm.SlacParmReq):
                self._start_second_ev()
            await self._cross(line, frame)

    def _answer(self, side: str, host: FrameLink, dst: bytes, me: bytes, msg: Message) -> None:
        reply: Message | None = None
        if isinstance(msg, cm.SetKeyReq):
            if self.knobs.set_key_result in (0, 1):
                self.nmk[side] = msg.nmk
            # YourNonce: the nonce the request carried as its MyNonce, echoed
            reply = cm.SetKeyCnf(self.knobs.set_key_result, MODEM_NONCE, msg.my_nonce, 4, 0, 0, 0)
        elif isinstance(msg, vs.VsPlLinkStatusReq):
            reply = vs.VsPlLinkStatusCnf(0, 1 if self.keyed else 0)
        elif isinstance(msg, vs.VsNwInfoReq):
            reply = vs.VsNwInfoCnf(self._networks(side))
        elif isinstance(msg, vs.VsSwVerReq):
            reply = vs.VsSwVerCnf(0, 0x20, "MOCK-QCA7000-1.0")
        elif isinstance(msg, vs.VsRsDevReq):
            reply = vs.VsRsDevCnf(0)
        if reply is not None:
            host.send(encode(reply, dst, me))

    def _networks(self, side: str) -> tuple[vs.NwNetwork, ...]:
        """One network once keyed, its other member the far modem; none before."""
        nmk = self.nmk[side]
        if nmk is None:
            return ()
        me, peer = ("evse", "pev") if side == "evse" else ("pev", "evse")
        stations: tuple[vs.NwStation, ...] = ()
        if self.keyed:
            peer_modem = MODEM_PEV if peer == "pev" else MODEM_EVSE
            stations = (vs.NwStation(peer_modem, 2, self.host_mac[peer], 9, 9),)
        cco = MODEM_EVSE if me == "evse" else MODEM_PEV
        return (vs.NwNetwork(nid_from_nmk(nmk), 1, 1, 2, cco, 1, stations),)

    def _start_second_ev(self) -> None:
        if self.knobs.second_ev and self.second_ev is None:
            self.second_ev = SecondEv(self)
            self._second_ev_task = asyncio.get_running_loop().create_task(self.second_ev.run())

    async def _sound(self, msg: cm.MnbcSoundInd, frame: bytes, pev_mac: bytes) -> None:
        if msg.cnt in self.knobs.drop_sounds or not self.knobs.line_connected:
            return
        if self.knobs.reorder_sounds:
            held, self._held = self._held, None
            if held is None and msg.cnt != 0:
                self._held = (msg, frame, pev_mac)  # goes out after the next one
                return
            await self.deliver_sound(frame, pev_mac, self.knobs.attenuation_db)
            if held is not None:
                await self.deliver_sound(held[1], held[2], self.knobs.attenuation_db)
            return
        for _ in range(2 if self.knobs.duplicate_sounds else 1):
            await self.deliver_sound(frame, pev_mac, self.knobs.attenuation_db)

    async def deliver_sound(self, frame: bytes, pev_mac: bytes, attenuation_db: int) -> None:
        """The sound reaches the EVSE host, and our modem reports what it measured on it."""
        await self._cross(self.evse_side, frame)
        groups = 0 if self.knobs.empty_profiles else cm.NUM_GROUPS
        profile = cm.AttenProfileInd(pev_mac, groups, 0, bytes([attenuation_db]) * groups)
        host = self.host_mac["evse"]
        self.evse_side.send(encode(profile, host, MODEM_EVSE))
        if not self.knobs.empty_profiles:  # a QCA7005's notice with every sound
            self.evse_side.send(encode(vs.QcaSoundNotice(bytes(40)), host, MODEM_EVSE))

    async def _cross(self, line: FrameLink, frame: bytes) -> None:
        if self.knobs.delay_s:
            await asyncio.sleep(self.knobs.delay_s)
        if not self.knobs.line_connected:
            return
        self.crossed += 1
        line.send(frame)


class SecondEv:
    """The neighbour's vehicle, heard through crosstalk: it runs its whole SLAC against the
    EVSE host at the same time as ours, then asks its own charger for the match. It records
    what our EVSE answered it; a correct EVSE never sends it a SLAC_MATCH.CNF."""

    PARM_TIMEOUT_S = 1.0
    CHAR_TIMEOUT_S = 2.0
    MATCH_WAIT_S = 1.0

    def __init__(self, pair: MockModemPair) -> None:
        self.pair = pair
        self.run_id = secrets.token_bytes(8)
        self.inbox: asyncio.Queue[tuple[Header, Message]] = asyncio.Queue()
        self.received: dict[str, int] = {}
        self.done = asyncio.Event()

    def _send(self, message: Message) -> None:
        self.pair.evse_side.send(encode(message, BROADCAST, SECOND_EV))

    async def run(self) -> None:
        me, run = SECOND_EV, self.run_id
        try:
            self._send(cm.SlacParmReq(0, 0, run))
            await self._expect(cm.SlacParmCnf, self.PARM_TIMEOUT_S)
            for _ in range(3):
                self._send(cm.StartAttenCharInd(0, 0, 10, 6, 1, me, run))
            for count in range(9, -1, -1):
                sound = cm.MnbcSoundInd(0, 0, bytes(17), count, run, bytes(8), bytes(16))
                frame = encode(sound, BROADCAST, me)
                await self.pair.deliver_sound(frame, me, SECOND_EV_ATTENUATION_DB)
                await asyncio.sleep(0.004)
            await self._expect(cm.AttenCharInd, self.CHAR_TIMEOUT_S)
            rsp = cm.AttenCharRsp(0, 0, me, run, bytes(17), bytes(17), 0)
            self.pair.evse_side.send(encode(rsp, self.pair.host_mac["evse"], me))
            request = cm.SlacMatchReq(0, 0, cm.MVF_MATCH_REQ, bytes(17), me, bytes(17),
                                      SECOND_EVSE, run, bytes(8))  # fmt: skip
            self.pair.evse_side.send(encode(request, self.pair.host_mac["evse"], me))
            with contextlib.suppress(TimeoutError):  # a correct EVSE stays silent now
                await self._expect(cm.SlacMatchCnf, self.MATCH_WAIT_S)
        except TimeoutError:
            pass
        finally:
            self.done.set()

    async def _expect(self, kind: type[Message], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                _header, message = await self.inbox.get()
                name = type(message).__name__
                self.received[name] = self.received.get(name, 0) + 1
                if isinstance(message, kind):
                    return
