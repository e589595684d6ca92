"""Layer-2 links that carry MMEs: a raw AF_PACKET socket on the PLC netdev, or an in-process
pair of queues for the laptop mock mode. Both give whole Ethernet frames to an asyncio reader.

The raw socket is bound to ethertype 0x88E1, so the kernel hands it nothing else; our own
outgoing frames (which AF_PACKET also shows) are dropped. If the netdev goes away and comes
back (the qcaspi driver re-probing after a modem reset gives it a new ifindex), the socket is
re-opened by name. A full receive queue drops frames and counts them: a flood never grows
memory or blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from typing import Protocol

from firmware.errors import GatekeeperError
from firmware.plc.frame import ETHERTYPE_HOMEPLUG

logger = logging.getLogger(__name__)

QUEUE_FRAMES = 1024
REOPEN_EVERY_S = 0.1
_GONE = {errno.ENETDOWN, errno.ENODEV, errno.ENXIO}


class LinkError(GatekeeperError):
    """Raised when a link cannot be opened or a frame cannot be sent."""


class FrameLink(Protocol):
    mac: bytes
    dropped: int

    async def recv(self) -> bytes: ...

    def send(self, frame: bytes) -> None: ...

    def close(self) -> None: ...


class _Queued:
    """The receive side both links share: a bounded queue that counts what it drops."""

    def __init__(self) -> None:
        self._frames: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_FRAMES)
        self.dropped = 0

    def _deliver(self, frame: bytes) -> None:
        try:
            self._frames.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1

    async def recv(self) -> bytes:
        return await self._frames.get()


class InProcessLink(_Queued):
    """One end of an in-process cable; ``pair`` makes both ends."""

    def __init__(self, mac: bytes) -> None:
        super().__init__()
        self.mac = mac
        self.peer: InProcessLink | None = None
        self.up = True

    @classmethod
    def pair(cls, mac_a: bytes, mac_b: bytes) -> tuple[InProcessLink, InProcessLink]:
        a, b = cls(mac_a), cls(mac_b)
        a.peer, b.peer = b, a
        return a, b

    def send(self, frame: bytes) -> None:
        if self.peer is not None and self.up and self.peer.up:
            self.peer._deliver(bytes(frame))

    def close(self) -> None:
        self.up = False


ETH_P_ALL = 0x0003  # every ethertype: only the mock modem, which forwards IPv6 too


class RawSocketLink(_Queued):
    def __init__(self, ifname: str, ethertype: int = ETHERTYPE_HOMEPLUG) -> None:
        super().__init__()
        self.ifname = ifname
        self.ethertype = ethertype
        self._loop = asyncio.get_running_loop()
        self._sock = self._open()
        self.mac: bytes = self._sock.getsockname()[4]
        self._reopening: asyncio.Task[None] | None = None
        self.reopened = 0

    def _open(self) -> socket.socket:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(self.ethertype))
        except OSError as err:
            raise LinkError(f"cannot open a raw socket: {err.strerror}") from err
        try:
            sock.bind((self.ifname, self.ethertype))
        except OSError as err:
            sock.close()
            raise LinkError(f"cannot bind to {self.ifname}: {err.strerror}") from err
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._readable)
        return sock

    def _readable(self) -> None:
        while True:
            try:
                frame, address = self._sock.recvfrom(2048)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in _GONE:
                    self._start_reopen()
                return
            if address[2] == socket.PACKET_OUTGOING:
                continue  # our own frames
            if self.ethertype != ETH_P_ALL and address[1] != self.ethertype:
                continue  # belt and braces: the bound ethertype only
            self._deliver(frame)

    def send(self, frame: bytes) -> None:
        try:
            self._sock.send(frame)
        except OSError as err:
            if err.errno in _GONE:
                self._start_reopen()
            raise LinkError(f"send on {self.ifname} failed: {err.strerror}") from err

    def _start_reopen(self) -> None:
        if self._reopening is None or self._reopening.done():
            self._reopening = self._loop.create_task(self._reopen())

    async def _reopen(self) -> None:
        """The netdev went away: keep trying to bind to it again by name."""
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        logger.warning("plc.link_lost ifname=%s", self.ifname)
        while True:
            await asyncio.sleep(REOPEN_EVERY_S)
            try:
                self._sock = self._open()
            except LinkError:
                continue
            self.reopened += 1
            logger.info("plc.link_reopened ifname=%s", self.ifname)
            return

    def close(self) -> None:
        if self._reopening is not None:
            self._reopening.cancel()
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
