"""The raw-socket PLC link over a real veth pair: HomePlug frames only, never our own
frames, and it survives the netdev being deleted and re-created (a new ifindex)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from firmware.plc import cm_messages as cm
from firmware.plc.codec import decode, encode
from firmware.plc.link import RawSocketLink

pytestmark = pytest.mark.integration

RUN = bytes(range(8))


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


def make_veth(a: str, b: str) -> None:
    result = ip("link", "add", a, "type", "veth", "peer", "name", b)
    if result.returncode != 0:
        pytest.skip(f"cannot create a veth pair here: {result.stderr.strip()}")
    for name in (a, b):
        ip("link", "set", name, "up")


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("raw sockets and veth pairs need root")
    a, b = f"egk{os.getpid() % 100000}a", f"egk{os.getpid() % 100000}b"
    make_veth(a, b)
    yield a, b
    ip("link", "del", a)


async def receive(link: RawSocketLink, timeout_s: float = 1.0) -> bytes | None:
    try:
        return await asyncio.wait_for(link.recv(), timeout_s)
    except TimeoutError:
        return None


def test_frames_cross_and_only_homeplug_is_read(veth: tuple[str, str]) -> None:
    a_name, b_name = veth

    async def scenario() -> None:
        a, b = RawSocketLink(a_name), RawSocketLink(b_name)
        frame = encode(cm.SlacParmReq(0, 0, RUN), b.mac, a.mac)
        a.send(frame)
        got = await receive(b)
        assert got is not None and decode(got)[1] == cm.SlacParmReq(0, 0, RUN)
        assert await receive(a, 0.2) is None, "our own outgoing frame is dropped"
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as other:
            other.bind((a_name, 0))
            other.send(b.mac + a.mac + b"\x86\xdd" + bytes(60))  # IPv6 ethertype
            other.send(b.mac + a.mac + b"\x89\x12" + bytes(60))  # HomePlug AV 1.0 mediaxtream
        assert await receive(b, 0.3) is None, "the SLAC socket reads nothing but 0x88E1"
        a.close()
        b.close()

    asyncio.run(scenario())


def test_the_link_rebinds_when_the_netdev_is_recreated(veth: tuple[str, str]) -> None:
    a_name, b_name = veth

    async def scenario() -> None:
        b = RawSocketLink(b_name)
        ip("link", "del", a_name)  # deleting one end removes both
        await asyncio.sleep(0.3)
        make_veth(a_name, b_name)  # back, with new ifindexes
        for _ in range(50):
            if b.reopened:
                break
            await asyncio.sleep(0.05)
        assert b.reopened == 1
        a = RawSocketLink(a_name)
        a.send(encode(cm.SlacParmReq(0, 0, RUN), b"\xff" * 6, a.mac))
        got = await receive(b)
        assert got is not None and decode(got)[1] == cm.SlacParmReq(0, 0, RUN)
        a.close()
        b.close()

    asyncio.run(scenario())
