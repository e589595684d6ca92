"""What a hostile CSMS can send, over a real WebSocket on loopback (a ``websockets`` server
playing the CSMS, the station's own connection options and ChargePoint on the other end):
oversized messages close the connection, unsolicited answers are dropped (not queued),
requests over the rate are answered with a CallError unread and a sustained flood closes the
connection, GetVariables is held to ItemsPerMessage. Bounds are asserted, not timings
(``make bench-ocpp-flood`` measures the loop's longest stall)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from firmware.journal.outbox import Outbox
from firmware.ocpp.config import OcppConfig
from firmware.ocpp.handlers import CsmsMisbehaved, charge_point_class
from firmware.ocpp.limits import EXCESS_BEFORE_CLOSE, ITEMS_PER_MESSAGE, TokenBucket
from firmware.ocpp.station import Station
from firmware.ocpp.upstream import Upstream

pytestmark = pytest.mark.integration
CONFIG = OcppConfig(url="wss://csms/ocpp", security_profile=3, max_requests_per_s=5)


class Requests:
    """The daemon's side: not the point here, answers as if no vehicle were authorized."""

    def __init__(self) -> None:
        self.profiles = 0

    async def set_charging_profile(self, evse_id: int, profile: dict[str, Any]) -> Any:
        self.profiles += 1
        return "Rejected", "NotAuthorized", "no vehicle"

    async def clear_charging_profile(self, profile_id: int | None) -> str:
        return "Unknown"

    def variable(self, component: str, variable: str) -> str | None:
        return "1" if component == "C0" else None


Csms = Callable[[ServerConnection], Awaitable[None]]


async def against(csms: Csms, work: Callable[[Any, ClientConnection], Awaitable[None]]) -> None:
    """The station's connection options (``max_size``) and ChargePoint against ``csms``."""
    upstream = Upstream(CONFIG, Outbox(None, 100), 240)
    options = Station(CONFIG, upstream, Requests(), "t")._options()
    async with serve(csms, "127.0.0.1", 0, subprotocols=options["subprotocols"]) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", close_timeout=0.5, **options) as ws:
            rate = float(CONFIG.max_requests_per_s)
            cp = charge_point_class("2.1")("s", ws, Requests(), 5, TokenBucket(rate, 4 * rate))
            await work(cp, ws)


def set_profile(n: int) -> str:
    profile = {"id": n, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
               "chargingProfileKind": "Absolute",
               "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                     "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                 "limit": 1000}]}]}  # fmt: skip
    return json.dumps([2, f"p{n}", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}])


def test_unsolicited_answers_are_dropped_and_an_oversized_message_closes() -> None:
    padding = {"x": ["a" * 100] * 500}  # ~50 KB: under the cap

    async def csms(ws: ServerConnection) -> None:
        for n in range(300):
            await ws.send(json.dumps([3, f"nobody-asked-{n}", padding]))
        await ws.send(json.dumps([3, "big", {"x": "a" * 100_000}]))  # over 64 KiB
        await ws.wait_closed()

    async def work(cp: Any, ws: ClientConnection) -> None:
        reader = asyncio.create_task(cp.start())
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(reader, 20)
        assert closed.value.sent is not None and closed.value.sent.code == 1009  # too big
        assert cp._response_queue.qsize() == 0, "nothing queued for a call never made"
        assert cp.refused == 300

    asyncio.run(against(csms, work))


def test_requests_over_the_rate_get_a_call_error_and_a_flood_closes() -> None:
    answers: list[list[Any]] = []

    async def csms(ws: ServerConnection) -> None:
        for n in range(400):
            await ws.send(set_profile(n))
        async for message in ws:
            answers.append(json.loads(message))

    async def work(cp: Any, ws: ClientConnection) -> None:
        with pytest.raises(CsmsMisbehaved):
            await asyncio.wait_for(cp.start(), 30)
        await asyncio.sleep(0.2)

    asyncio.run(against(csms, work))
    handled = [a for a in answers if a[0] == 3]
    limited = [a for a in answers if a[0] == 4]
    assert len(handled) >= 20, "the burst (4 s worth), and what refilled meanwhile"
    assert {a[2] for a in limited} == {"GenericError"}
    assert len(limited) == EXCESS_BEFORE_CLOSE - 1, "the last one over is not answered: closed"
    assert len(answers) < 400, "the connection was closed before the flood was read"


def test_a_request_over_the_rate_is_refused_before_it_is_parsed() -> None:
    """Past the burst, a request that would not even parse is answered as over the rate: its
    token was asked for before its body was read."""
    answers: list[list[Any]] = []

    async def csms(ws: ServerConnection) -> None:
        for n in range(60):  # the burst (4 s worth at 5/s) and 40 over: far from a refill
            await ws.send(set_profile(n))
        await ws.send('[2, "broken", "SetChargingProfile", {"evseId": 1, ')
        async for message in ws:
            answers.append(json.loads(message))

    async def work(cp: Any, ws: ClientConnection) -> None:
        reader = asyncio.create_task(cp.start())
        for _ in range(200):  # until the last one is answered, however loaded the machine
            if any(a[1] == "broken" for a in answers):
                break
            await asyncio.sleep(0.05)
        reader.cancel()

    asyncio.run(against(csms, work))
    (refused,) = [a for a in answers if a[1] == "broken"]
    assert refused[0] == 4 and refused[2] == "GenericError" and "rate limit" in refused[3]


def test_get_variables_is_held_to_items_per_message_and_complex_messages_are_refused() -> None:
    answers: list[list[Any]] = []

    def get_variables(n: int) -> str:
        items = [{"component": {"name": f"C{i}"}, "variable": {"name": "V"}} for i in range(n)]
        return json.dumps([2, f"g{n}", "GetVariables", {"getVariableData": items}])

    async def csms(ws: ServerConnection) -> None:
        await ws.send(get_variables(ITEMS_PER_MESSAGE + 1))
        await ws.send("[2, " * 15_000)  # nested deeper than any parser goes: dropped
        await ws.send(json.dumps([2, "many", "SetChargingProfile", {"customData": [{}] * 2000}]))
        await ws.send(get_variables(ITEMS_PER_MESSAGE))
        async for message in ws:
            answers.append(json.loads(message))

    async def work(cp: Any, ws: ClientConnection) -> None:
        reader = asyncio.create_task(cp.start())
        for _ in range(200):
            if len(answers) >= 3:
                break
            await asyncio.sleep(0.02)
        assert not reader.done(), "the reader goes on"
        reader.cancel()

    asyncio.run(against(csms, work))
    too_many, complex_, fine = answers
    assert too_many[:3] == [4, f"g{ITEMS_PER_MESSAGE + 1}", "OccurrenceConstraintViolation"]
    assert complex_[:3] == [4, "many", "OccurrenceConstraintViolation"], "refused unparsed"
    results = fine[2]["getVariableResult"]
    assert len(results) == ITEMS_PER_MESSAGE and results[0]["attributeValue"] == "1"
