"""SLAC end to end in one process: the EVSE's SLAC service and modem client, the mock modem
pair with the line between them, and the PEV client, over in-process links (the laptop mock
mode's wiring). Real asyncio time, real frames through the codec."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from firmware.plc.keys import new_nmk
from firmware.plc.link import InProcessLink
from firmware.plc.mock.modems import MODEM_EVSE, MODEM_PEV, Knobs, MockModemPair
from firmware.plc.mock.pev_slac import PevSlacClient
from firmware.plc.modem import ModemClient
from firmware.plc.port import PlcPort
from firmware.plc.service import SlacService
from firmware.plc.slac import Matched, SlacEvse

pytestmark = pytest.mark.integration

EVSE_MAC = bytes.fromhex("02EEEEEEEE01")
PEV_MAC = bytes.fromhex("02AAAAAAAA01")
IPV6_FRAME = EVSE_MAC + PEV_MAC + b"\x86\xdd" + bytes(60)


@dataclass
class Bench:
    service: SlacService
    pev: PevSlacClient
    mock: MockModemPair
    evse_host: InProcessLink
    events: list[object]


def run(scenario: Callable[[Bench], Awaitable[None]], knobs: Knobs | None = None) -> None:
    async def main() -> None:
        evse_host, modem_evse_end = InProcessLink.pair(EVSE_MAC, MODEM_EVSE)
        pev_host, modem_pev_end = InProcessLink.pair(PEV_MAC, MODEM_PEV)
        mock = MockModemPair(modem_evse_end, modem_pev_end, knobs)
        events: list[object] = []
        evse_port = PlcPort(evse_host, lambda h, m: service.on_message(h, m))
        service = SlacService(
            SlacEvse(EVSE_MAC, new_nmk, 40_000_000_000),
            evse_port,
            ModemClient(evse_port, settle_s=0.01),
            events.append,
        )
        pev_port = PlcPort(pev_host, lambda h, m: pev.on_message(h, m))
        pev = PevSlacClient(pev_port, ModemClient(pev_port, settle_s=0.01))
        tasks = [
            asyncio.create_task(coro)
            for coro in (mock.run(), evse_port.run(), pev_port.run(), service.run())
        ]
        try:
            for _ in range(100):  # the boot SET_KEY
                if mock.nmk["evse"] is not None:
                    break
                await asyncio.sleep(0.01)
            assert mock.nmk["evse"] is not None, "the EVSE keys its modem at boot"
            await asyncio.wait_for(scenario(Bench(service, pev, mock, evse_host, events)), 10)
        finally:
            for task in tasks:
                task.cancel()

    asyncio.run(main())


async def ipv6_crosses(bench: Bench) -> bool:
    """Send an IPv6 frame from the PEV host; did it reach the EVSE host? (The EVSE's port
    reads every frame on the in-process link and counts a non-HomePlug one as malformed.)"""
    port = bench.service.port
    before = port.malformed
    bench.pev.port.link.send(IPV6_FRAME)
    await asyncio.sleep(0.05)
    return port.malformed == before + 1 and "0x86DD" in port.last_error


def test_a_full_match_keys_both_modems_and_opens_ipv6() -> None:
    async def scenario(bench: Bench) -> None:
        assert not await ipv6_crosses(bench), "no IPv6 before both sides are keyed"
        bench.service.plugged_in()
        match = await bench.pev.match()
        assert match.evse_mac == EVSE_MAC
        assert match.nmk == bench.mock.nmk["evse"] and bench.mock.keyed
        assert any(isinstance(e, Matched) and e.ev_mac == PEV_MAC for e in bench.events)
        assert await bench.pev.modem.link_up() is True
        (network,) = await bench.service.modem.network_info()
        assert network.nid == match.nid, "our modem's network is the one the vehicle joined"
        assert [sta.mac for sta in network.stations] == [MODEM_PEV]
        assert await ipv6_crosses(bench)
        old_key = bench.mock.nmk["evse"]
        bench.service.unplugged()  # re-key: the vehicle is evicted
        for _ in range(100):
            if bench.mock.nmk["evse"] != old_key:
                break
            await asyncio.sleep(0.01)
        assert not bench.mock.keyed and await bench.pev.modem.link_up() is False
        assert not await ipv6_crosses(bench)

    run(scenario)


def test_lost_sounds_still_match_on_the_deadline() -> None:
    async def scenario(bench: Bench) -> None:
        bench.service.plugged_in()
        match = await bench.pev.match()
        assert match.nmk == bench.mock.nmk["evse"]
        session = bench.service.slac.matched
        assert session is not None and len(session.profiles) == 7

    run(scenario, Knobs(drop_sounds={2, 5, 7}))


def test_duplicated_sounds_do_not_break_the_match() -> None:
    async def scenario(bench: Bench) -> None:
        bench.service.plugged_in()
        assert (await bench.pev.match()).nmk == bench.mock.nmk["evse"]

    run(scenario, Knobs(duplicate_sounds=True))


def test_reordered_sounds_all_count() -> None:
    async def scenario(bench: Bench) -> None:
        bench.service.plugged_in()
        assert (await bench.pev.match()).nmk == bench.mock.nmk["evse"]
        session = bench.service.slac.matched
        assert session is not None and len(session.profiles) == 10

    run(scenario, Knobs(reorder_sounds=True))


def test_a_second_ev_sounding_at_once_is_characterized_apart_and_never_matched() -> None:
    async def scenario(bench: Bench) -> None:
        bench.service.plugged_in()
        match = await bench.pev.match()
        assert match.nmk == bench.mock.nmk["evse"]
        second = bench.mock.second_ev
        assert second is not None
        await asyncio.wait_for(second.done.wait(), 5)
        assert second.received.get("AttenCharInd") == 1, "its own characterization"
        assert "SlacMatchCnf" not in second.received
        matched = [e for e in bench.events if isinstance(e, Matched)]
        assert [e.ev_mac for e in matched] == [PEV_MAC]
        session = bench.service.slac.matched
        assert session is not None and len(session.profiles) == 10, "no profile of the other"
        assert set(session.atten_char.aag if session.atten_char else b"") == {20}

    run(scenario, Knobs(second_ev=True))
