"""The PLC port: one reader on a link, decoding every frame and routing it.

A confirmation that a request is waiting for goes to that request; everything else goes to
the ``on_message`` callback (the SLAC service). A malformed frame is counted and dropped, with
one log line saying why (at most one a second, carrying how many were refused since the last):
a flood of garbage never raises out of the reader, never floods the journal and never reaches
the state machines. The vendor indication a real QCA7005 sends with every sound is not
malformed: it is counted on its own and dropped (docs/homeplug-slac.md "Seen in the field").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from firmware.errors import GatekeeperError, ProtocolError
from firmware.logs import log_event
from firmware.plc.codec import decode, encode
from firmware.plc.frame import Header
from firmware.plc.link import FrameLink
from firmware.plc.messages import Message
from firmware.plc.vs_messages import QcaSoundNotice

logger = logging.getLogger(__name__)

MALFORMED_LOG_EVERY_S = 1.0


class RequestTimeout(GatekeeperError):
    """Raised when a request's confirmation does not arrive in time."""


class PlcPort:
    def __init__(self, link: FrameLink, on_message: Callable[[Header, Message], None]) -> None:
        self.link = link
        self._on_message = on_message
        self._waiting: dict[type[Message], asyncio.Future[tuple[Header, Message]]] = {}
        self.malformed = 0
        self.notices = 0  # QCA7005 sound notices: recognized, not malformed, ignored
        self.last_error = ""
        self._logged_at: float | None = None
        self._logged_count = 0

    async def run(self) -> None:
        """Read until cancelled."""
        while True:
            frame = await self.link.recv()
            try:
                header, message = decode(frame)
            except ProtocolError as err:
                self._refused(str(err))
                continue
            if isinstance(message, QcaSoundNotice):
                self.notices += 1
                continue
            waiter = self._waiting.get(type(message))
            if waiter is not None and not waiter.done():
                waiter.set_result((header, message))
            else:
                self._on_message(header, message)

    def _refused(self, reason: str) -> None:
        self.malformed += 1
        self.last_error = reason
        now = asyncio.get_running_loop().time()
        if self._logged_at is not None and now - self._logged_at < MALFORMED_LOG_EVERY_S:
            return
        log_event(logger, "plc.malformed", logging.WARNING, reason=reason,
                  refused=self.malformed - self._logged_count)  # fmt: skip
        self._logged_at, self._logged_count = now, self.malformed

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
