"""``python -m hil run`` end to end. ``--virtual``: the whole suite passes (scenarios needing
another board config run on a restarted daemon) and its report says so; a sabotaged build
(the interlock supervises nothing) fails, and the report names why. ``--port``: the suite
against a board whose daemon the runner does not own, as on a physical rig."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hil.firmware_process import Daemon, toml_dumps
from hil.scenario import load_all
from tests.integration.conftest import BASE_CONFIG, merged

pytestmark = [pytest.mark.integration, pytest.mark.parallel]


def run_hil(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    where = () if "--port" in args else ("--virtual",)
    command = [sys.executable, "-m", "hil", "run", *where, *args]
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
    count = len(load_all())
    assert f"{count} passed, 0 failed, 0 skipped" in done.stdout
    assert html.count(">PASS<") == 2 * count and ">FAIL<" not in html and ">SKIP<" not in html
    assert "evse-gatekeeper" in html and "virtual-rig" in html  # DUT and rig identities
    meter = html.split("<th>meter at the end</th><td>", 1)[1].split("</td>", 1)[0]
    assert "W (export +), healthy" in meter, "the meter as the daemon reports it at the end"
    # the config variants: a restarted daemon each, named in the report
    variant = "site.quadrants=4Q, charger.proximity=type1, charger.ventilation=true"
    assert f"restarting the daemon with {variant}" in done.stdout
    assert "Board config for this scenario: charger.proximity=type2" in html
    # the daemons' logs are kept next to the report; the state dir (keys, pty) is gone
    (logs,) = tmp_path.glob("hil-*-logs")
    kept = sorted(p.name for p in logs.iterdir())
    assert kept == [f"daemon-{n}.log" for n in range(1, len(kept) + 1)] and len(kept) >= 3
    assert "gatekeeper.ready" in (logs / "daemon-1.log").read_text()
    assert str(logs) in html
    config = re.search(r"<th>DUT config</th><td>([^<]+)</td>", html)
    assert config is not None and "hil-virtual-" in config.group(1)
    assert not Path(config.group(1)).parent.exists()


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


@pytest.mark.timeout(120)
def test_a_board_on_a_rig_port_whose_daemon_the_runner_does_not_own(tmp_path: Path) -> None:
    """What a test engineer runs on the bench: the board runs its own daemon (its log goes to
    a file, as journald keeps it); the runner has the rig's serial port, the board's config
    (its capabilities), its control socket and a command that follows its log."""
    state, rig_link, log = tmp_path / "board", tmp_path / "rig", tmp_path / "board.log"
    config = tmp_path / "board.toml"
    settings = merged(BASE_CONFIG, {"hal": {"mock": {"rig_link": str(rig_link)}}})
    config.write_text(toml_dumps(merged(settings, {"paths": {"state_dir": str(state)}})))
    board = Daemon(config, log_file=log)
    reports = tmp_path / "reports"
    try:
        board.wait_for("gatekeeper.ready", timeout_s=20)
        done = run_hil(
            *("--port", str(rig_link), "--config", str(config)),
            *("--control", str(state / "control.sock")),
            *("--log-command", f"tail -n +1 -F {log}"),
            *("--scenario", "a4-state-d-no-ventilation"),
            *("--scenario", "c4-vehicle-ignores-pwm-withdrawal"),
            *("--scenario", "a5-state-d-ventilated"),
            *("--scenario", "d1-j3072-approved"),
            *("--report", str(reports)),
            timeout_s=110,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert "PASS a4-state-d-no-ventilation" in done.stdout
        assert "fault.latched kind=ventilation_unavailable" in done.stdout  # read from its log
        assert "PASS c4-vehicle-ignores-pwm-withdrawal" in done.stdout
        assert "board limit 0" in done.stdout and "paused=True" in done.stdout
        assert "SKIP a5-state-d-ventilated: the board under test lacks ventilation" in done.stdout
        assert "SKIP d1-j3072-approved: needs the vehicle simulator" in done.stdout
        assert "2 passed, 0 failed, 2 skipped" in done.stdout
        board.wait_for("charger.limit_set limit_a=32", timeout_s=1)  # restored afterwards
    finally:
        assert board.stop() == 0
    html = only_report(reports)
    assert "virtual-rig" in html and str(config) in html
    assert not list(reports.glob("hil-*-logs"))  # no daemon of its own: no logs to keep


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--port", "/dev/null-rig", "--config", "/nonexistent.toml"), "cannot read"),
        (("--port", "/dev/null-rig", "--log-command", "no-such-program -f"), "no such program"),
        (("--virtual", "--control", "/tmp/x.sock"), "are for --port"),
        (("--virtual", "--scenario", "z9-nothing"), "no scenario named 'z9-nothing'"),
    ],
)
def test_a_bad_invocation_is_one_line_and_exit_2(
    args: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "hil", "run", *args, "--report", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())  # no report for a run that never started
