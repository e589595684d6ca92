"""``python -m hil run``: the HIL scenario suite against a rig, with an HTML report.

``--port`` names a physical rig (serial device or pyserial URL) whose board runs its own
daemon; ``--virtual`` starts the daemon here on the mock board (its virtual rig's pty, TEST
PKI, a TEST utility key with an installed approval list, the vehicle simulator). Exit 0 only
when no scenario failed; 2 on a usage or setup problem.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import firmware
from firmware.daemon.control_socket import ControlError, query
from firmware.meter.report import render_meter
from firmware.sep2.pki import init_pki
from hil.firmware_process import Daemon, toml_dumps
from hil.pev.profiles import APPROVED_ISM
from hil.report import RunInfo, write_report
from hil.rig import Rig, RigError, wait_for_rig
from hil.runner import Runner, ScenarioResult, Target
from hil.scenario import CONFIG_CAPABILITIES, CONFLICTS, SOLITARY, Scenario, ScenarioError, load_all
from hil.utility import UtilityAuthority

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
    run.add_argument(
        "--control",
        type=Path,
        metavar="SOCKET",
        help="with --port: the board's control socket (e.g. forwarded with ssh -L), for "
        "scenarios with board steps",
    )
    run.add_argument(
        "--log-command",
        metavar="CMD",
        help="with --port: a command that prints the board's log as it comes (e.g. "
        '"ssh pi journalctl -fu evse-gatekeeper -o cat"), for log expectations',
    )
    return parser


def _capabilities(
    config: dict[str, Any] | None, has_log: bool, control: Path | None
) -> frozenset[str]:
    """What the runner can tell about the board: its config's choices (when the config is
    known), whether it reads the daemon's log, whether it can reach the control socket."""
    found = {"daemon-log"} if has_log else set()
    if control is not None:
        found.add("board-control")
    if config is not None:
        charger = config.get("charger", {})
        found.add("ventilation" if charger.get("ventilation") else "no-ventilation")
        if charger.get("proximity") in ("type1", "type2"):
            found.add(f"proximity-{charger['proximity']}")
        if config.get("site", {}).get("quadrants") == "4Q":
            found.add("four-quadrant-site")
    return frozenset(found)


# The mock board's config for each config capability a scenario may require.
OVERLAYS: dict[str, tuple[str, str, Any]] = {
    "ventilation": ("charger", "ventilation", True),
    "no-ventilation": ("charger", "ventilation", False),
    "proximity-type1": ("charger", "proximity", "type1"),
    "proximity-type2": ("charger", "proximity", "type2"),
    "four-quadrant-site": ("site", "quadrants", "4Q"),
    # the installed list names another service area, so it is refused at start
    "no-approval-list": ("site", "service_area", "HIL-AREA-WITHOUT-A-LIST"),
}


@dataclass
class Variant:
    """A board config the virtual run restarts the daemon with, and what runs under it."""

    needs: set[str] = field(default_factory=set)
    scenarios: list[Scenario] = field(default_factory=list)

    def overlay(self) -> dict[str, dict[str, Any]]:
        tables: dict[str, dict[str, Any]] = {}
        for need in sorted(self.needs):
            table, key, value = OVERLAYS[need]
            tables.setdefault(table, {})[key] = value
        return tables

    @property
    def label(self) -> str:
        return ", ".join(
            f"{t}.{k}={str(v).lower() if isinstance(v, bool) else v}"
            for t, kv in self.overlay().items()
            for k, v in kv.items()
        )


def _plan(scenarios: list[Scenario], base: frozenset[str]) -> list[Variant]:
    """The base config first, then as few variants as conflicts allow; a scenario whose
    config needs the base lacks runs under a variant that has them."""
    plan = [Variant()]
    for scenario in scenarios:
        needs = {c for c in scenario.requires if c in CONFIG_CAPABILITIES}
        if needs <= base:
            plan[0].scenarios.append(scenario)
            continue
        for variant in plan[1:]:
            merged = variant.needs | needs
            alone = any((c in variant.needs) != (c in needs) for c in SOLITARY)
            if not alone and not any(set(pair) <= merged for pair in CONFLICTS):
                variant.needs = merged
                variant.scenarios.append(scenario)
                break
        else:
            plan.append(Variant(needs, [scenario]))
    return [v for v in plan if v.scenarios]


class VirtualBoard:
    """The daemon on the mock board, in a fresh state dir, restartable after a weld and
    under a config variant."""

    def __init__(self, base: Path, sabotage: str | None) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="hil-virtual-"))
        config = tomllib.loads(base.read_text())
        pki = init_pki(self.state / "pki").directory
        area = config.get("site", {}).get("service_area", "MOCK-UTILITY-NORTH")
        utility = UtilityAuthority(self.state, area)
        utility.install(self.state, approve={APPROVED_ISM: APPROVED_LIMIT_W})
        mock = config.setdefault("hal", {}).setdefault("mock", {})
        mock["rig_link"] = str(self.state / "rig")
        if sabotage:
            mock["sabotage"] = sabotage
        # contact protection lowered so that a suite can close the contactor every scenario
        config["contactor"] = {"min_close_interval_ms": 200, "discharge_min_close_interval_ms": 200}
        config["paths"] = {"state_dir": str(self.state)}
        self.control = self.state / "control.sock"
        config["control"] = {"socket": str(self.control)}
        config["tls"] = {
            "ca_file": str(pki / "serca.pem"),
            "cert_file": str(pki / "evse.pem"),
            "key_file": str(pki / "evse.key"),
        }
        config.setdefault("sep2", {}).update({"enabled": True, "host": "::1", "port": 0})
        config["approvals"] = utility.config
        self.base = config
        self.settings = config
        self.config_path = self.state / "hil.toml"
        self.config_path.write_text(toml_dumps(config))
        self.pki_dir = pki
        self.starts = 0
        self.daemon, self.sep2_url = self._start()

    def _start(self) -> tuple[Daemon, str]:
        self.starts += 1
        daemon = Daemon(self.config_path, log_file=self.state / f"daemon-{self.starts}.log")
        try:
            daemon.wait_for("gatekeeper.ready", timeout_s=20)
        except BaseException:
            daemon.stop()  # never leave a daemon behind
            raise
        listening = next(line for line in daemon.lines if "sep2.listening" in line)
        return daemon, f"https://[::1]:{int(listening.rsplit('port=', 1)[1])}"

    def open_rig(self) -> Rig:
        return wait_for_rig(str(self.state / "rig"))

    def restart_cleared(self, overlay: dict[str, dict[str, Any]] | None = None) -> None:
        """Stop, ``faults clear`` as an operator does after repair, start again (under the
        base config with ``overlay``'s tables merged in, when given)."""
        self.daemon.stop()
        if overlay is not None:
            settings = {k: dict(v) if isinstance(v, dict) else v for k, v in self.base.items()}
            for table, values in overlay.items():
                settings[table] = {**settings.get(table, {}), **values}
            self.settings = settings
            self.config_path.write_text(toml_dumps(settings))
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

    def keep_logs(self, directory: Path) -> Path:
        """Copy the daemons' logs to ``directory`` and remove the state dir (keys, pty)."""
        directory.mkdir(parents=True, exist_ok=True)
        for log in sorted(self.state.glob("daemon-*.log")):
            shutil.copyfile(log, directory / log.name)
        shutil.rmtree(self.state, ignore_errors=True)
        return directory


DEFAULT_BASE = Path("config/mock.toml")


def _board_config(path: Path | None) -> dict[str, Any] | None:
    """The board's config with --port, read for its capabilities; None when not given."""
    if path is None:
        return None
    try:
        return tomllib.loads(path.read_text())
    except OSError as err:
        raise ScenarioError(f"--config {path}: cannot read: {err.strerror or err}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ScenarioError(f"--config {path}: not TOML: {err}") from None


def _log_command(command: str | None) -> list[str] | None:
    """The command that prints the board's log as it comes; one that cannot start is refused."""
    if command is None:
        return None
    try:
        argv = shlex.split(command)
    except ValueError as err:
        raise ScenarioError(f"--log-command {command!r}: {err}") from None
    if not argv or shutil.which(argv[0]) is None:
        raise ScenarioError(f"--log-command {command!r}: no such program")
    return argv


def _order(scenarios: list[Scenario], names: list[str] | None) -> list[Scenario]:
    if names:
        known = {s.name: s for s in scenarios}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ScenarioError(f"no scenario named {unknown[0]!r} (see hil/scenarios/)")
        scenarios = [known[n] for n in names]
    return scenarios


def _last_inoperative(scenarios: list[Scenario]) -> list[Scenario]:
    # a permanent fault record survives the scenario: those run last
    return sorted(scenarios, key=lambda s: s.leaves_inoperative)


def _skipped(runner: Runner, scenario: Scenario, reason: str) -> ScenarioResult:
    result = ScenarioResult(scenario, "SKIP", reason, variant=runner.target.variant)
    result.start_s = result.end_s = runner.now()
    runner.echo(f"SKIP {scenario.name}: {reason}")
    return result


def _restart(runner: Runner, board: VirtualBoard, variant: Variant | None, why: str) -> None:
    runner.restarts.append((runner.now(), why))
    runner.target.rig.close()
    runner.retired_log += board.daemon.lines
    board.restart_cleared(variant.overlay() if variant is not None else None)
    target = runner.target
    target.rig = board.open_rig()
    target.daemon, target.sep2_url = board.daemon, board.sep2_url
    if variant is not None:  # what the config shows, and what the variant was made to have
        target.capabilities = _capabilities(board.settings, True, board.control) | variant.needs
        target.variant = variant.label


def _run_all(
    runner: Runner, plan: list[Variant], board: VirtualBoard | None
) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    inoperative_after = ""
    for number, variant in enumerate(plan):
        if number > 0:
            assert board is not None
            runner.echo(f"  (restarting the daemon with {variant.label})")
            _restart(runner, board, variant, f"faults clear, then {variant.label}")
        scenarios = _last_inoperative(variant.scenarios)
        for index, scenario in enumerate(scenarios):
            if inoperative_after:
                reason = (
                    f"the board is inoperative after {inoperative_after}: clear its fault "
                    "record and restart it"
                )
                results.append(_skipped(runner, scenario, reason))
                continue
            result = runner.run(scenario)
            results.append(result)
            if not scenario.leaves_inoperative or result.verdict == "SKIP":
                continue
            if board is None:
                inoperative_after = scenario.name
            elif index < len(scenarios) - 1:
                runner.echo("  (restarting the daemon after `faults clear`)")
                _restart(runner, board, None, f"faults clear after {scenario.name}")
    return results


def _run(args: argparse.Namespace) -> int:
    scenarios = _order(load_all(), args.scenario)
    board: VirtualBoard | None = None
    if args.virtual:
        if args.control is not None or args.log_command is not None:
            raise ScenarioError("--control and --log-command are for --port: the virtual "
                                "board has its own")  # fmt: skip
        board = VirtualBoard(args.config or DEFAULT_BASE, args.sabotage)
        try:
            rig = board.open_rig()
        except BaseException:
            board.daemon.stop()
            raise
        capabilities = _capabilities(board.settings, True, board.control)
        target = Target(
            rig,
            capabilities,
            board.daemon,
            board.sep2_url,
            board.pki_dir,
            control=board.control,
        )
        plan = _plan(scenarios, capabilities)
        config_path, backend = board.config_path, "mock (virtual rig)"
    else:
        if args.sabotage:
            raise ScenarioError("--sabotage needs --virtual: it is a mock-board build")
        config = _board_config(args.config)
        argv = _log_command(args.log_command)
        rig = wait_for_rig(args.port)
        # started last: nothing that can fail comes between it and the run's ``finally``
        log = Daemon(Path("(board)"), argv=argv, log_on_stdout=True) if argv else None
        target = Target(
            rig,
            _capabilities(config, log is not None, args.control),
            log,
            args.sep2,
            args.pki,
            control=args.control,
        )
        plan = [Variant(scenarios=scenarios)]
        config_path = args.config if config is not None else Path("(not given)")
        backend = str((config or {}).get("hal", {}).get("backend", "physical board"))
    runner = Runner(target)
    started = datetime.now(UTC)
    logs = ""
    meter: tuple[str, ...] = ()
    try:
        idn = target.rig.identify()
        runner.echo(f"rig: {' '.join(f'{k}={v}' for k, v in idn.items())}")
        results = _run_all(runner, plan, board)
        meter = _meter_lines(target.control)
    finally:
        target.rig.close()
        if board is None and target.daemon is not None:
            target.daemon.stop()  # the log follower
        if board is not None:
            runner.retired_log += board.daemon.lines
            board.daemon.stop()
            target.daemon = None
            kept = board.keep_logs(args.report / f"hil-{started:%Y%m%dT%H%M%SZ}-logs")
            logs = f"{kept} ({', '.join(p.name for p in sorted(kept.iterdir()))})"
    info = RunInfo(
        started_utc=started,
        duration_s=runner.now(),
        firmware=firmware.__version__,
        config_path=str(config_path),
        backend=backend,
        rig=idn,
        sabotage=args.sabotage or "",
        daemon_logs=logs,
        restarts=tuple(runner.restarts),
        meter=meter,
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


def _meter_lines(control: Path | None) -> tuple[str, ...]:
    """The meter as the daemon reports it at the end of the run (health, poll interval,
    bus errors); nothing without a control socket."""
    if control is None:
        return ()
    try:
        snapshot = query(control)
    except ControlError as err:
        return (f"status not available: {err}",)
    return tuple(render_meter(snapshot.get("meter")))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ScenarioError, RigError, TimeoutError, RuntimeError, OSError) as err:
        print(f"hil: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
