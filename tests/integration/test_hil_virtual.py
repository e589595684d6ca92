"""``python -m hil run --virtual`` end to end: the whole suite passes and its report says so;
a sabotaged build (the interlock supervises nothing) fails, and the report names why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hil.scenario import load_all

pytestmark = pytest.mark.integration


def run_hil(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hil", "run", "--virtual", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)


def only_report(directory: Path) -> str:
    reports = list(directory.glob("hil-*.html"))
    assert len(reports) == 1, reports
    assert (directory / "latest.html").read_text() == reports[0].read_text()
    return reports[0].read_text()


@pytest.mark.timeout(180)
def test_the_virtual_suite_passes_and_reports(tmp_path: Path) -> None:
    done = run_hil("--report", str(tmp_path), timeout_s=170)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    html = only_report(tmp_path)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    for scenario in load_all():
        assert scenario.name in html
    assert "data:image/png;base64,iVBOR" in html  # the PNG signature, base64-encoded
    assert "Latency summary" in html and "p99 ms" in html
    assert "relay MAIN OPEN</td><td>100 ms" in html  # a kind with its limit in the summary
    assert html.count(">PASS<") >= 15 and ">FAIL<" not in html
    assert "SKIP" in html and "lacks proximity-type1" in html
    assert "evse-gatekeeper" in html and "virtual-rig" in html  # DUT and rig identities


@pytest.mark.timeout(90)
def test_a_sabotaged_interlock_fails_with_a_clear_verdict(tmp_path: Path) -> None:
    done = run_hil(
        "--sabotage",
        "interlock-off",
        "--scenario",
        "a3-state-c-charges",
        "--scenario",
        "z1-welded-main",
        "--report",
        str(tmp_path),
        timeout_s=80,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert "FAILED: z1-welded-main" in done.stderr
    verdict = "FAIL z1-welded-main: expect duty 0..0 within 1000 ms: expected duty 0..0 within"
    assert verdict in done.stdout
    assert "PASS a3-state-c-charges" in done.stdout
    html = only_report(tmp_path)
    assert "FAIL: expect duty 0..0 within 1000 ms: expected duty 0..0 within 1000 ms" in html
    assert "interlock-off (TEST ONLY)" in html
