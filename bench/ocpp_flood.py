"""``make bench-ocpp-flood``: how long a hostile CSMS can hold the gatekeeper's event loop.

A ``websockets`` server on loopback plays the CSMS and, against the station's own connection
options (``max_message_bytes``) and ChargePoint (its rate limit, its dropping of unsolicited
answers, schema validation on), sends in turn:

- unsolicited: 300 CallResults of ~60 KB that answer nothing we asked;
- padded: 400 SetChargingProfile requests padded with ~60 KB of customData (5000 objects);
- padded-string: the same, padded with one 60 KB string (parsed and validated in full);
- getvariables: 400 GetVariables of ~60 KB (about 1000 items each);
- oversized: one 0.9 MB message (the connection is closed on it).

Meanwhile a task on the same loop sleeps 1 ms again and again; its lateness is how long the
loop was held. Prints p50/p99/max of that lateness (ms) for each, and the response queue's
largest size. The gate's deadlines (1 s heartbeats, 100 ms meter checks) need the max to stay
at a few ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.interlock import percentile
from firmware.journal.outbox import Outbox
from firmware.ocpp.config import OcppConfig
from firmware.ocpp.handlers import CsmsMisbehaved, charge_point_class
from firmware.ocpp.limits import TokenBucket
from firmware.ocpp.station import Station
from firmware.ocpp.upstream import Upstream
from hil.csms import NoVehicle

CONFIG = OcppConfig(url="wss://csms/ocpp", security_profile=3)
PAD_KB = 60


def unsolicited(n: int) -> str:
    return json.dumps([3, f"nobody-asked-{n}", {"x": ["a" * 100] * (PAD_KB * 10)}])


def padded(n: int, pad: Any = None) -> str:
    pad = pad or {"vendorId": "x", "padding": [{"aB": i} for i in range(PAD_KB * 100 // 11)]}
    period = {"startPeriod": 0, "limit": 1000}
    profile = {"id": n, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
               "chargingProfileKind": "Absolute", "customData": pad,
               "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                     "chargingSchedulePeriod": [period]}]}  # fmt: skip
    return json.dumps([2, f"p{n}", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}])


def get_variables(n: int) -> str:
    items = [{"component": {"name": f"C{i}"}, "variable": {"name": "V"}} for i in range(1000)]
    return json.dumps([2, f"g{n}", "GetVariables", {"getVariableData": items}])


FLOODS: dict[str, Callable[[int], str]] = {
    "unsolicited": unsolicited,
    "padded": padded,
    "padded-string": lambda n: padded(n, {"vendorId": "x", "padding": "a" * PAD_KB * 1000}),
    "getvariables": get_variables,
    "oversized": lambda n: json.dumps([3, "big", {"x": "a" * 900_000}]),
}
COUNTS = {"unsolicited": 300, "padded": 400, "padded-string": 400, "getvariables": 400,
          "oversized": 1}  # fmt: skip


async def flood(name: str) -> tuple[list[float], int, str]:
    messages = [FLOODS[name](n) for n in range(COUNTS[name])]
    upstream = Upstream(CONFIG, Outbox(None, 100), 240)
    options = Station(CONFIG, upstream, NoVehicle(), "bench")._options()

    async def csms(ws: ServerConnection) -> None:
        try:
            for message in messages:
                await ws.send(message)
            await ws.wait_closed()
        except ConnectionClosed:
            pass

    lateness: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lateness.append((time.perf_counter() - t - 0.001) * 1000)

    async with serve(csms, "127.0.0.1", 0, subprotocols=options["subprotocols"],
                     max_size=None) as server:  # fmt: skip
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", close_timeout=0.5, **options) as ws:
            rate = float(CONFIG.max_requests_per_s)
            cp = charge_point_class("2.1")("s", ws, NoVehicle(), 5, TokenBucket(rate, 4 * rate))
            tick = asyncio.create_task(ticker())
            queued = 0

            async def watch() -> None:
                nonlocal queued
                while True:
                    queued = max(queued, cp._response_queue.qsize())
                    await asyncio.sleep(0.01)

            watcher = asyncio.create_task(watch())
            try:
                await asyncio.wait_for(cp.start(), 10)
                ended = "reader ended"
            except TimeoutError:
                ended = f"read for 10 s, refused {cp.refused}"
            except (ConnectionClosed, CsmsMisbehaved) as err:
                ended = f"closed: {' '.join(str(err).split())[:60]}"
            done.set()
            watcher.cancel()
            await tick
    return lateness, queued, ended


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ocpp_flood", description=__doc__)
    parser.parse_args(argv)
    print(f"bench-ocpp-flood: a hostile CSMS over loopback; the loop's lateness (1 ms ticks); "
          f"max_message_bytes {CONFIG.max_message_bytes}, "
          f"{CONFIG.max_requests_per_s} requests/s")  # fmt: skip
    print(f"  {'flood':<14} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'queued':>7}  how it ended")
    for name in FLOODS:
        lateness, queued, ended = asyncio.run(flood(name))
        print(f"  {name:<14} {percentile(lateness, 50):8.2f} {percentile(lateness, 99):8.2f} "
              f"{max(lateness):8.2f} {queued:7d}  {ended}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
