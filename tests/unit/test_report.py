"""The HIL report on made-up records: the latency statistics, the restart gaps in the
timeline, and what the HTML names (identities, variants, restarts, verdicts)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from hil.report import RunInfo, _steps, percentile, render
from hil.runner import Latency, Sample, ScenarioResult
from hil.scenario import Scenario


def scenario(name: str) -> Scenario:
    return Scenario(name, f"{name} does things", ("j1772",), (), Path(f"{name}.toml"))


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([7.0], 99) == 7.0


def test_a_restart_breaks_the_line_instead_of_carrying_a_stale_state() -> None:
    samples = [Sample(1.0, pilot="F"), Sample(5.0, pilot="B"), Sample(3.0, duty_pct=40.0)]
    xs, ys = _steps(samples, "pilot", gaps=(2.0,))
    assert xs == [1.0, 2.0, 5.0]
    assert ys[0] == 5.0 and math.isnan(ys[1]) and ys[2] == 1.0
    assert _steps(samples, "pilot") == ([1.0, 5.0], [5.0, 1.0])


def test_the_html_names_identities_variants_restarts_and_the_latency_summary() -> None:
    ok = ScenarioResult(scenario("a1"), start_s=0.0, end_s=1.0)
    ok.latencies += [
        Latency("a1", "relay MAIN OPEN", float(ms), 100, "rig") for ms in range(1, 101)
    ]
    bad = ScenarioResult(scenario("c1"), "FAIL", "expected x", start_s=2.0, end_s=3.0)
    bad.variant = "charger.proximity=type1"
    bad.latencies.append(Latency("c1", "relay MAIN OPEN", None, 100, "rig"))
    info = RunInfo(
        datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
        3.0,
        "1.2.3",
        "/tmp/x/hil.toml",
        "mock (virtual rig)",
        {"vendor": "acme", "model": "rig-9"},
        restarts=((1.5, "faults clear, then charger.proximity=type1"),),
    )
    html = render(info, [ok, bad], [Sample(0.5, "C", 53.3, "CLOSED", "OPEN")], [])
    assert "<h1>HIL report: 1 PASS, 1 FAIL, 0 SKIP</h1>" in html
    assert "evse-gatekeeper 1.2.3" in html and "vendor=acme model=rig-9" in html
    assert "at 1.5 s: faults clear, then charger.proximity=type1" in html
    assert "Board config for this scenario: charger.proximity=type1" in html
    # 101 of this kind: p50 50, p99 99, max 100 over the 100 seen; one not seen at all
    summary = html.split("<h2>Latency summary</h2>", 1)[1].split("</table>", 1)[0]
    assert (
        "<td>relay MAIN OPEN</td><td>100 ms</td><td>101</td><td>50.0</td><td>99.0</td>"
        "<td>100.0</td><td>1</td>"
    ) in summary
    assert "data:image/png;base64,iVBOR" in html


def test_the_meter_s_poll_interval_and_bus_errors_are_in_the_report() -> None:
    """The daemon's status at the end of the run, rendered as ``evse-gatekeeper status``
    shows the meter: health, poll interval p50/p99/max, bus errors."""
    from firmware.meter.report import render_meter

    meter = {"healthy": False, "reason": "no good reading for 612 ms", "power_w": 3000.0,
             "import_wh": 10.0, "export_wh": 2.5, "voltage_v": 240.1, "frequency_hz": 60.0,
             "age_ms": 612, "bus": {"backend": "modbus-rtu", "map": "Eastron SDM630",
                                    "where": "/dev/ttyAMA0", "rate": "fast",
                                    "interval_ms": {"p50": 100.0, "p99": 101.4, "max": 180.2},
                                    "bus_errors": {"timeout": 7, "crc": 1}}}  # fmt: skip
    lines = tuple(render_meter(meter))
    info = RunInfo(datetime(2026, 12, 2, 12, 0, tzinfo=UTC), 3.0, "1.2.3", "/tmp/x/hil.toml",
                   "rpi", {"vendor": "acme"}, meter=lines)  # fmt: skip
    html = render(info, [ScenarioResult(scenario("a1"), start_s=0.0, end_s=1.0)], [], [])
    row = html.split("<th>meter at the end</th>", 1)[1].split("</tr>", 1)[0]
    assert "3000.0 W (export +), UNHEALTHY: no good reading for 612 ms" in row
    assert "interval p50 100.0 p99 101.4 max 180.2 ms; errors: timeout 7, crc 1" in row
    assert "modbus-rtu Eastron SDM630 at /dev/ttyAMA0" in row
