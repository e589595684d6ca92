"""``make run``: start the firmware on the mock board and play one vehicle through the rig.

Plug in -> PWM duty -> charge -> stop -> unplug, then a fault while charging and its
recovery, printed as a timeline with the latencies measured on the rig's clock. Exits 0 only
when every step behaved as J1772 requires; the daemon's full log is kept in the state dir.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from firmware.daemon.config import Config, load_config
from firmware.daemon.control_socket import query, set_function
from firmware.errors import ConfigError
from firmware.pilot.duty import current_to_duty_permille
from hil.firmware_process import Daemon
from hil.footprint import cpu_seconds, daemon_pids, footprint
from hil.pev.background import BackgroundPev
from hil.report import RunInfo, write_report
from hil.rig import Rig, RigError, wait_for_rig
from hil.runner import Latency, Runner, ScenarioResult, StepRecord, Target
from hil.scenario import Scenario

APPROVED_PROFILE = "certified-4q"
DENIED_PROFILE = "unapproved-ism"
LATENCY = re.compile(r"after (?P<ms>[0-9.]+) ms \(limit (?P<limit>[0-9]+) ms\)")
SHOWN_EVENTS = (
    "charger.state",
    "fault.",
    "interlock.trip",
    "relay.refused",
    "close_deferred",
    "plc.slac_",
    "plc.link",
    "plc.fallback",
    "plc.wakeup",
    "set_key modem=evse",
    "mock.pev_matched",
    "j3072.",
    "relay.command relay=discharge",
)


class Timeline:
    """The printed timeline, and the same steps kept for the HTML report (one section of the
    story = one scenario of the report, sampled on the rig after every step)."""

    def __init__(self, daemon: Daemon) -> None:
        self.start = time.monotonic()
        self.daemon = daemon
        self.failures: list[str] = []
        self.sections: list[ScenarioResult] = []
        self.runner: Runner | None = None  # samples the rig once it is open

    def section(self, name: str, description: str) -> None:
        print(f"\n  -- {description} --")
        scenario = Scenario(name, description, ("demo",), (), Path(__file__))
        self.sections.append(ScenarioResult(scenario, start_s=self._now()))

    def _now(self) -> float:
        return self.runner.now() if self.runner is not None else time.monotonic() - self.start

    def step(self, what: str, action: Callable[[], str]) -> None:
        stamp = time.monotonic() - self.start
        try:
            result, ok = action(), True
        except (RigError, AssertionError, TimeoutError) as err:
            result, ok = str(err), False
            self.failures.append(f"{what}: {err}")
        mark = "ok " if ok else "FAIL"
        print(f"  {stamp:7.3f} s  [{mark}] {what:<38} {result}")
        self._keep(what, result, ok)
        time.sleep(0.05)  # let the firmware's log lines for this step arrive
        self.show_firmware()

    def _keep(self, what: str, result: str, ok: bool) -> None:
        if not self.sections:
            return
        section = self.sections[-1]
        section.steps.append(StepRecord(self._now(), what, result, ok))
        section.end_s = self._now()
        if not ok:
            section.verdict, section.reason = "FAIL", f"{what}: {result}"
        measured = LATENCY.search(result)
        if measured is not None:
            name = section.scenario.name
            section.latencies.append(Latency(name, what, float(measured["ms"]),
                                             int(measured["limit"]), "rig"))  # fmt: skip
        if self.runner is not None:
            self.runner.sample()

    def write_report(self, directory: Path, config_path: str, rig: dict[str, str],
                     log_path: Path) -> Path | None:  # fmt: skip
        if self.runner is None or not self.sections:
            return None
        from firmware import __version__

        info = RunInfo(datetime.now(UTC), time.monotonic() - self.start, __version__,
                       config_path, "mock", rig, daemon_logs=str(log_path))  # fmt: skip
        changes = self.runner.authorization_changes()
        return write_report(directory, info, self.sections, self.runner.samples, changes)

    def show_firmware(self, heading: str = "") -> None:
        shown = [line for line in self.daemon.drain() if any(k in line for k in SHOWN_EVENTS)]
        if shown and heading:
            print(f"  {heading}:")
        for line in shown:
            print(f"{'':22}firmware: {line.split(' ', 2)[-1]}")


class Story:
    """The steps a demo plays through the rig, each timed and checked."""

    def __init__(self, rig: Rig, timeline: Timeline, config: Config, duty_pct: float) -> None:
        self.rig = rig
        self.timeline = timeline
        self.config = config
        self.duty_pct = duty_pct
        self.step = timeline.step

    def duty(self, low: float, high: float) -> Callable[[], str]:
        def check() -> str:
            duty, elapsed = self.rig.wait_duty(low, high, 1000)
            return f"pilot duty {duty:.1f} % after {elapsed / 1000:.1f} ms"

        return check

    def offered(self) -> Callable[[], str]:
        return self.duty(self.duty_pct - 0.05, self.duty_pct + 0.05)

    def relay(self, position: str, limit_ms: int, relay: str = "MAIN") -> Callable[[], str]:
        def check() -> str:
            elapsed = self.rig.wait_relay(relay, position, limit_ms)
            assert elapsed <= limit_ms * 1000, f"took {elapsed / 1000:.1f} ms > {limit_ms} ms"
            where = f"{relay.lower()} {position.lower()}"
            return f"{where} after {elapsed / 1000:.1f} ms (limit {limit_ms} ms)"

        return check

    def stays_open(self, relay: str, for_ms: int) -> Callable[[], str]:
        def check() -> str:
            try:
                self.rig.wait_relay(relay, "CLOSED", for_ms)
            except RigError as err:
                if err.code == "TIMEOUT":
                    return f"{relay.lower()} still open after {for_ms} ms"
                raise
            raise AssertionError(f"{relay.lower()} closed")

        return check

    def stays_open_is(self, relay: str, position: str) -> Callable[[], str]:
        def check() -> str:
            shown = self.rig.relays()[relay.lower()]
            assert shown == position, f"{relay.lower()} is {shown}, not {position}"
            return f"{relay.lower()} {shown.lower()}"

        return check

    def send(self, *commands: str) -> Callable[[], str]:
        def run() -> str:
            for command in commands:
                self.rig.command(command)
            return " ; ".join(commands)

        return run

    def log(self, *needles: str, timeout_s: float = 5.0) -> Callable[[], str]:
        since = len(self.timeline.daemon.lines)

        def check() -> str:
            self.timeline.daemon.wait_for_all(needles, since, timeout_s=timeout_s)
            return "firmware log: " + ", ".join(needles)

        return check

    def plug_in_and_match(self) -> None:
        self.step("vehicle plugs in", self.send("EV:STATE B"))
        self.step(f"EVSE offers {self.config.charger.max_current_a:g} A", self.offered())
        if self.config.plc.enabled:
            joined = self.log("plc.slac_matched", "plc.link state=up")
            self.step("vehicle's PLC modem joins", self.send("EV:PLC ON"))
            self.step("SLAC matches, the PLC link is up", joined)

    def unplug(self) -> None:
        left = self.log("plc.link state=down", "set_key modem=evse")
        self.step("vehicle unplugs", self.send("EV:STATE A", "EV:PLC OFF", "METER:W 0"))
        self.step("both relays open", self.relay("OPEN", 100))
        self.step("pilot back to steady +12 V", self.duty(100, 100))
        if self.config.plc.enabled:
            self.step("PLC link down, EVSE re-keys its modem", left)

    def start_vehicle(self, profile: str) -> BackgroundPev:
        from hil.pev.profiles import PROFILES

        config = self.config
        assert config.tls.ca_file is not None
        server = f"https://[{config.sep2.host}]:{config.sep2.port}"
        return BackgroundPev(server, config.tls.ca_file.parent, PROFILES[profile]).start()

    def decision(self, granted: bool) -> Callable[[], str]:
        word = "granted=true" if granted else "granted=false"

        def check() -> str:
            line = self.timeline.daemon.wait_for(f"j3072.decision {word}", timeout_s=15)
            return line.split("j3072.decision ", 1)[1]

        return check

    def status(self, expected: str) -> Callable[[], str]:
        """What the site owner sees: the daemon's control socket (and it must say
        ``expected``, with the site bridge open exactly when authorized)."""

        def check() -> str:
            shown = query(self.config.control_socket)
            auth = shown["authorization"]
            assert auth["state"] == expected, f"authorization {auth}, not {expected}"
            bridge_state = shown.get("bridge") or {}
            if bridge_state:
                assert bool(bridge_state.get("bridged")) == (expected == "authorized"), bridge_state
            relays = " ".join(f"{k}={v}" for k, v in shown["relays"].items())
            why = "; ".join(auth["reasons"]) or f"limit {auth['limit_w']} W"
            if auth.get("basis"):
                why += f"; checked: {auth['basis']}"
            bridge = shown.get("bridge") or {}
            bridged = "site bridge open" if bridge.get("bridged") else "site bridge closed"
            meter = "-" if shown.get("meter_w") is None else f"{shown['meter_w']:g}"
            return f"{auth['state']} ({why}); {relays}; {bridged}; meter {meter} W"

        return check

    def change_control(self, *words: str) -> Callable[[], str]:
        """The site owner's ``evse-gatekeeper control``, over the daemon's control socket."""

        def run() -> str:
            table: dict[str, object] = {"mode": words[0]}
            for word in words[1:]:
                key, _, value = word.partition("=")
                table[key] = tomllib.loads(f"v = {value}")["v"]
            answer = set_function(self.config.control_socket, table)
            old = answer.get("replaced")
            return (
                f"{answer['mode']} in effect"
                + (f", superseding {old}" if old else "")
                + (f": {answer['sessions']} session(s) get a new DERControl")
            )

        return run

    def follows(self, pev: BackgroundPev, mode: str) -> Callable[[], str]:
        """The vehicle answers the superseding control and follows it: the rig plays the
        power it now sends to the grid."""

        def run() -> str:
            deadline = time.monotonic() + 5
            while mode not in pev.client.log.controls_followed and time.monotonic() < deadline:
                time.sleep(0.05)
            assert mode in pev.client.log.controls_followed, "the vehicle did not follow"
            watts = pev.client.dispatched_w
            self.rig.command(f"METER:W {watts:.0f}")
            cap = pev.client.max_lim_w_pct
            return f"Responses received+started; opModMaxLimW {cap:g} % -> METER:W {watts:.0f}"

        return run

    def limit(self, watts: int) -> Callable[[], str]:
        """The gate holds the vehicle to the new limit once it has had follow_s."""

        def check() -> str:
            started = time.monotonic()
            deadline = started + self.config.j3072.follow_s + 2
            while time.monotonic() < deadline:
                limit = query(self.config.control_socket)["authorization"]["limit_w"]
                if limit == watts:
                    return f"limit in effect {limit} W, {time.monotonic() - started:.1f} s later"
                time.sleep(0.1)
            raise AssertionError(f"the limit in effect is {limit} W, not {watts} W")

        return check

    def energized(self, pev: BackgroundPev, value: bool = True) -> Callable[[], str]:
        def check() -> str:
            deadline = time.monotonic() + 3
            while pev.energize is not value and time.monotonic() < deadline:
                time.sleep(0.02)
            history = pev.client.log.energize_history
            assert pev.energize is value, f"the vehicle saw {history}"
            return f"by {history[-1].via}, {history[-1].at_s:.2f} s into its session"

        return check

    def dispatch(self, pev: BackgroundPev) -> Callable[[], str]:
        """The vehicle follows opModFixedW; the rig plays the power it sends to the grid."""

        def run() -> str:
            deadline = time.monotonic() + 3
            while pev.client.dispatched_w <= 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            watts = pev.client.dispatched_w
            assert watts > 0, "the vehicle saw no energized dispatch"
            self.rig.command(f"METER:W {watts:.0f}")
            time.sleep(0.3)  # a loop period: the firmware's meter check has read it
            pct = pev.client.fixed_w_pct
            return f"opModFixedW {pct:g} % of setMaxW -> METER:W {watts:.0f}"

        return run


def _approved_vehicle(story: Story) -> None:
    step = story.step
    what = "an approved, certified 4Q vehicle: authorized, discharges at the dispatch"
    story.timeline.section(
        "approved-vehicle", what + ", follows a control change, then goes over its limit"
    )
    story.plug_in_and_match()
    pev = story.start_vehicle(APPROVED_PROFILE)
    step("vehicle runs the J3072 exchange (TLS)", story.decision(True))
    step("vehicle sees opModEnergize = true", story.energized(pev))
    step("vehicle requests charge", story.send("EV:STATE C"))
    step("EVSE closes the contactor", story.relay("CLOSED", 3000))
    step("EVSE closes the discharge path", story.relay("CLOSED", 1000, "DISCHARGE"))
    step("vehicle discharges at the dispatched power", story.dispatch(pev))
    step("evse-gatekeeper status", story.status("authorized"))
    step("site owner: evse-gatekeeper control max-lim-w percent=20",
         story.change_control("max-lim-w", "percent=20"))  # fmt: skip
    step("vehicle answers the superseding control and follows it", story.follows(pev, "max-lim-w"))
    step("the gate holds it to 20 % of setMaxW", story.limit(1440))
    step("evse-gatekeeper status", story.status("authorized"))
    step("vehicle discharges over its limit", story.send("METER:W 3000"))
    step("EVSE revokes, the discharge path opens", story.relay("OPEN", 1000, "DISCHARGE"))
    step("vehicle sees opModEnergize = false", story.energized(pev, False))
    step("vehicle stops discharging within 3 s", story.send("METER:W 0"))
    step("main stays closed: plain charging", story.stays_open_is("MAIN", "CLOSED"))
    step("evse-gatekeeper status", story.status("revoked"))
    story.unplug()
    pev.stop()


def _unapproved_vehicle(story: Story) -> None:
    step = story.step
    story.timeline.section("denied-vehicle", "a vehicle whose ISM is not on the approval "
                           "list: denied, just charges")  # fmt: skip
    story.plug_in_and_match()
    pev = story.start_vehicle(DENIED_PROFILE)
    step("vehicle runs the J3072 exchange (TLS)", story.decision(False))
    step("vehicle requests charge", story.send("EV:STATE C"))
    step("EVSE closes the contactor (after protection)", story.relay("CLOSED", 15000))
    step("the discharge path stays open", story.stays_open("DISCHARGE", 1500))
    step("evse-gatekeeper status", story.status("denied"))
    story.unplug()
    pev.stop()


def _basic_session(story: Story) -> None:
    step = story.step
    story.timeline.section("basic-session", "a vehicle charges by PWM alone")
    story.plug_in_and_match()
    step("vehicle requests charge", story.send("EV:STATE C"))
    step("EVSE closes the contactor", story.relay("CLOSED", 3000))
    step("vehicle stops charging", story.send("EV:STATE B"))
    step("EVSE opens the contactor", story.relay("OPEN", 100))
    story.unplug()


def _fault_and_recovery(story: Story) -> None:
    step, send, relay = story.step, story.send, story.relay
    story.timeline.section("fault-and-recovery", "a fault while charging, and its recovery")
    step("vehicle plugs in and requests charge", send("EV:STATE B", "EV:STATE C"))
    step("EVSE closes (after contact protection)", relay("CLOSED", 15000))
    step("the vehicle's diode shorts", send("EV:DIODE SHORT"))
    step("EVSE opens the contactor", relay("OPEN", 100))
    step("EVSE signals state F", story.duty(0, 0))
    step("EVSE returns to +12 V, fault latched", story.duty(100, 100))
    step("vehicle unplugs, diode repaired", send("EV:STATE A", "EV:DIODE OK"))
    step("vehicle plugs in again", send("EV:STATE B"))
    step("EVSE offers power again", story.offered())
    step("vehicle unplugs", send("EV:STATE A"))
    step("pilot back to steady +12 V", story.duty(100, 100))


def _certification_only(story: Story) -> None:
    """The utility's other choice: the certification tag alone. The vehicle whose ISM no list
    approves is authorized, and the decision says what it checked."""
    step = story.step
    what = "the same unlisted vehicle, authorized on its J3072 tag alone"
    story.timeline.section("certification-only", f"policy certification-only: {what}")
    story.plug_in_and_match()
    pev = story.start_vehicle(DENIED_PROFILE)
    step("vehicle runs the J3072 exchange (TLS)", story.decision(True))
    step("vehicle requests charge", story.send("EV:STATE C"))
    step("EVSE closes the contactor", story.relay("CLOSED", 15000))
    step("EVSE closes the discharge path", story.relay("CLOSED", 1000, "DISCHARGE"))
    step("evse-gatekeeper status", story.status("authorized"))
    story.unplug()
    pev.stop()


def _policy_phase(daemon_config: str, state_dir: Path, timeline: Timeline) -> None:
    """The daemon again under ``[approvals] policy = "certification-only"`` (a config of its
    own next to the demo's), for one vehicle."""
    text = Path(daemon_config).read_text()
    if "policy" in tomllib.loads(text).get("approvals", {}):
        return  # the operator chose a policy: the story above ran under it
    derived = state_dir / "demo-certification-only.toml"
    derived.write_text(
        text.replace("[approvals]\n", '[approvals]\npolicy = "certification-only"\n', 1)
    )
    timeline.failures += run_phase(derived, state_dir / "demo-daemon-policy.log", "policy",
                                   _certification_only)  # fmt: skip


def run_phase(derived: Path, log_file: Path, name: str, play: Callable[[Story], None]) -> list[str]:
    """A daemon of its own under the config ``derived`` (logging to ``log_file``), with one
    story played against it on its rig; what failed, the daemon's exit included."""
    config = load_config(derived)
    daemon = Daemon(derived, log_file=log_file)
    phase = Timeline(daemon)
    try:
        daemon.wait_for("gatekeeper.ready", timeout_s=15)
        with wait_for_rig(config.board.mock.rig_link or "") as rig:
            duty = current_to_duty_permille(config.charger.max_current_a)
            assert duty is not None
            play(Story(rig, phase, config, duty / 10))
    except (TimeoutError, RuntimeError, RigError) as err:
        phase.failures.append(str(err))
    finally:
        if daemon.stop() != 0:
            phase.failures.append(f"the {name} phase's daemon did not exit 0 on SIGTERM")
    return phase.failures


def _play(story: Story) -> None:
    story.rig.reset()
    story.rig.command("EVENTS ON")  # the report's timeline: pilot and relay changes
    runner = Runner(Target(story.rig, frozenset(), story.timeline.daemon), echo=lambda _: None)
    runner.t0 = story.timeline.start  # one time axis for the steps, samples and log lines
    runner.wall0 = time.time() - (time.monotonic() - story.timeline.start)
    story.timeline.runner = runner
    config = story.config
    if config.sep2.enabled and config.plc.enabled:
        _approved_vehicle(story)
        _unapproved_vehicle(story)
    else:
        _basic_session(story)
    _fault_and_recovery(story)


def _with_utility_key(config_path: str, state_dir: Path) -> str:
    """The mock config plus a TEST utility key (made once under the state dir): the config
    the demo's daemon runs with, written next to the key."""
    from hil.utility import KEY_FILE, PUBLIC_FILE, keygen

    directory = state_dir / "utility"
    if not (directory / KEY_FILE).exists():
        keygen(directory)
        print(f"made a TEST utility key in {directory} (not for production)")
    settings = tomllib.loads(Path(config_path).read_text())
    if "approvals" in settings:
        return config_path  # the operator's own keys: use them as they are
    from hil.firmware_process import toml_dumps

    settings["approvals"] = {"utility_keys": [str((directory / PUBLIC_FILE).resolve())]}
    # the demo's: a vehicle has 3 s to follow a change (30 s on a board)
    settings.setdefault("j3072", {})["follow_s"] = 3
    derived = state_dir / "demo.toml"
    derived.write_text(toml_dumps(settings))
    return str(derived)


def _ensure_utility_list(config: Config, config_path: str) -> None:
    """Install a fresh list signed by the TEST utility key, approving the simulated certified
    vehicle's ISM, the way an operator does (``approvals install``: verified, journaled)."""
    keys = config.approvals.utility_keys
    if not keys:
        return
    from firmware.daemon.cli import main as cli
    from hil.pev.profiles import APPROVED_ISM
    from hil.utility import KEY_FILE, load_key, signed_list

    key = load_key(keys[0].parent / KEY_FILE)
    version = int(time.time())  # strictly increasing from run to run
    jws = signed_list(key, service_area=config.site.service_area, version=version,
                      approve={APPROVED_ISM: 6000})  # fmt: skip
    path = Path(config.paths.state_dir) / "demo-approval-list.jws"
    path.write_text(jws)
    print("approvals install: ", end="", flush=True)
    if cli(["approvals", "install", str(path), "--config", config_path]) != 0:
        raise SystemExit("demo: the approval list was refused")


def _ensure_test_pki(ca_file: Path | None) -> None:
    """The mock config points at TEST credentials under the state dir: make them once, and
    again when those there predate the 2030.5 certificatePolicies (the server refuses them)."""
    if ca_file is None:
        return
    from firmware.sep2.identity import load_certificate, policy_problem
    from firmware.sep2.pki import init_pki

    directory = ca_file.parent
    if ca_file.exists():
        pev = directory / "pev-certified-4q.pem"
        if not pev.exists() or policy_problem(load_certificate(pev)) is None:
            return
        aside = directory.with_name(f"{directory.name}.old-{int(time.time())}")
        directory.rename(aside)
        print(f"moved TEST credentials without 2030.5 certificatePolicies to {aside}")
    init_pki(directory)
    print(f"made TEST credentials in {directory} (not for production)")


IDLE_S = 3.0  # how long the CPU use at rest is measured after start


def _say_footprints(when: str, daemon: Daemon, cpu_since: dict[str, tuple[float, float]]) -> None:
    """Each process's memory now, and its CPU use since ``cpu_since`` (then reset)."""
    try:
        pids = daemon_pids(daemon.proc.pid)
        shown = {name: (footprint(pid), cpu_seconds(pid)) for name, pid in pids.items()}
    except OSError as err:  # the daemon is gone: the story's failure says why
        print(f"  memory {when}: unreadable ({err.strerror})")
        return
    now = time.monotonic()
    for name, (used, cpu_s) in shown.items():
        cpu = ""
        if name in cpu_since:
            cpu_then, then = cpu_since[name]
            cpu = f"; CPU {100 * (cpu_s - cpu_then) / (now - then):.1f} % of one core"
        print(f"  {when}, {name} process: {used}{cpu}")
        cpu_since[name] = (cpu_s, now)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--config", default="config/mock.toml")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print("\n".join(f"demo: config: {p}" for p in err.problems), file=sys.stderr)
        return 2
    rig_link = config.board.mock.rig_link
    if config.board.backend != "mock" or not rig_link:
        print("demo: needs the mock backend with [hal.mock] rig_link set", file=sys.stderr)
        return 2
    duty = current_to_duty_permille(config.charger.max_current_a)
    assert duty is not None  # the config loader range-checks max_current_a
    state_dir = Path(config.paths.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    _ensure_test_pki(config.tls.ca_file)
    daemon_config = args.config
    if config.sep2.enabled:
        daemon_config = _with_utility_key(args.config, state_dir)
        config = load_config(daemon_config)
        _ensure_utility_list(config, daemon_config)
    log_path = state_dir / "demo-daemon.log"
    print(f"evse-gatekeeper demo: mock board, virtual rig at {rig_link}\n")
    daemon = Daemon(Path(daemon_config), log_file=log_path)
    report: Path | None = None
    identity: dict[str, str] = {}
    timeline = Timeline(daemon)
    try:
        daemon.wait_for("gatekeeper.ready", timeout_s=15)
        with wait_for_rig(rig_link) as rig:
            identity = rig.identify()
            print(f"  rig: {' '.join(f'{k}={v}' for k, v in identity.items())}")
            timeline.show_firmware("start-up")
            cpu: dict[str, tuple[float, float]] = {}
            _say_footprints("after start", daemon, cpu)
            time.sleep(IDLE_S)
            _say_footprints(f"at rest ({IDLE_S:g} s)", daemon, cpu)
            _play(Story(rig, timeline, config, duty / 10))
            _say_footprints("over the story", daemon, cpu)
    except (TimeoutError, RuntimeError, RigError) as err:
        timeline.failures.append(str(err))
    finally:
        if timeline.runner is not None:
            report = timeline.write_report(Path("reports"), daemon_config, identity, log_path)
        code = daemon.stop()
    if code != 0:
        timeline.failures.append(f"daemon exited with {code} on SIGTERM")
    if config.sep2.enabled and config.plc.enabled and not timeline.failures:
        _policy_phase(daemon_config, state_dir, timeline)
        if not timeline.failures and not config.ocpp.enabled:
            from demo.ocpp_phase import ocpp_phase

            ocpp_phase(daemon_config, state_dir, timeline.failures)
    print(f"\n  daemon stopped (exit {code}); its log: {log_path}")
    if report is not None:
        print(f"  report: {report} (open it in a browser)")
    journal = state_dir / "journal.sqlite3"
    print(f"  journal: {journal} (evse-gatekeeper sessions --config {args.config})")
    if timeline.failures:
        print(f"\nFAILED: {len(timeline.failures)} step(s) misbehaved", file=sys.stderr)
        return 1
    print("\nsession behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
