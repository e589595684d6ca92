"""The PLC port: one reader on a link, decoding every frame and routing it.

A confirmation that a request is waiting for goes to that request; everything else goes to
the ``on_message`` callback (the SLAC service). A malformed frame is counted and dropped:
a flood of garbage never raises out of the reader and never reaches the state machines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from firmware.errors import GatekeeperError, ProtocolError
from firmware.plc.codec import decode, encode
from firmware.plc.frame import Header
from firmware.plc.link import FrameLink
from firmware.plc.messages import Message

logger = logging.getLogger(__name__)


class RequestTimeout(GatekeeperError):
    """Raised when a request's confirmation does not arrive in time."""


class PlcPort:
    def __init__(self, link: FrameLink, on_message: Callable[[Header, Message], None]) -> None:
        self.link = link
        self._on_message = on_message
        self._waiting: dict[type[Message], asyncio.Future[tuple[Header, Message]]] = {}
        self.malformed = 0
        self.last_error = ""

    async def run(self) -> None:
        """Read until cancelled."""
        while True:
            frame = await self.link.recv()
            try:
                header, message = decode(frame)
            except ProtocolError as err:
                self.malformed += 1
                self.last_error = str(err)
                continue
            waiter = self._waiting.get(type(message))
            if waiter is not None and not waiter.done():
                waiter.set_result((header, message))
            else:
                self._on_message(header, message)

    def send(self, dst: bytes, message: Message) -> None:
        self.link.send(encode(message, dst, self.link.mac))

    async def request(
        self, dst: bytes, message: Message, reply: type[Message], timeout_s: float
    ) -> Message:
        """Send and wait for the reply type. One request per reply type at a time."""
        return (await self.exchange(dst, message, reply, timeout_s))[1]

    async def exchange(
        self, dst: bytes, message: Message, reply: type[Message], timeout_s: float
    ) -> tuple[Header, Message]:
        """As ``request``, with the reply's header (who answered)."""
        if reply in self._waiting:
            raise RuntimeError(f"a request for {reply.__name__} is already in flight")
        future: asyncio.Future[tuple[Header, Message]] = asyncio.get_running_loop().create_future()
        self._waiting[reply] = future
        try:
            self.send(dst, message)
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise RequestTimeout(f"no {reply.__name__} within {timeout_s:g} s") from None
        finally:
            del self._waiting[reply]
