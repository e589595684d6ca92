"""The in-process link: frames cross, a down end drops them, a flood is bounded."""

from __future__ import annotations

import asyncio

from firmware.plc.link import QUEUE_FRAMES, InProcessLink

A, B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def test_frames_cross_both_ways_and_stop_when_an_end_closes() -> None:
    async def scenario() -> None:
        a, b = InProcessLink.pair(A, B)
        a.send(b"ping")
        b.send(b"pong")
        assert await b.recv() == b"ping" and await a.recv() == b"pong"
        b.close()
        a.send(b"lost")
        assert b._frames.empty()

    asyncio.run(scenario())


def test_a_flood_is_dropped_and_counted_not_queued_forever() -> None:
    async def scenario() -> None:
        a, b = InProcessLink.pair(A, B)
        for _ in range(QUEUE_FRAMES + 500):
            a.send(b"x" * 60)
        assert b._frames.qsize() == QUEUE_FRAMES and b.dropped == 500

    asyncio.run(scenario())
