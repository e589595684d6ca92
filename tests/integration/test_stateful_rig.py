"""Random sequences of rig stimuli against the running daemon; the safety invariants are
checked after every step on what the rig measures:

- main closed => the pilot is in C (or D where the site has ventilation), the PWM runs, no
  fault is latched (neither in the firmware's own log nor in an independent hazard model);
- discharge closed => main closed;
- with a type 1 handle monitored: main closed => the latch is seen closed (PP 150 Ohm).

The model is deliberately conservative: a hazard (residual current, pilot short, a shorted
diode on a plugged-in vehicle) counts until the vehicle could be seen unplugged with every
hazard gone, and while it counts the contactor must be open.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.integration.conftest import Running, StartDaemon

pytestmark = [pytest.mark.integration, pytest.mark.parallel]

SETTLE_S = 0.06  # two samples + the relay's 10 ms + the loop, with margin
LATCH_EVENTS = ("fault.latched", "fault.cleared")


@dataclass
class Model:
    state: str = "A"
    diode_short: bool = False
    pilot_short: bool = False
    pe: bool = True
    rcd: str = "NONE"
    pp: str = "OPEN"
    hazard: bool = False

    def update(self) -> None:
        plugged = self.pe and self.state != "A"
        if self.rcd != "NONE" or (self.pilot_short and self.pe) or (self.diode_short and plugged):
            self.hazard = True
        elif not plugged:
            self.hazard = False


def firmware_latched(lines: list[str]) -> set[str]:
    latched: set[str] = set()
    for line in lines:
        if "fault.latched" in line:
            latched.add(line.split("kind=")[1].split()[0])
        elif "fault.cleared" in line:
            latched.clear()
    return latched


class Harness:
    """One daemon, restarted only when an example leaves it permanently inoperative."""

    def __init__(self, start: StartDaemon, ventilation: bool, proximity: str) -> None:
        self._start = start
        self.ventilation = ventilation
        self.proximity = proximity
        self.running: Running | None = None

    def fresh(self) -> Running:
        running = self.running
        if running is not None and any(
            "kind=main_" in ln or "kind=discharge_" in ln for ln in running.daemon.lines
        ):
            assert running.stop() == 0
            running = None
        if running is None:
            running = self._start(
                charger={"ventilation": self.ventilation, "proximity": self.proximity}
            )
            self.running = running
        return running


class RigStimuli(RuleBasedStateMachine):
    harness: Harness

    @initialize()
    def plug_out(self) -> None:
        self.run = self.harness.fresh()
        self.rig = self.run.rig
        self.rig.command("*RST")
        self.rig.command("PP:RES 150")  # a type 1 handle, latched
        time.sleep(0.4)  # any F hold from the last example ends; the firmware sees A
        self.model = Model(pp="150")

    def _stimulus(self, command: str, **change: object) -> None:
        self.rig.command(command)
        for key, value in change.items():
            setattr(self.model, key, value)
        self.model.update()

    @rule(letter=st.sampled_from("ABCD"))
    def ev_state(self, letter: str) -> None:
        self._stimulus(f"EV:STATE {letter}", state=letter)

    @rule(short=st.booleans())
    def diode(self, short: bool) -> None:
        self._stimulus(f"EV:DIODE {'SHORT' if short else 'OK'}", diode_short=short)

    @rule(on=st.booleans())
    def pilot_short(self, on: bool) -> None:
        self._stimulus(f"EV:SHORT {'ON' if on else 'OFF'}", pilot_short=on)

    @rule(connected=st.booleans())
    def pe(self, connected: bool) -> None:
        self._stimulus(f"EV:PE {'ON' if connected else 'OFF'}", pe=connected)

    @rule(kind=st.sampled_from(["NONE", "NONE", "DC", "AC"]))
    def rcd(self, kind: str) -> None:
        self._stimulus(f"RCD:TRIP {kind}", rcd=kind)

    @rule(
        relay=st.sampled_from(["MAIN", "DISCHARGE"]),
        mode=st.sampled_from(["FOLLOW", "FOLLOW", "FOLLOW", "STUCK_CLOSED", "STUCK_OPEN"]),
    )
    def feedback(self, relay: str, mode: str) -> None:
        self._stimulus(f"FB:{relay} {mode}")

    @rule(ohm=st.sampled_from(["150", "150", "480", "OPEN", "30"]))
    def proximity(self, ohm: str) -> None:
        self._stimulus(f"PP:RES {ohm}", pp=ohm)

    @rule(ms=st.integers(min_value=50, max_value=1300))
    def wait(self, ms: int) -> None:
        time.sleep(ms / 1000)  # lets timers fire: F hold, weld re-check, contact protection

    @invariant()
    def relays_only_closed_when_safe(self) -> None:
        if not hasattr(self, "rig"):
            return
        time.sleep(SETTLE_S)
        relays = self.rig.relays()
        pilot = self.rig.measure_pilot()
        if relays["discharge"] == "CLOSED":
            assert relays["main"] == "CLOSED", "discharge closed without main"
        if relays["main"] != "CLOSED":
            return
        allowed = ("C", "D") if self.harness.ventilation else ("C",)
        assert pilot["state"] in allowed, f"main closed with the pilot in {pilot['state']}"
        assert 0.0 < float(pilot["duty_pct"]) < 100.0, f"main closed without PWM: {pilot}"
        assert not self.model.hazard, f"main closed during a hazard: {self.model}"
        if self.harness.proximity == "type1":
            assert self.model.pp == "150", f"main closed with PP at {self.model.pp}"
        latched = firmware_latched(self.run.daemon.lines)
        assert not latched, f"main closed with latched faults {latched}"


@pytest.mark.timeout(900)  # real time: shrinking a failure takes minutes, let it finish
@pytest.mark.parametrize(
    ("ventilation", "proximity"), [(False, "none"), (True, "none"), (False, "type1")]
)
def test_random_rig_stimuli_keep_the_invariants(
    start_daemon: StartDaemon, ventilation: bool, proximity: str
) -> None:
    RigStimuli.harness = Harness(start_daemon, ventilation, proximity)
    runner = RigStimuli.TestCase
    runner.settings = settings(
        max_examples=int(os.environ.get("STATEFUL_EXAMPLES", "12")),  # nightly: more
        stateful_step_count=18,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    runner().runTest()
