"""SLAC end to end in one process: the EVSE's SLAC service and modem client, the mock modem
pair with the line between them, and the PEV client, over in-process links (the laptop mock
mode's wiring). Real asyncio time, real frames through the codec."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from firmware.plc import cm_messages as cm
from firmware.plc import vs_messages as vs
from firmware.plc.attenuation import UNMEASURED_AAG_DB
from firmware.plc.frame import BROADCAST, build_frame
from firmware.plc.keys import new_nmk
from firmware.plc.link import InProcessLink
from firmware.plc.mock.modems import MODEM_EVSE, MODEM_NONCE, MODEM_PEV, Knobs, MockModemPair
from firmware.plc.mock.pev_slac import PevSlacClient
from firmware.plc.modem import ModemClient
from firmware.plc.port import PlcPort
from firmware.plc.service import SlacService
from firmware.plc.slac import Matched, SlacEvse

pytestmark = pytest.mark.integration

EVSE_MAC = bytes.fromhex("02EEEEEEEE01")
PEV_MAC = bytes.fromhex("02AAAAAAAA01")
IPV6_FRAME = EVSE_MAC + PEV_MAC + b"\x86\xdd" + bytes(60)


class RecordingLink(InProcessLink):
    """An in-process link end that keeps every frame its host sends."""

    def __init__(self, mac: bytes) -> None:
        super().__init__(mac)
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.sent.append(bytes(frame))
        super().send(frame)


@dataclass
class Bench:
    service: SlacService
    pev: PevSlacClient
    mock: MockModemPair
    evse_host: RecordingLink
    events: list[object]


def run(scenario: Callable[[Bench], Awaitable[None]], knobs: Knobs | None = None) -> None:
    async def main() -> None:
        evse_host, modem_evse_end = RecordingLink.pair(EVSE_MAC, MODEM_EVSE)
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


def test_a_vehicle_that_starts_slac_over_after_a_match_is_matched_again() -> None:
    """A real car restarted SLAC while on the logical network (new RunID, still plugged in):
    it is served a new matching, with the key it already holds, and the link stays up."""

    async def scenario(bench: Bench) -> None:
        bench.service.plugged_in()
        first, first_run = await bench.pev.match(), bench.pev.run_id
        bench.pev.run_id = secrets.token_bytes(8)  # the vehicle's SLAC stack starts over
        second = await bench.pev.match()
        assert second.nmk == first.nmk == bench.mock.nmk["evse"], "no re-key while matching"
        matched = [e for e in bench.events if isinstance(e, Matched)]
        assert [(e.ev_mac, e.run_id) for e in matched] == [
            (PEV_MAC, first_run),
            (PEV_MAC, bench.pev.run_id),
        ]
        assert bench.mock.keyed and await ipv6_crosses(bench)

    run(scenario)


def test_a_modem_that_sends_empty_60_byte_profiles_still_matches_without_zeros() -> None:
    async def scenario(bench: Bench) -> None:
        bench.service.plugged_in()
        assert (await bench.pev.match()).nmk == bench.mock.nmk["evse"]
        assert bench.service.port.malformed == 0, "60-byte profiles are not malformed"
        session = bench.service.slac.matched
        assert session is not None and session.atten_char is not None
        assert session.atten_char.num_sounds == 10, "the sounds heard, not 0"
        assert set(session.atten_char.aag) == {UNMEASURED_AAG_DB}

    run(scenario, Knobs(empty_profiles=True))


def test_the_qca7005_sound_notices_are_counted_apart_not_as_malformed() -> None:
    async def scenario(bench: Bench) -> None:
        bench.service.plugged_in()
        await bench.pev.match()
        port = bench.service.port
        assert (port.notices, port.malformed) == (10, 0)

    run(scenario)


def test_the_mock_modem_answers_broadcast_requests_and_echoes_the_set_key_nonce() -> None:
    """Some PEV stacks address SET_KEY and VS_SW_VER.REQ to broadcast; a Qualcomm modem
    answers them and copies the request's MyNonce into the confirmation's YourNonce."""

    async def scenario(bench: Bench) -> None:
        port, nmk = bench.pev.port, new_nmk()
        request = cm.SetKeyReq(1, 0xAAAAAAAA, 0, 4, 0, 0, 0, bytes(7), 1, nmk)
        reply = await port.request(BROADCAST, request, cm.SetKeyCnf, 1.0)
        assert isinstance(reply, cm.SetKeyCnf)
        assert (reply.your_nonce, reply.my_nonce) == (0xAAAAAAAA, MODEM_NONCE)
        assert bench.mock.nmk["pev"] == nmk
        version = await port.request(BROADCAST, vs.VsSwVerReq(), vs.VsSwVerCnf, 1.0)
        assert isinstance(version, vs.VsSwVerCnf) and version.status == 0

    run(scenario)


def test_the_mock_modem_forwards_frames_it_cannot_decode() -> None:
    async def scenario(bench: Bench) -> None:
        port = bench.service.port
        unknown = build_frame(EVSE_MAC, PEV_MAC, 0x6004, bytes(41))  # an MME nobody registered
        bench.pev.port.link.send(unknown)
        for _ in range(50):
            if port.malformed:
                break
            await asyncio.sleep(0.01)
        assert port.malformed == 1 and "unknown MMTYPE 0x6004" in port.last_error

    run(scenario)
