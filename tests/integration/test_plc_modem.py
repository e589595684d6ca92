"""The modem client and the port, against a scripted modem on an in-process link (real
asyncio time: the timeout test waits out the 1 s SET_KEY timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from firmware.plc import cm_messages as cm
from firmware.plc import vs_messages as vs
from firmware.plc.codec import decode, encode
from firmware.plc.frame import BROADCAST, LOCALCAST
from firmware.plc.keys import nid_from_nmk
from firmware.plc.link import InProcessLink
from firmware.plc.messages import Message
from firmware.plc.modem import ModemClient, ModemError
from firmware.plc.port import PlcPort, RequestTimeout

pytestmark = pytest.mark.integration

HOST = bytes.fromhex("020000000010")
MODEM = bytes.fromhex("00B052AABBCC")
NMK = bytes(range(16))
PEER = bytes.fromhex("00B0520000EF")
NETWORKS = (
    vs.NwNetwork(nid_from_nmk(NMK), 1, 1, 2, MODEM, 1, (vs.NwStation(PEER, 2, HOST, 9, 9),)),
)


class ScriptedModem:
    """Answers requests like a QCA7000 would; records what it saw."""

    def __init__(self, link: InProcessLink, set_key_result: int = 1, delay_s: float = 0.0) -> None:
        self.link = link
        self.set_key_result = set_key_result
        self.delay_s = delay_s
        self.seen: list[tuple[bytes, Message]] = []
        self.answer = True
        self.keys_in_flight = 0
        self.max_keys_in_flight = 0

    async def run(self) -> None:
        while True:
            header, msg = decode(await self.link.recv())
            self.seen.append((header.dst, msg))
            if isinstance(msg, cm.SetKeyReq):
                self.keys_in_flight += 1
                self.max_keys_in_flight = max(self.max_keys_in_flight, self.keys_in_flight)
            asyncio.get_running_loop().create_task(self._answer(header.src, msg))

    async def _answer(self, dst: bytes, msg: Message) -> None:
        await asyncio.sleep(self.delay_s)
        replies: dict[type, Message] = {
            cm.SetKeyReq: cm.SetKeyCnf(self.set_key_result, 0, 0, 4, 0, 0, 0),
            vs.VsPlLinkStatusReq: vs.VsPlLinkStatusCnf(0, 1),
            vs.VsSwVerReq: vs.VsSwVerCnf(0, 0x20, "MAC-QCA7000-1.2.5"),
            vs.VsRsDevReq: vs.VsRsDevCnf(0),
            vs.VsNwInfoReq: vs.VsNwInfoCnf(NETWORKS),
        }
        if isinstance(msg, cm.SetKeyReq):
            self.keys_in_flight -= 1
        if self.answer and type(msg) in replies:
            self.link.send(encode(replies[type(msg)], dst, MODEM))


def with_modem(
    scenario: Callable[[ModemClient, ScriptedModem, PlcPort], Awaitable[None]], **modem: Any
) -> None:
    async def main() -> None:
        host_end, modem_end = InProcessLink.pair(HOST, MODEM)
        others: list[Message] = []
        port = PlcPort(host_end, lambda header, msg: others.append(msg))
        fake = ScriptedModem(modem_end, **modem)
        tasks = [asyncio.create_task(port.run()), asyncio.create_task(fake.run())]
        try:
            await scenario(ModemClient(port, settle_s=0.01), fake, port)
        finally:
            for task in tasks:
                task.cancel()

    asyncio.run(main())


@pytest.mark.parametrize("result", [0, 1])
def test_set_key_goes_to_localcast_and_accepts_0_and_1(result: int) -> None:
    async def scenario(client: ModemClient, fake: ScriptedModem, port: PlcPort) -> None:
        assert await client.set_key(NMK) == result
        ((dst, request),) = fake.seen
        assert dst == LOCALCAST and dst != BROADCAST
        assert request == cm.SetKeyReq(1, 0, 0, 4, 0, 0, 0, nid_from_nmk(NMK), 1, NMK)

    with_modem(scenario, set_key_result=result)


def test_set_key_refused_with_another_result() -> None:
    async def scenario(client: ModemClient, fake: ScriptedModem, port: PlcPort) -> None:
        with pytest.raises(ModemError, match="result 2"):
            await client.set_key(NMK)

    with_modem(scenario, set_key_result=2)


def test_set_key_is_single_flight() -> None:
    async def scenario(client: ModemClient, fake: ScriptedModem, port: PlcPort) -> None:
        await asyncio.gather(*(client.set_key(NMK) for _ in range(3)))
        assert len(fake.seen) == 3 and fake.max_keys_in_flight == 1

    with_modem(scenario, delay_s=0.02)


def test_a_silent_modem_times_out_in_about_a_second() -> None:
    async def scenario(client: ModemClient, fake: ScriptedModem, port: PlcPort) -> None:
        fake.answer = False
        started = asyncio.get_running_loop().time()
        with pytest.raises(RequestTimeout, match="SetKeyCnf"):
            await client.set_key(NMK)
        assert 0.9 <= asyncio.get_running_loop().time() - started < 2.0

    with_modem(scenario)


def test_link_status_version_and_reset() -> None:
    async def scenario(client: ModemClient, fake: ScriptedModem, port: PlcPort) -> None:
        assert await client.link_up() is True
        assert await client.software_version() == "MAC-QCA7000-1.2.5"
        assert await client.network_info() == NETWORKS
        await client.reset()
        assert all(dst == LOCALCAST for dst, _ in fake.seen)

    with_modem(scenario)


def test_a_flood_of_malformed_frames_is_counted_and_does_not_stop_the_port() -> None:
    async def scenario(client: ModemClient, fake: ScriptedModem, port: PlcPort) -> None:
        for n in range(1000):
            fake.link.send(bytes([n % 256]) * (n % 130))
        await asyncio.sleep(0.05)
        assert port.malformed == 1000
        assert await client.link_up() is True, "the port still works"

    with_modem(scenario)
