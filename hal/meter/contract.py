"""The meter contract: what the firmware may ask of the EVSE's energy meter.

Separate from the pilot board (``hal.contract.Board``): a board may have no meter at all (the
reference HAT), and a DIN-rail meter on RS-485 or Ethernet is read by the gatekeeper on a
thread of its own, never by the safety process. Power is signed as the DER reference frame of
the V2G-AC profile: positive flows from the vehicle to the grid (export, discharge).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Reading:
    """One plausible reading. Counters are the meter's own totals, in Wh."""

    power_w: float  # active power, positive = export (vehicle -> grid)
    import_wh: float  # energy from the grid into the vehicle since the meter was made
    export_wh: float  # energy from the vehicle into the grid
    voltage_v: float
    frequency_hz: float
    t_ns: int  # monotonic time at which the meter's answer with this power arrived
    wall_ns: int = 0  # the same instant on the system clock (UTC ns), for records and OCPP


class BusError(enum.Enum):
    """Why one poll got no reading; counted in ``status``."""

    TIMEOUT = "timeout"  # no answer within the timeout
    CRC = "crc"  # bytes came, but no frame with a good CRC
    EXCEPTION = "exception"  # the meter answered with a Modbus exception response
    CONNECTION = "connection"  # the port or the TCP connection could not be opened
    IMPLAUSIBLE = "implausible"  # an answer whose values cannot be right
    FAILED = "failed"  # the poll failed in a way no rule foresaw (logged once per kind)


@dataclass(frozen=True, slots=True)
class Health:
    """Whether the readings can be trusted now, and why not."""

    healthy: bool
    reason: str = ""  # empty when healthy
    since_ns: int = 0


@runtime_checkable
class Meter(Protocol):
    """An open meter. Every method is quick and never blocks on the bus."""

    def start(self) -> None:
        """Begin polling (a backend with a bus starts its thread here)."""
        ...

    def watch_closely(self, closely: bool) -> None:
        """True while a vehicle is plugged in or the main contactor is closed: power is
        polled at the fast rate, so that a grant finds a reading of at most the fast
        staleness allowance, and switching does not restart that allowance."""
        ...

    def latest(self) -> Reading | None:
        """The last plausible reading, or None before the first."""
        ...

    def health(self, now_ns: int) -> Health:
        """Health at ``now_ns``: a reading that has grown stale counts against it."""
        ...

    def stats(self) -> dict[str, Any]:
        """Polls, the achieved poll interval (p50/p99/max ms) and bus errors by kind."""
        ...

    def close(self) -> None:
        """Stop polling and release the port. Idempotent."""
        ...
