"""What ``status`` shows of the meter: its latest reading, its health and its bus (the poll
interval achieved, p50/p99/max, and the bus errors by kind), and those lines rendered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hal.meter import Meter


def meter_status(meter: Meter, now_ns: int) -> dict[str, Any]:
    reading, health = meter.latest(), meter.health(now_ns)
    values: dict[str, Any] = dict.fromkeys(
        ("power_w", "import_wh", "export_wh", "voltage_v", "frequency_hz", "age_ms", "read_at")
    )
    if reading is not None:
        values = {
            "power_w": round(reading.power_w, 1),
            "import_wh": round(reading.import_wh, 1),
            "export_wh": round(reading.export_wh, 1),
            "voltage_v": round(reading.voltage_v, 1),
            "frequency_hz": round(reading.frequency_hz, 2),
            "age_ms": max(0, now_ns - reading.t_ns) // 1_000_000,
            "read_at": datetime.fromtimestamp(reading.wall_ns / 1e9, UTC).isoformat(
                timespec="milliseconds"
            ),
        }
    return {"healthy": health.healthy, "reason": health.reason or None, **values,
            "bus": meter.stats()}  # fmt: skip


def render_meter(meter: Any) -> list[str]:
    """The meter's lines of ``evse-gatekeeper status``; a missing key shows as ``-``."""
    if not isinstance(meter, dict):
        return []

    def text(value: Any) -> str:
        return "-" if value is None else str(value)

    health = "healthy" if meter.get("healthy") else f"UNHEALTHY: {text(meter.get('reason'))}"
    lines = [
        f"meter:         {text(meter.get('power_w'))} W (export +), {health}",
        f"               {text(meter.get('voltage_v'))} V, {text(meter.get('frequency_hz'))} Hz,"
        f" import {text(meter.get('import_wh'))} Wh, export {text(meter.get('export_wh'))} Wh,"
        f" {text(meter.get('age_ms'))} ms old",
    ]
    bus = meter.get("bus")
    if isinstance(bus, dict) and isinstance(bus.get("interval_ms"), dict):
        interval, errors = bus["interval_ms"], bus.get("bus_errors")
        errors_text = (", ".join(f"{k} {v}" for k, v in errors.items())
                       if isinstance(errors, dict) else "-")  # fmt: skip
        lines.append(
            f"               {text(bus.get('backend'))} {text(bus.get('map'))} at "
            f"{text(bus.get('where'))}: {text(bus.get('rate'))} poll, interval p50 "
            f"{text(interval.get('p50'))} p99 {text(interval.get('p99'))} max "
            f"{text(interval.get('max'))} ms; errors: {errors_text}"
        )
    return lines
