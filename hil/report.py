"""The HIL run's report: one self-contained HTML file with the timeline plot embedded.

Owns the layout (identities, summary, per-scenario timelines and latencies, the latency
statistics) and the matplotlib plot (Agg, PNG as base64). Knows nothing of rigs or daemons:
it is given the runner's records.
"""

from __future__ import annotations

import base64
import io
import math
import shutil
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hil.runner import Latency, Sample, ScenarioResult

PILOT_LEVELS = "ABCDEF"
VERDICT_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "SKIP": "#8c959f"}


@dataclass(frozen=True, slots=True)
class RunInfo:
    started_utc: datetime
    duration_s: float
    firmware: str
    config_path: str
    backend: str
    rig: dict[str, str]
    sabotage: str = ""
    daemon_logs: str = ""
    restarts: tuple[tuple[float, str], ...] = ()  # (run seconds, why) the daemon restarted
    meter: tuple[str, ...] = ()  # the meter's lines of ``status`` at the end of the run


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _steps(
    samples: list[Sample], attr: str, gaps: tuple[float, ...] = ()
) -> tuple[list[float], list[float]]:
    """Step-plot points of one attribute; NaN at each gap (a restart: nothing was seen until
    the next sample), which breaks the line instead of carrying a stale value across."""
    points = [(t, math.nan) for t in gaps]
    for sample in samples:
        value = getattr(sample, attr)
        if value is None:
            continue
        if attr == "pilot":
            value = PILOT_LEVELS.index(value) if value in PILOT_LEVELS else math.nan
        elif attr in ("main", "discharge"):
            value = 1.0 if value == "CLOSED" else 0.0
        points.append((sample.t_s, float(value)))
    points.sort(key=lambda point: point[0])
    return [t for t, _ in points], [y for _, y in points]


def plot_png(
    results: list[ScenarioResult],
    samples: list[Sample],
    authorization: list[tuple[float, bool]],
    restarts: tuple[tuple[float, str], ...] = (),
) -> bytes:
    """The whole run's timeline: pilot state, duty, relays, J3072 authorization; a dashed
    line where the daemon was restarted."""
    end_s = max([r.end_s for r in results] + [s.t_s for s in samples] + [1.0])
    fig, axes = plt.subplots(
        4, 1, sharex=True, figsize=(16, 8.5), dpi=100, gridspec_kw={"height_ratios": [2, 2, 1.6, 1]}
    )
    pilot_ax, duty_ax, relay_ax, auth_ax = axes
    gaps = tuple(at for at, _ in restarts)
    xs, ys = _steps(samples, "pilot", gaps)
    pilot_ax.step(xs, ys, where="post", color="#0969da", lw=1.4)
    pilot_ax.set_yticks(range(len(PILOT_LEVELS)), list(PILOT_LEVELS))
    pilot_ax.set_ylim(-0.5, len(PILOT_LEVELS) - 0.5)
    pilot_ax.set_ylabel("pilot state")
    xs, ys = _steps(samples, "duty_pct", gaps)
    duty_ax.step(xs, ys, where="post", color="#8250df", lw=1.4)
    duty_ax.set_ylim(-5, 105)
    duty_ax.set_ylabel("duty %")
    for attr, offset, colour in (("main", 1.5, "#bc4c00"), ("discharge", 0.0, "#1a7f37")):
        xs, ys = _steps(samples, attr, gaps)
        relay_ax.step(xs, [y + offset for y in ys], where="post", color=colour, lw=1.4)
    relay_ax.set_yticks(
        [0, 1, 1.5, 2.5], ["disch. open", "disch. closed", "main open", "main closed"]
    )
    relay_ax.set_ylim(-0.3, 2.8)
    xs, ys = [0.0], [0.0]
    for at, authorized in sorted(authorization):
        xs.append(at)
        ys.append(1.0 if authorized else 0.0)
    xs.append(end_s)
    ys.append(ys[-1])
    auth_ax.step(xs, ys, where="post", color="#cf222e", lw=1.4)
    auth_ax.set_yticks([0, 1], ["not auth.", "authorized"])
    auth_ax.set_ylim(-0.3, 1.3)
    auth_ax.set_xlabel("run time (s)")
    auth_ax.set_xlim(0, end_s)
    for index, result in enumerate(results, start=1):
        colour = VERDICT_COLOURS[result.verdict]
        for ax in axes:
            ax.axvspan(
                result.start_s, result.end_s, color=colour, alpha=0.10 if index % 2 else 0.18, lw=0
            )
        if result.verdict != "SKIP":
            middle = (result.start_s + result.end_s) / 2
            pilot_ax.text(
                middle,
                5.75,
                str(index),
                ha="center",
                va="bottom",
                fontsize=8,
                color=colour,
                fontweight="bold",
                clip_on=False,
            )
    for at, _ in restarts:
        for ax in axes:
            ax.axvline(at, color="#57606a", ls="--", lw=1)
        duty_ax.text(at, 50, " daemon restarted", rotation=90, ha="right", va="center", fontsize=7)
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    pilot_ax.set_title(
        "HIL run timeline (bands: scenarios by number; green PASS, red FAIL)", pad=16
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _latency_cell(latency: Latency) -> str:
    measured = "not seen" if latency.measured_ms is None else f"{latency.measured_ms:.1f} ms"
    mark = "ok" if latency.ok else "OVER"
    return (
        f"<tr class={'ok' if latency.ok else 'bad'}><td>{escape(latency.kind)}</td>"
        f"<td>{measured}</td><td>{latency.limit_ms} ms</td><td>{latency.clock}</td>"
        f"<td>{mark}</td></tr>"
    )


def _scenario_html(index: int, result: ScenarioResult) -> str:
    scenario = result.scenario
    verdict = f"<b class={result.verdict}>{result.verdict}</b>"
    head = (
        f"<h3 id='{scenario.name}'>{index}. {escape(scenario.name)} {verdict}</h3>"
        f"<p>{escape(scenario.description)} <i>[{', '.join(scenario.tags)}]</i></p>"
    )
    if result.variant:
        head += f"<p>Board config for this scenario: {escape(result.variant)}</p>"
    if result.reason:
        head += f"<p class=reason>{result.verdict}: {escape(result.reason)}</p>"
    rows = "".join(
        f"<tr class={'ok' if s.ok else 'bad'}><td>{s.t_s:.3f} s</td>"
        f"<td>{escape(s.what)}</td><td>{escape(s.result)}</td></tr>"
        for s in result.steps
    )
    if rows:
        head += f"<table><tr><th>time</th><th>command</th><th>result</th></tr>{rows}</table>"
    if result.latencies:
        cells = "".join(_latency_cell(x) for x in result.latencies)
        head += (
            "<table><tr><th>latency</th><th>measured</th><th>limit</th><th>clock</th>"
            f"<th></th></tr>{cells}</table>"
        )
    return head


def _summary_html(results: list[ScenarioResult]) -> str:
    by_kind: dict[tuple[str, int], list[float]] = {}
    missed: dict[tuple[str, int], int] = {}
    for latency in (x for r in results for x in r.latencies):
        key = (latency.kind, latency.limit_ms)
        if latency.measured_ms is None:
            missed[key] = missed.get(key, 0) + 1
        else:
            by_kind.setdefault(key, []).append(latency.measured_ms)
    rows = ""
    for key in sorted(set(by_kind) | set(missed)):
        values = by_kind.get(key, [])
        stats = (
            [f"{percentile(values, p):.1f}" for p in (50, 99)] + [f"{max(values):.1f}"]
            if values
            else ["-", "-", "-"]
        )
        over = sum(v > key[1] for v in values) + missed.get(key, 0)
        cells = "".join(f"<td>{v}</td>" for v in stats)
        rows += (
            f"<tr class={'bad' if over else 'ok'}><td>{escape(key[0])}</td>"
            f"<td>{key[1]} ms</td><td>{len(values) + missed.get(key, 0)}</td>{cells}"
            f"<td>{over}</td></tr>"
        )
    return (
        "<h2>Latency summary</h2><table><tr><th>kind</th><th>limit</th><th>n</th>"
        "<th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>over limit / not seen</th></tr>"
        f"{rows}</table>"
    )


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;
margin:.5em 0}td,th{border:1px solid #d0d7de;padding:2px 8px;font-size:13px;text-align:left}
tr.bad td{background:#ffebe9}.PASS{color:#1a7f37}.FAIL{color:#cf222e}.SKIP{color:#6e7781}
.reason{font-weight:bold}img{width:100%}"""


def render(
    info: RunInfo,
    results: list[ScenarioResult],
    samples: list[Sample],
    authorization: list[tuple[float, bool]],
) -> str:
    plot = plot_png(results, samples, authorization, info.restarts)
    png = base64.b64encode(plot).decode("ascii")
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICT_COLOURS}
    rig = " ".join(f"{k}={v}" for k, v in info.rig.items())
    identity = (
        f"<table><tr><th>DUT firmware</th><td>evse-gatekeeper {escape(info.firmware)}</td>"
        f"</tr><tr><th>DUT config</th><td>{escape(info.config_path)}</td></tr>"
        f"<tr><th>DUT backend</th><td>{escape(info.backend)}</td></tr>"
        f"<tr><th>rig (*IDN?)</th><td>{escape(rig)}</td></tr>"
        f"<tr><th>started</th><td>{info.started_utc:%Y-%m-%d %H:%M:%S} UTC, "
        f"{info.duration_s:.1f} s</td></tr>"
    )
    if info.sabotage:
        identity += (
            f"<tr class=bad><th>sabotage</th><td>{escape(info.sabotage)} (TEST ONLY)</td></tr>"
        )
    if info.daemon_logs:
        identity += f"<tr><th>daemon logs</th><td>{escape(info.daemon_logs)}</td></tr>"
    for at, why in info.restarts:
        identity += f"<tr><th>daemon restarted</th><td>at {at:.1f} s: {escape(why)}</td></tr>"
    if info.meter:  # its poll interval and bus errors (docs/meter.md "Status")
        lines = "<br>".join(escape(line.strip()) for line in info.meter)
        identity += f"<tr><th>meter at the end</th><td>{lines}</td></tr>"
    overview = "".join(
        f"<tr><td>{i}</td><td><a href='#{r.scenario.name}'>{escape(r.scenario.name)}"
        f"</a></td><td class={r.verdict}>{r.verdict}</td>"
        f"<td>{escape(r.reason)}</td></tr>"
        for i, r in enumerate(results, start=1)
    )
    body = "".join(_scenario_html(i, r) for i, r in enumerate(results, start=1))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>HIL report "
        f"{info.started_utc:%Y-%m-%d %H:%M:%S}</title><style>{STYLE}</style></head><body>"
        f"<h1>HIL report: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP</h1>"
        f"{identity}</table><h2>Scenarios</h2><table><tr><th>#</th><th>scenario</th>"
        f"<th>verdict</th><th>reason</th></tr>{overview}</table>"
        f"<h2>Timeline</h2><img alt='timeline' src='data:image/png;base64,{png}'>"
        f"{_summary_html(results)}<h2>Steps</h2>{body}</body></html>"
    )


def write_report(
    directory: Path,
    info: RunInfo,
    results: list[ScenarioResult],
    samples: list[Sample],
    authorization: list[tuple[float, bool]],
) -> Path:
    """``DIR/hil-<UTC stamp>.html`` and a copy as ``DIR/latest.html``; the first path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"hil-{info.started_utc:%Y%m%dT%H%M%SZ}.html"
    path.write_text(render(info, results, samples, authorization))
    shutil.copyfile(path, directory / "latest.html")
    return path
