"""Run HIL scenarios against a rig: send the stimuli, measure, judge each step.

Owns the per-scenario protocol (``*RST`` and unplugged at the start, unplugged at the end,
a failing step ends the scenario), the latency records (rig clock for ``WAIT:*`` after a rig
stimulus, host clock after a vehicle action the rig cannot see) and the timeline samples the
report plots. It does not start daemons or write reports (``hil.__main__``, ``hil.report``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from firmware.daemon.control_socket import ControlError, request
from hil.firmware_process import Daemon
from hil.pev.background import BackgroundPev
from hil.pev.profiles import PROFILES
from hil.rig import Rig, RigError
from hil.scenario import Action, BoardCommand, Expect, Pause, Scenario, Send, VehicleAction

MARGIN_MS = 1000  # how much longer than a limit the rig is asked to wait, to report the overshoot
# Unplugged long enough for the EVSE to confirm A (two samples) and clear A-cleared latches:
# a re-plug sooner is not an unplug to it.
UNPLUGGED_DWELL_S = 0.15
# The plug in the socket at every fresh start, on a board that monitors proximity: a latched
# type 1 handle (150 ohm), a 32 A type 2 cable (220 ohm) (docs/j1772.md "Proximity").
PLUGGED_PP = {"proximity-type1": "PP:RES 150", "proximity-type2": "PP:RES 220"}


class StepFailed(Exception):
    """Raised when a step's expectation is not met; the message is the verdict's reason."""


class RigLacks(Exception):
    """Raised when the rig refuses a stimulus as UNSUPPORTED: the scenario is skipped."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    t_s: float  # since the run started (host clock)
    what: str
    result: str
    ok: bool


@dataclass(frozen=True, slots=True)
class Latency:
    scenario: str
    kind: str  # "relay MAIN OPEN", "duty 0..0", ...
    measured_ms: float | None  # None: never observed
    limit_ms: int
    clock: str  # "rig" or "host"

    @property
    def ok(self) -> bool:
        return self.measured_ms is not None and self.measured_ms <= self.limit_ms


@dataclass
class ScenarioResult:
    scenario: Scenario
    verdict: str = "PASS"  # PASS | FAIL | SKIP
    reason: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)
    start_s: float = 0.0
    end_s: float = 0.0
    variant: str = ""  # the board config it ran under, where not the base one


@dataclass(frozen=True, slots=True)
class Sample:
    """What the rig saw at one instant; None: not part of this sample."""

    t_s: float
    pilot: str | None = None
    duty_pct: float | None = None
    main: str | None = None
    discharge: str | None = None


@dataclass
class Target:
    """The board under test as the runner reaches it."""

    rig: Rig
    capabilities: frozenset[str]
    daemon: Daemon | None = None  # set when the runner owns the daemon (its log is readable)
    sep2_url: str | None = None
    pki_dir: Path | None = None
    control: Path | None = None  # the board's control socket, for ``board`` steps
    variant: str = ""  # a config variant the board runs under (the virtual board's overlays)


class Runner:
    def __init__(self, target: Target, echo: Callable[[str], None] = print) -> None:
        self.target = target
        self.echo = echo
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.samples: list[Sample] = []
        self._event_offset_s: float | None = None  # host seconds minus rig seconds
        self._mark: tuple[str, float] = ("rig", 0.0)  # what the next latency is measured from
        self._log_mark = 0
        self._pev: BackgroundPev | None = None
        self._limited = False  # a ``board`` step changed the current limit: restore it
        self.retired_log: list[str] = []  # the lines of daemons the runner has restarted
        self.restarts: list[tuple[float, str]] = []  # (run seconds, why) for the report

    def now(self) -> float:
        return time.monotonic() - self.t0

    # --- one scenario -----------------------------------------------------------------

    def skip_reason(self, scenario: Scenario) -> str:
        missing = [c for c in scenario.requires if c not in self.target.capabilities]
        if missing:
            return f"the board under test lacks {', '.join(missing)}"
        if scenario.vehicle and not (self.target.sep2_url and self.target.pki_dir):
            return "needs the vehicle simulator: give --sep2 URL and --pki DIR"
        return ""

    def run(self, scenario: Scenario) -> ScenarioResult:
        result = ScenarioResult(scenario, start_s=self.now(), variant=self.target.variant)
        reason = self.skip_reason(scenario)
        if reason:
            result.verdict, result.reason, result.end_s = "SKIP", reason, self.now()
            self.echo(f"SKIP {scenario.name}: {reason}")
            return result
        self.echo(f"---- {scenario.name}: {scenario.description}")
        try:
            self._fresh_start(result)
            for step in scenario.steps:
                what, action = self._describe(step.action), step.action
                try:
                    text = self._do(action, result)
                except RigError as err:
                    if err.code == "UNSUPPORTED" and isinstance(action, Send):
                        self._record(result, what, str(err), ok=True)
                        raise RigLacks(f"the rig lacks {what.removeprefix('send ')}") from None
                    self._record(result, what, str(err), ok=False)
                    raise StepFailed(f"{what}: {err}") from None
                except (StepFailed, TimeoutError, RuntimeError) as err:
                    self._record(result, what, str(err), ok=False)
                    raise StepFailed(f"{what}: {err}") from None
                self._record(result, what, text, ok=True)
        except StepFailed as err:
            result.verdict, result.reason = "FAIL", str(err)
        except RigLacks as err:
            result.verdict, result.reason = "SKIP", str(err)
        finally:
            self._unplug(result)
            result.end_s = self.now()
        line = f"{result.verdict} {scenario.name}" + (f": {result.reason}" if result.reason else "")
        self.echo(line)
        return result

    def _record(self, result: ScenarioResult, what: str, text: str, ok: bool) -> None:
        record = StepRecord(self.now(), what, text, ok)
        result.steps.append(record)
        self.echo(f"  {record.t_s:8.3f} s  [{'ok' if ok else 'FAIL'}] {what:<44} {text}")
        self.sample()

    def _fresh_start(self, result: ScenarioResult) -> None:
        rig = self.target.rig
        rig.reset()
        rig.command("EVENTS ON")
        self._mark = ("rig", self.now())
        rig.wait_relay("MAIN", "OPEN", 1000)
        rig.wait_relay("DISCHARGE", "OPEN", 1000)
        plugs = [PLUGGED_PP[c] for c in sorted(PLUGGED_PP) if c in self.target.capabilities]
        for command in plugs:
            rig.command(command)
        time.sleep(UNPLUGGED_DWELL_S)
        self._log_mark = self._log_len()
        what = " ; ".join(["*RST (unplugged, no faults)", *plugs])
        self._record(result, what, "both relays open", ok=True)

    def _unplug(self, result: ScenarioResult) -> None:
        rig = self.target.rig
        try:
            rig.command("EV:STATE A")
            rig.command("EV:PLC OFF")
            rig.command("METER:W 0")
            rig.wait_relay("MAIN", "OPEN", 500)
            rig.wait_relay("DISCHARGE", "OPEN", 500)
            time.sleep(UNPLUGGED_DWELL_S)
            self._record(result, "vehicle unplugs (EV:STATE A)", "both relays open", ok=True)
        except RigError as err:
            self._record(result, "vehicle unplugs (EV:STATE A)", str(err), ok=False)
        if self._limited:
            self._limited = False
            try:
                request(self._control(), "limit default")
                self._record(result, "board limit default", "the configured rating", ok=True)
            except (ControlError, StepFailed) as err:
                self._record(result, "board limit default", str(err), ok=False)
        if self._pev is not None:
            # a vehicle that does not finish is a daemon thread: the next one starts afresh
            with contextlib.suppress(TimeoutError):
                self._pev.stop(timeout_s=5)
            self._pev = None

    # --- steps ------------------------------------------------------------------------

    @staticmethod
    def _describe(action: Action) -> str:
        if isinstance(action, Send):
            return "send " + " ; ".join(action.commands)
        if isinstance(action, Pause):
            return f"wait {action.ms} ms"
        if isinstance(action, BoardCommand):
            return f"board {action.command}"
        if isinstance(action, VehicleAction):
            return f"vehicle {action.action}"
        return "expect " + action.text

    def _do(self, action: Action, result: ScenarioResult) -> str:
        if isinstance(action, Send):
            for command in action.commands:
                self.target.rig.command(command)
            self._mark, self._log_mark = ("rig", self.now()), self._log_len()
            return "OK"
        if isinstance(action, Pause):
            time.sleep(action.ms / 1000)
            return "done"
        if isinstance(action, BoardCommand):
            return self._board(action.command)
        if isinstance(action, VehicleAction):
            return self._vehicle(action.action, result.scenario)
        return self._expect(action, result)

    def _control(self) -> Path:
        if self.target.control is None:
            raise StepFailed("the board's control socket is not known (give --control PATH)")
        return self.target.control

    def _board(self, command: str) -> str:
        """A control-socket request; the rig cannot see it, so the host clock starts here."""
        self._limited = self._limited or command.startswith("limit")
        try:
            answer = request(self._control(), command)
        except ControlError as err:
            raise StepFailed(f"the board refused: {err}") from None
        self._mark, self._log_mark = ("host", self.now()), self._log_len()
        fields = " ".join(f"{k}={v}" for k, v in sorted(answer.items()))
        return f"{fields} (timed on the host clock from here)"

    def _vehicle(self, action: str, scenario: Scenario) -> str:
        target = self.target
        if action == "start":
            assert target.sep2_url and target.pki_dir and scenario.vehicle
            profile = PROFILES[scenario.vehicle]
            self._pev = BackgroundPev(target.sep2_url, target.pki_dir, profile).start()
            self._log_mark = self._log_len()
            return f"{profile.name} session started against {target.sep2_url}"
        if self._pev is None:
            raise StepFailed("no vehicle is running")
        if action == "silent":
            # the profile stops heartbeating after its count but stays connected and
            # plugged in: the host clock starts at its last heartbeat
            count = PROFILES[scenario.vehicle or ""].heartbeats or 0
            self._pev.wait_heartbeats(count, timeout_s=count + 5.0)
            self._mark, self._log_mark = ("host", self.now()), self._log_len()
            return f"silent after heartbeat {count} (timed on the host clock from here)"
        report = self._pev.stop(timeout_s=5)
        self._pev = None
        if report.expect_tls_failure:  # a vehicle whose certificate the EVSE must refuse
            if report.tls_failure is None:
                raise StepFailed("the EVSE accepted a certificate outside its trust chain")
            return f"TLS refused, as it must be: {report.tls_failure[:90]}"
        return f"session ended, {report.heartbeats_sent} heartbeats"

    def _expect(self, expect: Expect, result: ScenarioResult) -> str:
        if expect.kind in ("log", "nolog"):
            return self._expect_log(expect)
        if expect.kind == "pilot":
            return self._expect_pilot(expect)
        if expect.kind == "stays":
            return self._expect_stays(expect)
        rig = self.target.rig
        try:
            if expect.kind == "relay":
                what = f"relay {expect.relay} {expect.position}"
                elapsed_us = rig.wait_relay(
                    expect.relay, expect.position, expect.limit_ms + MARGIN_MS
                )
                seen = ""
            else:
                what = f"duty {expect.low_pct:g}..{expect.high_pct:g}"
                duty, elapsed_us = rig.wait_duty(
                    expect.low_pct, expect.high_pct, expect.limit_ms + MARGIN_MS
                )
                seen = f" ({duty:.1f} %)"
        except RigError as err:
            if err.code != "TIMEOUT":
                raise
            result.latencies.append(
                Latency(result.scenario.name, what, None, expect.limit_ms, self._mark[0])
            )
            raise StepFailed(
                f"expected {what} within {expect.limit_ms} ms: not seen in "
                f"{expect.limit_ms + MARGIN_MS} ms"
            ) from None
        clock, since = self._mark
        measured_ms = elapsed_us / 1000 if clock == "rig" else (self.now() - since) * 1000
        latency = Latency(result.scenario.name, what, measured_ms, expect.limit_ms, clock)
        result.latencies.append(latency)
        if measured_ms < expect.min_ms:
            raise StepFailed(
                f"expected {what} within {expect.min_ms}..{expect.limit_ms} ms, took "
                f"{measured_ms:.1f} ms ({clock} clock): too early"
            )
        if not latency.ok:
            raise StepFailed(
                f"expected {what} within {expect.limit_ms} ms, took "
                f"{measured_ms:.1f} ms ({clock} clock)"
            )
        return (
            f"{what}{seen} after {measured_ms:.1f} ms (limit {expect.limit_ms} ms, {clock} clock)"
        )

    def _expect_stays(self, expect: Expect) -> str:
        other = "CLOSED" if expect.position == "OPEN" else "OPEN"
        try:
            elapsed_us = self.target.rig.wait_relay(expect.relay, other, expect.limit_ms)
        except RigError as err:
            if err.code == "TIMEOUT":
                return f"relay {expect.relay} still {expect.position} after {expect.limit_ms} ms"
            raise
        raise StepFailed(
            f"expected relay {expect.relay} to stay {expect.position} for "
            f"{expect.limit_ms} ms: {other} {elapsed_us / 1000:.1f} ms after the "
            "last stimulus"
        )

    def _expect_pilot(self, expect: Expect) -> str:
        deadline = time.monotonic() + expect.limit_ms / 1000
        while True:
            seen = self.target.rig.measure_pilot()
            if seen.get("state") == expect.pilot:
                return (
                    f"pilot {seen['state']} (hi {seen.get('hi_mv')} mV, lo {seen.get('lo_mv')} mV)"
                )
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"expected pilot {expect.pilot} within {expect.limit_ms} ms: "
                    f"the rig sees {seen.get('state')}"
                )
            time.sleep(0.02)

    def _expect_log(self, expect: Expect) -> str:
        daemon = self.target.daemon
        if daemon is None:
            return "not checked: no daemon log (--log-command gives one)"
        if expect.kind == "nolog":
            found = [line for line in daemon.lines[self._log_mark :] if expect.needle in line]
            if found:
                raise StepFailed(f"expected no {expect.needle!r} in the log: {found[0]}")
            return f"no {expect.needle!r} in the log"
        try:
            daemon.wait_for_all((expect.needle,), self._log_mark, expect.limit_ms / 1000)
        except TimeoutError:
            raise StepFailed(
                f"expected log {expect.needle!r} within {expect.limit_ms} ms: not logged"
            ) from None
        line = next(x for x in daemon.lines[self._log_mark :] if expect.needle in x)
        return line.split(" ", 2)[-1][:100]

    def _log_len(self) -> int:
        return len(self.target.daemon.lines) if self.target.daemon else 0

    # --- the timeline -----------------------------------------------------------------

    def sample(self) -> None:
        """A MEAS poll now, plus the rig's EVENTS lines kept since the last one."""
        rig = self.target.rig
        try:
            pilot, relays = rig.measure_pilot(), rig.relays()
        except RigError:
            return
        now = self.now()
        for event in list(rig.events):
            offset = now - event.t_us / 1e6
            if self._event_offset_s is None or offset < self._event_offset_s:
                self._event_offset_s = offset  # the least delayed event bounds the offset best
        offset_s = self._event_offset_s or 0.0
        while rig.events:
            event = rig.events.popleft()
            fields = dict(w.split("=", 1) for w in event.words[1:] if "=" in w)
            at = event.t_us / 1e6 + offset_s
            if event.words and event.words[0] == "pilot":
                duty = float(fields.get("duty_pct", "nan"))
                self.samples.append(Sample(at, pilot=fields.get("state"), duty_pct=duty))
            elif event.words and event.words[0] == "relay":
                self.samples.append(
                    Sample(at, main=fields.get("main"), discharge=fields.get("discharge"))
                )
        self.samples.append(
            Sample(
                now,
                pilot.get("state"),
                float(pilot.get("duty_pct", "nan")),
                relays.get("main"),
                relays.get("discharge"),
            )
        )

    def authorization_changes(self) -> list[tuple[float, bool]]:
        """(run seconds, authorized) from the daemon's ``j3072.authorized``/``revoked`` lines."""
        daemon = self.target.daemon
        changes = []
        for line in self.retired_log + (daemon.lines if daemon else []):
            if "j3072.authorized" not in line and "j3072.revoked" not in line:
                continue
            try:
                stamp = datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
            except ValueError:
                continue
            changes.append((stamp - self.wall0, "j3072.authorized" in line))
        return changes
