"""Whether the meter's readings can be trusted: plausibility of each answer, staleness, and
recovery. Pure: answers and ``now`` in, a ``Health`` out; the poller and the gate call in.

Unhealthy at once on a Modbus exception response or an implausible answer (a value that is
not a number, power beyond the circuit's rating with margin, a voltage or frequency no mains
has, an energy counter going backwards, the same power, voltage and frequency for
``frozen_s``); unhealthy once no good reading has come for ``stale_ms`` (a bus that stopped
answering, or answers with bad CRCs, or a poll thread that froze). Healthy again only after
``recover_polls`` good readings in a row; unhealthy too when power and the energy counters
disagree by more than a factor of ``ENERGY_RATIO`` over a window of ``ENERGY_WINDOW_WH``.
docs/meter.md "Health" has the rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hal.meter.contract import BusError, Health, Reading

MS = 1_000_000
POWER_MARGIN = 1.25  # the rating is what the circuit may carry; more is a reading fault
# the meter is on the grid side (docs/meter.md): a running EVSE always sees live mains. The
# band is wide enough for a ride-through test's sags and swells, narrow enough that a dead
# or unwired meter (0 V, 0 Hz) or a misdecoded register never passes (docs/meter.md "Health")
VOLTAGE_BAND = (0.5, 1.2)  # x nominal
FREQUENCY_HZ = (45.0, 65.0)  # a 50 or 60 Hz supply, with 5 Hz either side
# power and the energy counters must tell the same story (a power register read at the wrong
# scale under- or over-reads discharge): once a window holds this much energy by either
# account (and at least ENERGY_WINDOW_STEPS of the counters' steps), the two accounts may
# differ by this ratio at most. Counters step by 10 Wh on the built-in maps' meters, and
# power is sampled: both are inside the margin at this size
ENERGY_WINDOW_WH = 100.0
ENERGY_WINDOW_STEPS = 10
ENERGY_RATIO = 2.0
ENERGY_GAP_NS = 5_000_000_000  # readings further apart than this start a new window


@dataclass(frozen=True, slots=True)
class Limits:
    max_power_w: float  # beyond this (either sign) the reading cannot be right
    nominal_voltage_v: float
    stale_ms: float = 500.0
    recover_polls: int = 10
    frozen_s: float = 30.0  # 0: no frozen check
    counter_step_wh: float = 10.0  # the energy counters' resolution (RegisterMap)

    @property
    def energy_window_wh(self) -> float:
        return max(ENERGY_WINDOW_WH, ENERGY_WINDOW_STEPS * self.counter_step_wh)


def plausibility(reading: Reading, limits: Limits) -> str | None:
    """Why a reading cannot be right, or None."""
    values = {
        "power": reading.power_w,
        "voltage": reading.voltage_v,
        "frequency": reading.frequency_hz,
        "import energy": reading.import_wh,
        "export energy": reading.export_wh,
    }
    for name, value in values.items():
        if not math.isfinite(value):
            return f"{name} is not a number (the meter reports it unavailable)"
    if abs(reading.power_w) > limits.max_power_w:
        return f"power {reading.power_w:.0f} W beyond the circuit's {limits.max_power_w:.0f} W"
    low_v, high_v = (limits.nominal_voltage_v * k for k in VOLTAGE_BAND)
    if not low_v <= reading.voltage_v <= high_v:
        return f"voltage {reading.voltage_v:.1f} V outside {low_v:g}..{high_v:g} V"
    low, high = FREQUENCY_HZ
    if not low <= reading.frequency_hz <= high:
        return f"frequency {reading.frequency_hz:.2f} Hz outside {low:g}..{high:g} Hz"
    if reading.import_wh < 0 or reading.export_wh < 0:
        return "a negative energy counter"
    return None


class HealthMonitor:
    """One meter's health over time. Not thread-safe: the owner holds its lock."""

    def __init__(self, limits: Limits, now_ns: int) -> None:
        self.limits = limits
        self._health = Health(False, "no reading yet", now_ns)
        self._good_in_a_row = 0
        self._last_good_ns: int | None = None
        self._watch_from_ns = now_ns  # before any good reading, staleness counts from here
        self._due_by_ns = 0  # a tightened allowance's end: the old one's, or the new one's
        self._stale_ns = int(limits.stale_ms * MS)
        self._counters: tuple[float, float] | None = None
        self._unchanged: tuple[tuple[float, float, float], int] | None = None
        self._window: _EnergyWindow | None = None
        # power and counters disagreed (a map read at the wrong scale): no reading is trusted
        # again until a whole window agrees
        self._energy_suspect = False
        self.last_error = ""

    @property
    def current(self) -> Health:
        return self._health

    def allow(self, stale_ms: float, now_ns: int) -> None:
        """Staleness allowed from now on (longer at the idle poll rate). A tighter allowance
        does not restart the count: the next good reading is due by the earlier of the old
        allowance's end and the new one's from now, so a meter silent for most of the idle
        allowance is not trusted afresh because a vehicle plugged in or main closed."""
        stale_ns = int(stale_ms * MS)
        if stale_ns < self._stale_ns:
            self._due_by_ns = min(self._deadline_ns(), now_ns + stale_ns)
        else:
            self._due_by_ns = 0
        self._stale_ns = stale_ns

    def _deadline_ns(self) -> int:
        since = self._last_good_ns if self._last_good_ns is not None else self._watch_from_ns
        return max(since + self._stale_ns, self._due_by_ns)

    def answer(self, reading: Reading) -> BusError | None:
        """A complete answer: checked, then counted good or bad. Returns IMPLAUSIBLE when
        it was refused."""
        why = (plausibility(reading, self.limits) or self._continuity(reading)
               or self._energy(reading))  # fmt: skip
        if why is not None:
            self.failed(BusError.IMPLAUSIBLE, why, reading.t_ns, at_once=True)
            return BusError.IMPLAUSIBLE
        self._last_good_ns = reading.t_ns
        if self._energy_suspect:
            return None  # plausible, but untrusted until power and counters agree again
        self._good_in_a_row += 1
        if not self._health.healthy and self._good_in_a_row >= self.limits.recover_polls:
            self._health = Health(True, "", reading.t_ns)
        return None

    def failed(self, kind: BusError, detail: str, now_ns: int, at_once: bool = False) -> None:
        """A poll that brought no good reading. An exception response or an implausible
        answer is unhealthy at once; a lost or garbled frame only once readings go stale."""
        self.last_error = f"{kind.value}: {detail}"
        self._good_in_a_row = 0
        if at_once or kind is BusError.EXCEPTION:
            self._unhealthy(self.last_error, now_ns)

    def check(self, now_ns: int) -> Health:
        """Health at ``now_ns``, staleness included."""
        if self._health.healthy:
            since = self._last_good_ns if self._last_good_ns is not None else self._watch_from_ns
            if now_ns > self._deadline_ns():
                why = f"no good reading for {(now_ns - since) / MS:.0f} ms"
                self._unhealthy(f"{why} (last: {self.last_error or 'none'})", now_ns)
        return self._health

    def _unhealthy(self, reason: str, now_ns: int) -> None:
        self._good_in_a_row = 0
        since = self._health.since_ns if not self._health.healthy else now_ns
        self._health = Health(False, reason, since)

    def _energy(self, reading: Reading) -> str | None:
        """Power integrated over time against the counters' own increase, import and export
        apart, once a window holds ``Limits.energy_window_wh`` by either account."""
        window = self._window
        if window is None or not 0 < reading.t_ns - window.last.t_ns <= ENERGY_GAP_NS:
            self._window = _EnergyWindow(reading, reading)
            return None
        window.add(reading)
        size = self.limits.energy_window_wh
        for name, by_power, counted in window.accounts():
            if max(by_power, counted) < size:
                continue
            self._window = _EnergyWindow(reading, reading)
            low = min(by_power, counted)
            self._energy_suspect = low * ENERGY_RATIO < max(by_power, counted)
            if self._energy_suspect:
                return (f"power and the {name} counter disagree: {by_power:.0f} Wh by power, "
                        f"{counted:.0f} Wh counted")  # fmt: skip
        return None

    def _continuity(self, reading: Reading) -> str | None:
        """Counters never go back; a live meter's values do not stand still for long."""
        counters = (reading.import_wh, reading.export_wh)
        before, self._counters = self._counters, counters
        if before is not None:
            for name, old, new in zip(("import", "export"), before, counters, strict=True):
                if new < old:
                    return f"the {name} energy counter went back from {old:.0f} to {new:.0f} Wh"
        frozen_ns = int(self.limits.frozen_s * 1e9)
        values = (reading.power_w, reading.voltage_v, reading.frequency_hz)
        if frozen_ns <= 0:
            self._unchanged = None
            return None
        if self._unchanged is None or self._unchanged[0] != values:
            self._unchanged = (values, reading.t_ns)
            return None
        if reading.t_ns - self._unchanged[1] >= frozen_ns:  # until the values move again
            return f"frozen: the same power, voltage and frequency for {self.limits.frozen_s:g} s"
        return None


@dataclass(slots=True)
class _EnergyWindow:
    """Energy since ``first`` by the power readings (each held until the next one)."""

    first: Reading
    last: Reading
    import_wh: float = 0.0
    export_wh: float = 0.0

    def add(self, reading: Reading) -> None:
        hours = (reading.t_ns - self.last.t_ns) / 3.6e12
        power = self.last.power_w  # export positive
        if power > 0:
            self.export_wh += power * hours
        else:
            self.import_wh -= power * hours
        self.last = reading

    def accounts(self) -> tuple[tuple[str, float, float], ...]:
        return (
            ("import", self.import_wh, self.last.import_wh - self.first.import_wh),
            ("export", self.export_wh, self.last.export_wh - self.first.export_wh),
        )
