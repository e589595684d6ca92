"""``make run``: start the firmware on the mock board and play one vehicle through the rig.

Plug in -> PWM duty -> charge -> stop -> unplug, then a fault while charging and its
recovery, printed as a timeline with the latencies measured on the rig's clock. Exits 0 only
when every step behaved as J1772 requires; the daemon's full log is kept in the state dir.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from firmware.config import Config, load_config
from firmware.errors import ConfigError
from firmware.pilot.duty import current_to_duty_permille
from hil.daemon import Daemon
from hil.pev.report import Step
from hil.rig import Rig, RigError, wait_for_rig

PEV_PROFILE = "certified-4q"
PEV_SESSION_S = 2.5  # heartbeats after the exchange (the decision itself is issue #5)
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
)


class Timeline:
    def __init__(self, daemon: Daemon) -> None:
        self.start = time.monotonic()
        self.daemon = daemon
        self.failures: list[str] = []

    def step(self, what: str, action: Callable[[], str]) -> None:
        stamp = time.monotonic() - self.start
        try:
            result, ok = action(), True
        except (RigError, AssertionError, TimeoutError) as err:
            result, ok = str(err), False
            self.failures.append(f"{what}: {err}")
        mark = "ok " if ok else "FAIL"
        print(f"  {stamp:7.3f} s  [{mark}] {what:<38} {result}")
        time.sleep(0.05)  # let the firmware's log lines for this step arrive
        self.show_firmware()

    def show_firmware(self, heading: str = "") -> None:
        shown = [line for line in self.daemon.drain() if any(k in line for k in SHOWN_EVENTS)]
        if shown and heading:
            print(f"  {heading}:")
        for line in shown:
            print(f"{'':22}firmware: {line.split(' ', 2)[-1]}")


def _pev_exchange(config: Config) -> Callable[[], str]:
    """The simulated vehicle's 2030.5 client against the daemon's server, over real TLS."""

    def run() -> str:
        from hil.pev.client import PevClient
        from hil.pev.profiles import PROFILES

        assert config.tls.ca_file is not None
        server = f"https://[{config.sep2.host}]:{config.sep2.port}"
        steps: list[str] = []

        def shown(step: Step) -> None:
            if not step.routine:
                status = step.status or "ok"
                steps.append(f"{step.method:<4} {step.href:<24} {status} "
                             f"{step.latency_ms:6.1f} ms  {step.name}")  # fmt: skip

        client = PevClient(server, config.tls.ca_file.parent, PROFILES[PEV_PROFILE],
                           on_step=shown)  # fmt: skip
        report = asyncio.run(client.run(PEV_SESSION_S))
        for line in steps:
            print(f"{'':22}vehicle:  {line}")
        if not report.ok:
            raise AssertionError("; ".join(report.summary()[1:]))
        counts = f"{len(steps)} requests, {report.responses_posted} Responses"
        return f"{counts}, {report.heartbeats_sent} heartbeats, opModEnergize={report.energize}"

    return run


def _play(
    rig: Rig, timeline: Timeline, duty_pct: float, max_current_a: float, config: Config
) -> None:
    plc = config.plc.enabled

    def expect_duty(low: float, high: float) -> Callable[[], str]:
        def check() -> str:
            duty, elapsed = rig.wait_duty(low, high, 1000)
            return f"pilot duty {duty:.1f} % after {elapsed / 1000:.1f} ms"

        return check

    def expect_relay(position: str, limit_ms: int) -> Callable[[], str]:
        def check() -> str:
            elapsed = rig.wait_relay("MAIN", position, limit_ms)
            assert elapsed <= limit_ms * 1000, f"took {elapsed / 1000:.1f} ms > {limit_ms} ms"
            return f"main {position.lower()} after {elapsed / 1000:.1f} ms (limit {limit_ms} ms)"

        return check

    def send(*commands: str) -> Callable[[], str]:
        def run() -> str:
            for command in commands:
                rig.command(command)
            return " ; ".join(commands)

        return run

    def expect_log(*needles: str) -> Callable[[], str]:
        since = len(timeline.daemon.lines)

        def check() -> str:
            timeline.daemon.wait_for_all(needles, since, timeout_s=5)
            return "firmware log: " + ", ".join(needles)

        return check

    step = timeline.step
    rig.reset()
    step("vehicle plugs in", send("EV:STATE B"))
    step(f"EVSE offers {max_current_a:g} A", expect_duty(duty_pct - 0.05, duty_pct + 0.05))
    if plc:
        joined = expect_log("plc.slac_matched", "plc.link state=up")
        step("vehicle's PLC modem joins", send("EV:PLC ON"))
        step("SLAC matches, the PLC link is up", joined)
    if config.sep2.enabled:
        step("vehicle runs the J3072 exchange (TLS)", _pev_exchange(config))
    step("vehicle requests charge", send("EV:STATE C"))
    step("EVSE closes the contactor", expect_relay("CLOSED", 3000))
    step("vehicle stops charging", send("EV:STATE B"))
    step("EVSE opens the contactor", expect_relay("OPEN", 100))
    left = expect_log("plc.link state=down", "set_key modem=evse")
    step("vehicle unplugs", send("EV:STATE A", "EV:PLC OFF"))
    step("pilot back to steady +12 V", expect_duty(100, 100))
    if plc:
        step("PLC link down, EVSE re-keys its modem", left)
    print("\n  -- a fault while charging, and its recovery --")
    step("vehicle plugs in and requests charge", send("EV:STATE B", "EV:STATE C"))
    step("EVSE closes (after contact protection)", expect_relay("CLOSED", 15000))
    step("the vehicle's diode shorts", send("EV:DIODE SHORT"))
    step("EVSE opens the contactor", expect_relay("OPEN", 100))
    step("EVSE signals state F", expect_duty(0, 0))
    step("EVSE returns to +12 V, fault latched", expect_duty(100, 100))
    step("vehicle unplugs, diode repaired", send("EV:STATE A", "EV:DIODE OK"))
    step("vehicle plugs in again", send("EV:STATE B"))
    step("EVSE offers power again", expect_duty(duty_pct - 0.05, duty_pct + 0.05))
    step("vehicle unplugs", send("EV:STATE A"))
    step("pilot back to steady +12 V", expect_duty(100, 100))


def _ensure_test_pki(ca_file: Path | None) -> None:
    """The mock config points at TEST credentials under the state dir: make them once."""
    if ca_file is None or ca_file.exists():
        return
    from firmware.sep2.pki import init_pki

    init_pki(ca_file.parent)
    print(f"made TEST credentials in {ca_file.parent} (not for production)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.demo", description=__doc__)
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
    log_path = state_dir / "demo-daemon.log"
    print(f"evse-gatekeeper demo: mock board, virtual rig at {rig_link}\n")
    daemon = Daemon(Path(args.config), log_file=log_path)
    timeline = Timeline(daemon)
    try:
        daemon.wait_for("gatekeeper.ready", timeout_s=15)
        with wait_for_rig(rig_link) as rig:
            print(f"  rig: {' '.join(f'{k}={v}' for k, v in rig.identify().items())}")
            timeline.show_firmware("start-up")
            print()
            _play(rig, timeline, duty / 10, config.charger.max_current_a, config)
    except (TimeoutError, RuntimeError, RigError) as err:
        timeline.failures.append(str(err))
    finally:
        code = daemon.stop()
    if code != 0:
        timeline.failures.append(f"daemon exited with {code} on SIGTERM")
    print(f"\n  daemon stopped (exit {code}); its log: {log_path}")
    if timeline.failures:
        print(f"\nFAILED: {len(timeline.failures)} step(s) misbehaved", file=sys.stderr)
        return 1
    print("\nsession behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
