"""``python -m hil run``: the HIL scenario suite against a rig, with an HTML report.

``--port`` names a physical rig (serial device or pyserial URL) whose board runs its own
daemon; ``--virtual`` starts the daemon here on the mock board (its virtual rig's pty, TEST
PKI, a TEST utility key with an installed approval list, the vehicle simulator). Exit 0 only
when no scenario failed; 2 on a usage or setup problem.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import firmware
from firmware.approvals.jws import load_utility_keys
from firmware.approvals.store import ApprovalStore
from firmware.sep2.pki import init_pki
from hil.approvals import new_key, public_pem, signed_list
from hil.daemon import Daemon, toml_dumps
from hil.pev.profiles import APPROVED_ISM
from hil.report import RunInfo, write_report
from hil.rig import Rig, RigError, wait_for_rig
from hil.runner import Runner, ScenarioResult, Target
from hil.scenario import Scenario, ScenarioError, load_all

APPROVED_LIMIT_W = 6000  # the TEST approval list's cap for the certified vehicle


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hil", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the scenario suite and write the report")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="the rig: serial device or pyserial URL")
    where.add_argument("--virtual", action="store_true", help="start the daemon on the mock board")
    run.add_argument("--scenario", action="append", metavar="NAME", help="only these (repeatable)")
    run.add_argument("--report", type=Path, default=Path("reports"), metavar="DIR")
    run.add_argument(
        "--config",
        type=Path,
        default=Path("config/mock.toml"),
        help="--virtual: the base config (default config/mock.toml); "
        "with --port: the board's config, read for its capabilities",
    )
    run.add_argument(
        "--sabotage",
        choices=("interlock-off",),
        help="--virtual only: a TEST-ONLY broken build, to see the suite fail",
    )
    run.add_argument("--sep2", metavar="URL", help="with --port: the board's 2030.5 server")
    run.add_argument("--pki", type=Path, metavar="DIR", help="with --port: the vehicles' TEST PKI")
    return parser


def _capabilities(config: dict[str, Any], owns_daemon: bool) -> frozenset[str]:
    charger = config.get("charger", {})
    found = {"daemon-log"} if owns_daemon else set()
    if charger.get("ventilation"):
        found.add("ventilation")
    if charger.get("proximity") in ("type1", "type2"):
        found.add(f"proximity-{charger['proximity']}")
    return frozenset(found)


class VirtualBoard:
    """The daemon on the mock board, in a fresh state dir, restartable after a weld."""

    def __init__(self, base: Path, sabotage: str | None) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="hil-virtual-"))
        config = tomllib.loads(base.read_text())
        pki = init_pki(self.state / "pki").directory
        key = new_key()
        (self.state / "utility.pem").write_bytes(public_pem(key))
        area = config.get("site", {}).get("service_area", "MOCK-UTILITY-NORTH")
        store = ApprovalStore(self.state, load_utility_keys([self.state / "utility.pem"]), area)
        store.install(
            signed_list(key, service_area=area, version=1, approve={APPROVED_ISM: APPROVED_LIMIT_W})
        )
        mock = config.setdefault("hal", {}).setdefault("mock", {})
        mock["rig_link"] = str(self.state / "rig")
        if sabotage:
            mock["sabotage"] = sabotage
        # contact protection lowered so that a suite can close the contactor every scenario
        config["contactor"] = {"min_close_interval_ms": 200}
        config["paths"] = {"state_dir": str(self.state)}
        config["control"] = {"socket": str(self.state / "control.sock")}
        config["tls"] = {
            "ca_file": str(pki / "serca.pem"),
            "cert_file": str(pki / "evse.pem"),
            "key_file": str(pki / "evse.key"),
        }
        config.setdefault("sep2", {}).update({"enabled": True, "host": "::1", "port": 0})
        config["approvals"] = {"utility_keys": [str(self.state / "utility.pem")]}
        self.settings = config
        self.config_path = self.state / "hil.toml"
        self.config_path.write_text(toml_dumps(config))
        self.pki_dir = pki
        self.starts = 0
        self.daemon, self.sep2_url = self._start()

    def _start(self) -> tuple[Daemon, str]:
        self.starts += 1
        daemon = Daemon(self.config_path, log_file=self.state / f"daemon-{self.starts}.log")
        daemon.wait_for("gatekeeper.ready", timeout_s=20)
        listening = next(line for line in daemon.lines if "sep2.listening" in line)
        return daemon, f"https://[::1]:{int(listening.rsplit('port=', 1)[1])}"

    def open_rig(self) -> Rig:
        return wait_for_rig(str(self.state / "rig"))

    def restart_cleared(self) -> None:
        """Stop, ``faults clear`` as an operator does after repair, start again."""
        self.daemon.stop()
        command = [
            sys.executable,
            "-m",
            "firmware",
            "faults",
            "clear",
            "--config",
            str(self.config_path),
        ]
        subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        self.daemon, self.sep2_url = self._start()


def _order(scenarios: list[Scenario], names: list[str] | None) -> list[Scenario]:
    if names:
        known = {s.name: s for s in scenarios}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ScenarioError(f"no scenario named {unknown[0]!r} (see hil/scenarios/)")
        scenarios = [known[n] for n in names]
    # a permanent fault record survives the scenario: those run last
    return sorted(scenarios, key=lambda s: s.leaves_inoperative)


def _run_all(
    runner: Runner, scenarios: list[Scenario], board: VirtualBoard | None
) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    inoperative_after = ""
    for index, scenario in enumerate(scenarios):
        if inoperative_after:
            result = ScenarioResult(
                scenario,
                "SKIP",
                f"the board is inoperative after "
                f"{inoperative_after}: clear its fault record and restart it",
            )
            result.start_s = result.end_s = runner.now()
            runner.echo(f"SKIP {scenario.name}: {result.reason}")
            results.append(result)
            continue
        result = runner.run(scenario)
        results.append(result)
        if scenario.leaves_inoperative and result.verdict != "SKIP":
            if board is None:
                inoperative_after = scenario.name
            elif index < len(scenarios) - 1:
                runner.echo("  (restarting the daemon after `faults clear`)")
                runner.target.rig.close()
                runner.retired_log += board.daemon.lines
                board.restart_cleared()
                runner.target.rig = board.open_rig()
                runner.target.daemon, runner.target.sep2_url = board.daemon, board.sep2_url
    return results


def _run(args: argparse.Namespace) -> int:
    scenarios = _order(load_all(), args.scenario)
    board: VirtualBoard | None = None
    if args.virtual:
        board = VirtualBoard(args.config, args.sabotage)
        target = Target(
            board.open_rig(),
            _capabilities(board.settings, True),
            board.daemon,
            board.sep2_url,
            board.pki_dir,
        )
        config_path, backend = board.config_path, "mock (virtual rig)"
    else:
        if args.sabotage:
            raise ScenarioError("--sabotage needs --virtual: it is a mock-board build")
        config: dict[str, Any] = {}
        if args.config.exists() and args.config != Path("config/mock.toml"):
            config = tomllib.loads(args.config.read_text())
        target = Target(
            wait_for_rig(args.port), _capabilities(config, False), None, args.sep2, args.pki
        )
        config_path = args.config if config else Path("(not given)")
        backend = str(config.get("hal", {}).get("backend", "physical board"))
    runner = Runner(target)
    started = datetime.now(UTC)
    try:
        idn = target.rig.identify()
        runner.echo(f"rig: {' '.join(f'{k}={v}' for k, v in idn.items())}")
        results = _run_all(runner, scenarios, board)
    finally:
        target.rig.close()
        if board is not None:
            runner.retired_log += board.daemon.lines
            board.daemon.stop()
            target.daemon = None
    info = RunInfo(
        started_utc=started,
        duration_s=runner.now(),
        firmware=firmware.__version__,
        config_path=str(config_path),
        backend=backend,
        rig=idn,
        sabotage=args.sabotage or "",
        daemon_logs=str(board.state) if board else "",
    )
    path = write_report(args.report, info, results, runner.samples, runner.authorization_changes())
    failed = [r.scenario.name for r in results if r.verdict == "FAIL"]
    counts = {v: sum(r.verdict == v for r in results) for v in ("PASS", "FAIL", "SKIP")}
    print(
        f"\n{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
        f"in {runner.now():.1f} s; report: {path}"
    )
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ScenarioError, RigError, TimeoutError, RuntimeError, OSError) as err:
        print(f"hil: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
