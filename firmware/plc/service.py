"""The SLAC service: runs the pure SLAC machine on the event loop with a port and a modem.

It feeds the machine the frames the port routes to it and the passing of time, and carries
out its actions: frames go out through the port, keys through the modem client (one at a
time), and matches, wake-ups and give-ups are handed to the owner's callbacks (the charger
decides what the pilot does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from firmware.errors import GatekeeperError
from firmware.logs import kv, log_event
from firmware.plc.frame import Header
from firmware.plc.messages import Message
from firmware.plc.modem import ModemClient
from firmware.plc.port import PlcPort
from firmware.plc.slac import Action, GaveUp, Matched, Note, PilotWakeUp, Send, SetKey, SlacEvse

logger = logging.getLogger(__name__)

MAX_WAIT_S = 0.5


class SlacService:
    def __init__(
        self,
        slac: SlacEvse,
        port: PlcPort,
        modem: ModemClient,
        on_event: Callable[[Matched | PilotWakeUp | GaveUp], None] = lambda event: None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.slac = slac
        self.port = port
        self.modem = modem
        self._on_event = on_event
        self._clock = clock
        self._wake = asyncio.Event()
        self._keys: asyncio.Queue[bytes] = asyncio.Queue()
        self.key_failures = 0

    def on_message(self, header: Header, message: Message) -> None:
        """The port's callback for everything that is not a confirmation."""
        self._apply(self.slac.on_message(header.src, message, self._clock()))

    def plugged_in(self) -> None:
        self._apply(self.slac.plugged_in(self._clock()))

    def unplugged(self) -> None:
        self._apply(self.slac.unplugged())

    def link_lost(self) -> None:
        self._apply(self.slac.link_lost(self._clock()))

    async def run(self) -> None:
        """Key the modem, then keep the machine's timers; until cancelled."""
        keyer = asyncio.create_task(self._key_modem())
        try:
            self._apply(self.slac.boot())
            while True:
                deadline = self.slac.next_deadline_ns()
                wait_s = MAX_WAIT_S
                if deadline is not None:
                    wait_s = min(wait_s, max(0.0, (deadline - self._clock()) / 1e9))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait_s)
                self._apply(self.slac.poll(self._clock()))
        finally:
            keyer.cancel()

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.port.send(action.dst, action.message)
            elif isinstance(action, SetKey):
                self._keys.put_nowait(action.nmk)
            elif isinstance(action, Note):
                level = logging.WARNING if action.warning else logging.INFO
                log_event(logger, f"plc.slac_{action.event}", level, **dict(action.fields))
            else:
                logger.info("%s", kv(f"plc.slac_{_NAMES[type(action)]}", _describe(action)))
                self._on_event(action)
        self._wake.set()  # a new deadline may be sooner

    async def _key_modem(self) -> None:
        """Keys go to the modem one at a time, in order (never two SET_KEYs in flight)."""
        while True:
            nmk = await self._keys.get()
            try:
                await self.modem.set_key(nmk)
            except GatekeeperError as err:  # a modem fault is logged; the service goes on
                self.key_failures += 1
                logger.error("plc.set_key_failed error=%r", err)


_NAMES = {Matched: "matched", PilotWakeUp: "wakeup", GaveUp: "gave_up"}


def _describe(event: Matched | PilotWakeUp | GaveUp) -> list[tuple[str, object]]:
    if isinstance(event, Matched):
        return [("ev_mac", event.ev_mac.hex(":")), ("nid", event.nid.hex())]
    if isinstance(event, PilotWakeUp):
        return [("duration_ms", event.duration_ns // 1_000_000)]
    return [("reason", event.reason)]
