"""The OCPP station as one part of the daemon: the outbox in the journal, what the CSMS is told
(``Upstream``), the dispatch relayed to the vehicle (``DispatchRelay``) and the connection
(``Station``), built from ``[ocpp]`` and started once the gate exists.

The composition root hands it the J3072 decisions (``DecisionTee``, in front of the
journal) and the loop a ``StationView`` after each turn; both return at once and never raise:
the OCPP side is an observer of the gate, so whatever fails in it (a full disk under the
outbox, a payload that cannot be built) is logged once per kind, counted in ``status``, and
the gate's revocation or the loop's turn goes on (docs/ocpp.md "Failures").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from firmware.journal.outbox import Outbox
from firmware.logs import log_event
from firmware.ocpp.config import OcppConfig
from firmware.ocpp.relay import DispatchRelay
from firmware.ocpp.station import Station
from firmware.ocpp.upstream import StationView, Upstream

if TYPE_CHECKING:
    from firmware.j3072.decision import Decision
    from firmware.j3072.gate import Gate
    from firmware.journal.recorder import Recorder
    from firmware.sep2.service import Sep2Service

logger = logging.getLogger(__name__)


class Guard:
    """Runs the OCPP side's part of a gate or loop action so that it cannot raise into it."""

    def __init__(self) -> None:
        self.errors = 0
        self._said: set[str] = set()

    def run(self, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as err:  # the boundary: nothing on the OCPP side reaches the gate
            self.errors += 1
            if what not in self._said:
                self._said.add(what)
                log_event(logger, "ocpp.internal_error", logging.ERROR, during=what,
                          error=f"{type(err).__name__}: {err}")  # fmt: skip


class DecisionTee:
    """The gate's journal: each decision journaled first, then told to the CSMS (a grant
    the journal could not record is no grant, and is not told)."""

    def __init__(self, recorder: Recorder, upstream: Upstream, guard: Guard) -> None:
        self._recorder, self._upstream, self._guard = recorder, upstream, guard

    def decision(self, decision: Decision) -> bool:
        recorded = self._recorder.decision(decision)
        if recorded or not decision.granted:
            self._guard.run("decision", lambda: self._upstream.decision(decision))
        return recorded

    def identify(self, **fields: str | None) -> None:
        self._recorder.identify(**fields)


class OcppService:
    def __init__(self, config: OcppConfig, recorder: Recorder, v_ref_v: int) -> None:
        self.config = config
        self.recorder = recorder
        self.upstream = Upstream(config, Outbox(recorder.journal, config.queue_max), v_ref_v)
        self.relay: DispatchRelay | None = None
        self.station: Station | None = None
        self._ending: set[asyncio.Task[None]] = set()
        self.guard = Guard()
        self.guard.run("start", self.upstream.end_left_open)

    def journal(self) -> DecisionTee:
        return DecisionTee(self.recorder, self.upstream, self.guard)

    def start(self, gate: Gate, sep2: Sep2Service | None,
              set_limit: Callable[[float | None], Awaitable[Any]], rating_a: float,
              firmware: str, clock_synced: Callable[[], bool]) -> None:  # fmt: skip
        self.relay = DispatchRelay(gate, sep2, self.recorder, self.upstream, set_limit, rating_a,
                                   clock_synced)  # fmt: skip
        self.station = Station(self.config, self.upstream, self.relay, firmware)
        self.station.start()

    def observe(self, view: StationView) -> None:
        """After each turn of the loop: never waits, never raises."""
        self.guard.run("observe", lambda: self._observe(view))

    def _observe(self, view: StationView) -> None:
        had = self.upstream.transaction_id
        self.upstream.observe(view)
        if self.relay is not None:
            self.relay.observe()
        if had is not None and self.upstream.transaction_id is None and self.relay is not None:
            task = asyncio.get_running_loop().create_task(self.relay.session_ended())
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def owner_changed(self) -> None:
        """The site owner changed a function: the CSMS's dispatch is put again under it."""
        if self.relay is not None:
            self.guard.run("owner_changed", self.relay.owner_changed)

    def status(self) -> dict[str, Any]:
        shown = self.upstream.status()
        shown["errors"] = self.guard.errors
        if self.station is not None:
            shown["last_error"] = self.station.last_error
        return shown

    async def stop(self) -> None:
        if self.station is not None:
            await self.station.stop()
