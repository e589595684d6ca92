"""A meter read over a bus, on a thread of its own: power every poll, the other quantities
one block per poll in turn, each answer checked before it is published.

The thread is the only one that touches the bus, so a slow or silent bus delays nothing but
itself: the gatekeeper's loop reads ``latest()`` and ``health()``, which only take a lock.
While a vehicle is plugged in or the main contactor is closed (``watch_closely``), or the
meter is not yet trusted, power is polled every ``fast_ms``; otherwise every ``idle_ms``.
The achieved interval (between the starts of successive polls, at the current rate), the
time to the power's answer and the bus errors by kind are kept for ``status``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from hal.meter.contract import BusError, Health, Reading
from hal.meter.health import MS, HealthMonitor, Limits
from hal.meter.registers import Block, RegisterMap

logger = logging.getLogger(__name__)
INTERVAL_WINDOW = 600  # polls the interval statistics cover (a minute at 10 Hz)


class BusFault(Exception):
    """Raised by a bus when one read brought no registers (``kind`` says why)."""

    def __init__(self, kind: BusError, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Bus(Protocol):
    def read(self, function: int, address: int, count: int) -> list[int]:
        """The registers, or ``BusFault``; blocks at most about the bus timeout."""
        ...

    def close(self) -> None: ...


def percentile_ms(values_ns: list[int], pct: float) -> float | None:
    """Nearest-rank percentile, in ms (None for no values)."""
    if not values_ns:
        return None
    ordered = sorted(values_ns)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1] / MS, 2)


class PolledMeter:
    def __init__(
        self,
        bus: Bus,
        register_map: RegisterMap,
        limits: Limits,
        fast_ms: float,
        idle_ms: float,
        describe: dict[str, Any],
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._bus, self._map, self._clock = bus, register_map, clock
        self._power_block, self._other_blocks = register_map.blocks()
        self._fast_ns, self._idle_ns = int(fast_ms * MS), int(idle_ms * MS)
        self._fast_stale_ms = limits.stale_ms
        # at the idle rate a reading is stale after three missed polls
        self._idle_stale_ms = max(limits.stale_ms, 3 * idle_ms)
        self._lock = threading.Lock()
        self._monitor = HealthMonitor(limits, clock())
        self._monitor.allow(self._idle_stale_ms, clock())
        self._describe = describe
        self._fast = False
        self._values: dict[str, float] = {}
        self._turn = 0
        self._latest: Reading | None = None
        self._intervals: deque[int] = deque(maxlen=INTERVAL_WINDOW)
        self._bus_times: deque[int] = deque(maxlen=INTERVAL_WINDOW)  # start -> power answer
        self._last_start_ns: int | None = None
        self._polls = 0
        self._errors = dict.fromkeys((e.value for e in BusError), 0)
        self._logged: Health | None = None  # the health last logged
        self._unforeseen_kinds: set[str] = set()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meter-poll", daemon=True)

    # --- the Meter contract --------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def watch_closely(self, closely: bool) -> None:
        with self._lock:
            if closely == self._fast:
                return
            self._fast = closely
            stale = self._fast_stale_ms if closely else self._idle_stale_ms
            self._monitor.allow(stale, self._clock())
            self._intervals.clear()
            self._bus_times.clear()
            self._last_start_ns = None
        self._wake.set()  # poll now at the new rate

    def latest(self) -> Reading | None:
        with self._lock:
            return self._latest

    def health(self, now_ns: int) -> Health:
        with self._lock:
            health = self._monitor.check(now_ns)
        self._log_change(health)
        return health

    def stats(self) -> dict[str, Any]:
        with self._lock:
            intervals, bus_times = list(self._intervals), list(self._bus_times)
            errors, polls = dict(self._errors), self._polls
            fast = self._fast or not self._monitor.current.healthy
        return {
            **self._describe,
            "rate": "fast" if fast else "idle",
            "target_ms": (self._fast_ns if fast else self._idle_ns) / MS,
            "polls": polls,
            "interval_ms": {
                "p50": percentile_ms(intervals, 50),
                "p99": percentile_ms(intervals, 99),
                "max": percentile_ms(intervals, 100),
                "n": len(intervals),
            },
            "power_answer_ms": {  # from a poll's start to the power's answer
                "p50": percentile_ms(bus_times, 50),
                "p99": percentile_ms(bus_times, 99),
                "max": percentile_ms(bus_times, 100),
            },
            "bus_errors": errors,
        }

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._bus.close()

    # --- the poll thread ---------------------------------------------------------------------

    def _run(self) -> None:
        next_ns = self._clock()
        while not self._stopping.is_set():
            try:
                self._poll()
            except Exception as err:  # the poll thread must outlive any answer it is given
                self._unforeseen(err)
            self._log_change(self.health(self._clock()))
            with self._lock:  # an untrusted meter is polled fast: trusted again sooner
                fast = self._fast or not self._monitor.current.healthy
                period = self._fast_ns if fast else self._idle_ns
            now = self._clock()
            next_ns = max(next_ns + period, now)  # late: on at once, no burst to catch up
            self._wake.wait(timeout=(next_ns - now) / 1e9)
            if self._wake.is_set():
                self._wake.clear()
                next_ns = self._clock()

    def _poll(self) -> None:
        start = self._clock()
        with self._lock:
            if self._last_start_ns is not None:
                self._intervals.append(start - self._last_start_ns)
            self._last_start_ns = start
            self._polls += 1
        try:
            values = self._read(self._power_block)
            t_ns, wall_ns = self._clock(), time.time_ns()
            with self._lock:
                self._bus_times.append(t_ns - start)
            for block in self._due_blocks():
                values.update(self._read(block))
        except BusFault as fault:
            with self._lock:
                self._errors[fault.kind.value] += 1
                self._monitor.failed(fault.kind, fault.detail, self._clock())
            return
        self._values.update(values)
        if len(self._values) < len(self._map.fields):
            return  # not every quantity read yet
        v = self._values
        reading = Reading(v["power_w"], v["import_wh"], v["export_wh"], v["voltage_v"],
                          v["frequency_hz"], t_ns, wall_ns)  # fmt: skip
        with self._lock:
            refused = self._monitor.answer(reading)
            if refused is not None:
                self._errors[refused.value] += 1
            else:
                self._latest = reading

    def _unforeseen(self, err: Exception) -> None:
        """A failure no rule foresaw (a library error, an answer that cannot be decoded):
        counted and held against the meter like a lost answer, logged once per kind."""
        kind = type(err).__name__
        with self._lock:
            self._errors[BusError.FAILED.value] += 1
            self._monitor.failed(BusError.FAILED, f"{kind}: {err}", self._clock())
            first = kind not in self._unforeseen_kinds
            self._unforeseen_kinds.add(kind)
        if first:
            logger.error("meter.poll_failed error=%s", f'"{kind}: {err}"')

    def _due_blocks(self) -> list[Block]:
        """Every block not yet read; after that one per poll, in turn."""
        missing = [b for b in self._other_blocks
                   if any(f.quantity not in self._values for f in b.fields)]  # fmt: skip
        if missing or not self._other_blocks:
            return missing
        self._turn = (self._turn + 1) % len(self._other_blocks)
        return [self._other_blocks[self._turn]]

    def _read(self, block: Block) -> dict[str, float]:
        registers = self._bus.read(self._map.function, block.address, block.count)
        return self._map.decode(block, registers)

    def _log_change(self, health: Health) -> None:
        """Each change between healthy and not, logged once (by whichever thread sees it
        first); the meter starts unhealthy ("no reading yet") unlogged."""
        with self._lock:
            before = self._logged or Health(False, "no reading yet")
            if before.healthy == health.healthy:
                return
            self._logged = health
        if health.healthy:
            logger.info("meter.healthy after=%s", f'"{before.reason}"')
        else:
            logger.warning("meter.unhealthy reason=%s", f'"{health.reason}"')
