"""The board's own meter as a ``Meter``: the mock board's circuit model, as the safety
process reports it 40 times a second; or, on a board without one (the reference HAT),
a meter that is never healthy, so that no discharge is authorized on a reading of nothing.

The board gives power, voltage and frequency only; the energy counters are integrated here
from the reports (rectangles between successive ones), which is what the mock needs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from hal.contract import MeterReading
from hal.meter.contract import Health, Reading

NO_METER = "the board has no meter: set [meter] backend (docs/hardware.md, Energy meter)"
Report = tuple[MeterReading, int]  # the board's reading and its monotonic time (ns)


class BoardMeter:
    def __init__(self, report: Callable[[], Report | None], has_meter: bool) -> None:
        self._report = report
        self._has_meter = has_meter
        self._lock = threading.Lock()
        self._import_wh = self._export_wh = 0.0
        self._last: Reading | None = None

    def start(self) -> None:
        pass

    def watch_closely(self, closely: bool) -> None:
        pass  # the safety process reports every 25 ms anyway

    def latest(self) -> Reading | None:
        report = self._report() if self._has_meter else None
        with self._lock:
            if report is None:
                return self._last
            reading, t_ns = report
            last = self._last
            if last is not None and t_ns > last.t_ns:
                wh = last.power_w * (t_ns - last.t_ns) / 3.6e12
                if wh > 0:
                    self._export_wh += wh
                else:
                    self._import_wh -= wh
            if last is None or t_ns != last.t_ns:
                self._last = Reading(reading.power_w, self._import_wh, self._export_wh,
                                     reading.voltage_v, reading.frequency_hz, t_ns,
                                     time.time_ns() - (time.monotonic_ns() - t_ns))  # fmt: skip
            return self._last

    def health(self, now_ns: int) -> Health:
        if not self._has_meter:
            return Health(False, NO_METER, 0)
        return Health(True)

    def stats(self) -> dict[str, Any]:
        return {"backend": "board", "rate": "every safety report (25 ms)"}

    def close(self) -> None:
        pass
