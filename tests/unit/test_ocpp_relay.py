"""The CSMS's dispatch relayed to the vehicle, on the real J3072 gate and 2030.5 site
resources: it never exceeds the site owner's or the gate's limits, and a charging limit it set
never outlives what it was set for."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from firmware.daemon.control_socket import RequestRefused
from firmware.daemon.running import CurrentLimits
from firmware.journal.outbox import Outbox
from firmware.journal.recorder import Recorder
from firmware.ocpp.config import OcppConfig
from firmware.ocpp.relay import MAX_PROFILES, RETRY_S, DispatchRelay
from firmware.ocpp.upstream import StationView, Upstream
from firmware.sep2.functions import Mode, SiteFunction
from firmware.sep2.site import IssuedControl
from hil.pev.profiles import PROFILES
from tests.unit.test_j3072_gate import LFDI, SITE, World

RATING_A = 32.0


class Sep2(World):
    """The gate's world with the two calls the relay makes of the 2030.5 service."""

    def dispatch(self, lfdi: str, function: SiteFunction, set_by: str) -> IssuedControl:
        record = self.store.get(lfdi)
        assert record is not None
        return self.sep2.site.supersede(record, function, set_by)

    def restore(self, lfdi: str, mode: Mode) -> IssuedControl | None:
        record = self.store.get(lfdi)
        assert record is not None
        return self.sep2.site.restore(record, mode)


class Charger:
    """The daemon's current limits (``Running.set_csms_limit``) without the charger."""

    def __init__(self, owner_a: float | None = None) -> None:
        self.limits = CurrentLimits(owner_a=owner_a)
        self.offered: list[float] = []

    async def set_csms_limit(self, amps: float | None) -> dict[str, Any]:
        self.limits.csms_a = amps
        self.offered.append(self.limits.offered_a(RATING_A))
        return {"limit_a": self.offered[-1]}


def relay_for(world: Sep2, charger: Charger, synced: bool = True) -> DispatchRelay:
    world.sep2.dispatch = world.dispatch  # type: ignore[attr-defined]
    world.sep2.restore = world.restore  # type: ignore[attr-defined]
    upstream = Upstream(OcppConfig(url="wss://csms/ocpp"), Outbox(None, 100), 240)
    return DispatchRelay(world.gate, world.sep2, Recorder(None), upstream,  # type: ignore[arg-type]
                         charger.set_csms_limit, RATING_A, lambda: synced)  # fmt: skip


def authorized(site: Any = SITE) -> Sep2:
    world = Sep2(site)
    world.gate.plugged(True)
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.heartbeat(LFDI)
    world.gate.poll()
    assert world.gate.authorized
    return world


def profile(profile_id: int = 7, unit: str = "W", **period: Any) -> dict[str, Any]:
    return {"id": profile_id, "stack_level": 0, "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [{"id": 1, "charging_rate_unit": unit,
                                   "charging_schedule_period": [{"start_period": 0,
                                                                 **period}]}]}  # fmt: skip


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def in_effect(world: Sep2, mode: Mode) -> float | None:
    record = world.store.get(LFDI)
    assert record is not None and record.program is not None
    control = record.program.of(mode)
    return control.function.value if control is not None else None


def test_a_csms_discharge_cap_cannot_raise_the_site_owners() -> None:
    owner = replace(SITE, functions=(SiteFunction(Mode.MAX_LIM_W, value=40.0),))
    world = authorized(owner)
    relay = relay_for(world, Charger())
    status, code, text = run(relay.set_charging_profile(1, profile(discharge_limit=-1e6)))
    assert (status, code) == ("Accepted", "LimitedBySiteOwner") and "40" in str(text)
    assert in_effect(world, Mode.MAX_LIM_W) == 40.0, "the owner's 40 %, not the CSMS's 100 %"
    status, code, _ = run(relay.set_charging_profile(1, profile(discharge_limit=-100.0)))
    assert status == "Accepted" and code is None
    assert in_effect(world, Mode.MAX_LIM_W) is not None and in_effect(world, Mode.MAX_LIM_W) < 40


def test_a_setpoint_above_the_gates_limit_is_refused_with_a_reason() -> None:
    world = authorized()
    ceiling = world.gate.dispatch_ceiling_w()
    assert ceiling == 5000, "the approval list's cap for this ISM"
    relay = relay_for(world, Charger())
    status, code, text = run(relay.set_charging_profile(1, profile(setpoint=-6000.0)))
    assert (status, code) == ("Rejected", "OutOfRange") and "5000 W" in str(text)
    assert in_effect(world, Mode.FIXED_W) is None, "nothing was dispatched"
    assert run(relay.set_charging_profile(1, profile(setpoint=-4000.0)))[0] == "Accepted"
    status, code, _ = run(relay.set_charging_profile(
        1, profile(2, setpoint=-3000.0, discharge_limit=-2000.0)))  # fmt: skip
    assert (status, code) == ("Rejected", "OutOfRange"), "above its own dischargeLimit"


def test_a_charging_limit_is_the_lower_of_the_owners_and_the_csmss_and_clears_to_the_owners(
) -> None:  # fmt: skip
    world = authorized()
    charger = Charger(owner_a=16.0)
    relay = relay_for(world, charger)
    status, code, _ = run(relay.set_charging_profile(1, profile(unit="A", limit=24.0)))
    assert (status, code) == ("Accepted", "LimitedBySiteOwner")
    assert charger.offered[-1] == 16.0 and charger.limits.set_by() != "csms"
    run(relay.set_charging_profile(1, profile(unit="A", limit=10.0)))
    assert charger.offered[-1] == 10.0 and charger.limits.set_by() == "csms"
    assert run(relay.clear_charging_profile(None)) == "Accepted"
    assert charger.offered[-1] == 16.0, "back to the owner's 16 A, not the 32 A rating"


def test_a_charging_limit_does_not_outlive_a_vehicle_the_gate_unbound() -> None:
    world = authorized()
    charger = Charger()
    relay = relay_for(world, charger)
    run(relay.set_charging_profile(1, profile(unit="A", limit=0.0)))  # a pause
    assert charger.offered[-1] == 0.0
    world.gate.bound = None  # the PLC link lost: the gate unbinds, the vehicle still plugged
    assert run(relay.clear_charging_profile(None)) == "Accepted"
    assert charger.offered[-1] == RATING_A and charger.limits.csms_a is None
    run(relay.session_ended())
    assert charger.offered[-1] == RATING_A


def test_a_new_vehicle_does_not_inherit_the_last_ones_charging_limit() -> None:
    world = authorized()
    charger = Charger()
    relay = relay_for(world, charger)
    run(relay.set_charging_profile(1, profile(unit="A", limit=0.0)))
    other = "B" * 40
    world.exchange(PROFILES["certified-4q"], other)
    assert world.gate.bound is not None
    world.gate.bound.lfdi = other  # the gate's vehicle is another one now
    run(relay.set_charging_profile(1, profile(3, setpoint=-100.0)))
    assert charger.offered[-1] == RATING_A, "the last vehicle's pause went with it"


def test_a_profile_re_sent_with_only_a_limit_withdraws_its_setpoint() -> None:
    world = authorized()
    relay = relay_for(world, Charger())
    run(relay.set_charging_profile(1, profile(setpoint=-3000.0)))
    assert in_effect(world, Mode.FIXED_W) is not None
    run(relay.set_charging_profile(1, profile(unit="A", limit=16.0)))
    assert in_effect(world, Mode.FIXED_W) is None, "the same id replaces all it set"


class Clocks:
    """The relay's wall and monotonic clocks, moved together by the test."""

    def __init__(self) -> None:
        self.wall_s, self.mono_s = 1_800_000_000.0, 5000.0

    def wall(self) -> float:
        return self.wall_s

    def mono(self) -> float:
        return self.mono_s

    def advance(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_s += seconds

    def stamp(self, offset_s: float) -> str:
        return datetime.fromtimestamp(self.wall_s + offset_s, UTC).isoformat()


def timed(world: Sep2, charger: Charger, clocks: Clocks, synced: bool = True) -> DispatchRelay:
    relay = relay_for(world, charger, synced)
    relay._mono, relay._wall = clocks.mono, clocks.wall
    relay._upstream._mono, relay._upstream._wall = clocks.mono, clocks.wall
    return relay


def with_times(given: dict[str, Any], **times: Any) -> dict[str, Any]:
    schedule_keys = ("start_schedule", "duration")
    for key, value in times.items():
        (given["charging_schedule"][0] if key in schedule_keys else given)[key] = value
    return given


def test_a_profile_starts_when_due_and_ends_when_over() -> None:
    world, clocks = authorized(), Clocks()
    relay = timed(world, Charger(), clocks)

    async def steps() -> None:
        late = with_times(profile(setpoint=-2000.0), valid_from=clocks.stamp(60),
                          start_schedule=clocks.stamp(60), duration=30)  # fmt: skip
        assert (await relay.set_charging_profile(1, late))[0] == "Accepted"
        assert in_effect(world, Mode.FIXED_W) is None, "not before it is due"
        timer = relay._timer
        assert timer is not None
        assert 59 < timer.when() - asyncio.get_running_loop().time() <= 60, "woken when due"
        clocks.advance(60)
        await relay.follow()
        assert in_effect(world, Mode.FIXED_W) is not None
        clocks.advance(30)
        await relay.follow()
        assert in_effect(world, Mode.FIXED_W) is None, "over after its duration"
        assert relay._timer is None and not relay._held

    run(steps())


def test_a_day_ahead_plan_is_followed_period_by_period() -> None:
    """Three periods from a schedule starting now: each in its turn, the last until the
    schedule's duration; re-sent under its id, the plan replaces the old one whole."""
    world, clocks = authorized(), Clocks()
    relay = timed(world, Charger(), clocks)
    plan = with_times(profile(setpoint=-1440.0), start_schedule=clocks.stamp(0), duration=3600)
    periods = plan["charging_schedule"][0]["charging_schedule_period"]
    periods += [{"start_period": 900, "setpoint": -2880.0},
                {"start_period": 1800, "setpoint": 0.0}]  # fmt: skip

    async def steps() -> None:
        assert (await relay.set_charging_profile(1, plan))[0] == "Accepted"
        assert in_effect(world, Mode.FIXED_W) == 20.0  # 1440 W of the vehicle's 7200
        timer = relay._timer
        assert timer is not None
        assert 899 < timer.when() - asyncio.get_running_loop().time() <= 900, "the next period"
        clocks.advance(900)
        await relay.follow()
        assert in_effect(world, Mode.FIXED_W) == 40.0
        clocks.advance(900)
        await relay.follow()
        assert in_effect(world, Mode.FIXED_W) == 0.0
        clocks.advance(1800)
        await relay.follow()
        assert in_effect(world, Mode.FIXED_W) is None, "the schedule's duration is over"
        assert not relay._held

    run(steps())


def test_a_plan_whose_first_periods_are_over_is_taken_from_the_one_in_force() -> None:
    world, clocks = authorized(), Clocks()
    relay = timed(world, Charger(), clocks)
    plan = with_times(profile(setpoint=-1440.0), start_schedule=clocks.stamp(-1000))
    plan["charging_schedule"][0]["charging_schedule_period"].append(
        {"start_period": 900, "setpoint": -2880.0}
    )
    assert run(relay.set_charging_profile(1, plan))[0] == "Accepted"
    assert in_effect(world, Mode.FIXED_W) == 40.0
    assert list(relay._held) == [(7, 900)], "the period that is over is not held"


def test_valid_to_ends_a_profile_and_a_past_one_is_refused() -> None:
    world, clocks = authorized(), Clocks()
    relay = timed(world, Charger(), clocks)

    async def steps() -> None:
        given = with_times(profile(setpoint=-2000.0), valid_to=clocks.stamp(10))
        assert (await relay.set_charging_profile(1, given))[0] == "Accepted"
        assert in_effect(world, Mode.FIXED_W) is not None
        clocks.advance(10)
        await relay.follow()
        assert in_effect(world, Mode.FIXED_W) is None
        past = with_times(profile(2, setpoint=-2000.0), valid_to=clocks.stamp(-1))
        assert (await relay.set_charging_profile(1, past))[:2] == ("Rejected", "Expired")

    run(steps())


def test_the_highest_stack_level_in_force_prevails_for_each_value() -> None:
    world, clocks = authorized(), Clocks()
    charger = Charger()
    relay = timed(world, charger, clocks)
    low = profile(1, setpoint=-1000.0)
    high = profile(2, setpoint=-2000.0, limit=2400.0)  # 10 A at 240 V
    high["stack_level"] = 3

    async def steps() -> None:
        await relay.set_charging_profile(1, low)
        first = in_effect(world, Mode.FIXED_W)
        await relay.set_charging_profile(1, high)
        second = in_effect(world, Mode.FIXED_W)
        assert second is not None and first is not None and second > first
        assert charger.offered[-1] == 10.0
        low["stack_level"] = 5  # re-sent higher: its setpoint prevails, profile 2's limit stays
        await relay.set_charging_profile(1, low)
        assert in_effect(world, Mode.FIXED_W) == first and charger.offered[-1] == 10.0
        assert await relay.clear_charging_profile(2) == "Accepted"
        assert charger.offered[-1] == RATING_A, "no profile in force sets a limit"
        assert in_effect(world, Mode.FIXED_W) == first
        assert await relay.clear_charging_profile(1) == "Accepted"
        assert in_effect(world, Mode.FIXED_W) is None

    run(steps())


def test_what_cannot_be_honoured_in_time_is_refused() -> None:
    world = authorized()
    relay = relay_for(world, Charger())
    recurring = profile(setpoint=-1000.0)
    recurring["charging_profile_kind"] = "Recurring"
    assert run(relay.set_charging_profile(1, recurring))[:2] == ("Rejected", "UnsupportedKind")
    naive = with_times(profile(setpoint=-1000.0), valid_from="2030-01-01T00:00:00")
    assert run(relay.set_charging_profile(1, naive))[:2] == ("Rejected", "InvalidValue")


def test_the_profiles_held_are_bounded() -> None:
    world = authorized()
    relay = relay_for(world, Charger())
    for n in range(MAX_PROFILES):
        assert run(relay.set_charging_profile(1, profile(n, setpoint=-100.0 - n)))[0] == "Accepted"
    status, code, _ = run(relay.set_charging_profile(1, profile(999, setpoint=-100.0)))
    assert (status, code) == ("Rejected", "TooManyProfiles")
    assert run(relay.set_charging_profile(1, profile(3, setpoint=-50.0)))[0] == "Accepted", (
        "an id already held is replaced"
    )


class SlowCharger(Charger):
    """A charger that takes a limit only when the test lets it (``hold``), or refuses it
    (``refuse``) as the daemon does when its loop does not take it in time."""

    def __init__(self) -> None:
        super().__init__()
        self.hold: asyncio.Event | None = None
        self.waiting = asyncio.Event()
        self.refuse = 0

    async def set_csms_limit(self, amps: float | None) -> dict[str, Any]:
        if self.refuse:
            self.refuse -= 1
            raise RequestRefused("the charger did not take it in time")
        if self.hold is not None:
            self.waiting.set()
            await self.hold.wait()
        return await super().set_csms_limit(amps)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_vehicle_leaving_while_a_profile_waits_for_the_charger_takes_the_limit_with_it(
) -> None:  # fmt: skip
    world = authorized()
    charger = SlowCharger()
    relay = relay_for(world, charger)

    async def steps() -> None:
        charger.hold = asyncio.Event()
        setting = asyncio.create_task(
            relay.set_charging_profile(1, profile(setpoint=-1000.0, limit=0.0))
        )
        await asyncio.wait_for(
            charger.waiting.wait(), 5
        )  # the setpoint is out, the pause waits for the charger
        world.gate.plugged(False)
        ending = asyncio.create_task(relay.session_ended())
        await settle()
        charger.hold.set()
        await asyncio.gather(setting, ending)

    run(steps())
    assert charger.limits.csms_a is None, "the pause did not carry over to the next plug-in"
    assert charger.offered[-1] == RATING_A and not relay._applied


def test_profiles_arriving_while_one_waits_for_the_charger_end_as_the_last_choice() -> None:
    world = authorized()
    charger = SlowCharger()
    relay = relay_for(world, charger)

    async def steps() -> None:
        charger.hold = asyncio.Event()
        first = asyncio.create_task(
            relay.set_charging_profile(1, profile(1, setpoint=-1000.0, limit=2400.0))  # 10 A
        )
        await asyncio.wait_for(charger.waiting.wait(), 5)
        clearing = asyncio.create_task(relay.clear_charging_profile(1))
        second = asyncio.create_task(relay.set_charging_profile(1, profile(2, setpoint=-2000.0)))
        await settle()
        charger.hold.set()
        await asyncio.gather(first, clearing, second)

    run(steps())
    fixed = in_effect(world, Mode.FIXED_W)
    assert fixed is not None and fixed > 20, "profile 2's 2000 W, not profile 1's 1000 W"
    assert charger.limits.csms_a is None, "profile 1's cleared limit is not in force"
    assert set(relay._applied) == {Mode.FIXED_W} and relay._applied[Mode.FIXED_W][0] == 2


def test_a_timer_follow_that_fails_is_logged_once_and_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world, clocks = authorized(), Clocks()
    charger = SlowCharger()
    relay = timed(world, charger, clocks)

    async def steps() -> None:
        later = with_times(profile(unit="A", limit=10.0), start_schedule=clocks.stamp(60))
        assert (await relay.set_charging_profile(1, later))[0] == "Accepted"
        charger.refuse = 2
        clocks.advance(60)
        relay._due()
        await asyncio.gather(*relay._tasks)
        assert charger.limits.csms_a is None and relay._timer is not None, "armed again"
        loop = asyncio.get_running_loop()
        assert relay._timer.when() - loop.time() == pytest.approx(RETRY_S, abs=0.5)
        relay._due()
        await asyncio.gather(*relay._tasks)
        relay._due()
        await asyncio.gather(*relay._tasks)
        assert charger.limits.csms_a == 10.0, "followed once the charger took it"
        assert relay._timer is None

    with caplog.at_level(logging.ERROR, logger="firmware.ocpp.relay"):
        run(steps())
    assert sum("ocpp.dispatch_follow_failed" in r.getMessage() for r in caplog.records) == 1


def notified(relay: DispatchRelay, variable: str) -> list[str]:
    """The NotifyEvents of ``variable`` queued for the CSMS: their techInfo."""
    outbox = relay._upstream.outbox
    found = []
    while (queued := outbox.next()) is not None:
        outbox.sent(queued.seq, "accepted")
        for event in queued.payload.get("eventData", []):
            if event["variable"]["name"] == variable:
                found.append(str(event.get("techInfo")))
    return found


def test_a_profile_re_sent_with_its_cap_raised_is_checked_against_its_new_cap() -> None:
    world = authorized()  # setMaxW 7200 W, the approval list's cap 5000 W
    relay = relay_for(world, Charger())
    assert run(relay.set_charging_profile(1, profile(5, discharge_limit=-2160.0)))[0] == (
        "Accepted"
    )  # 30 %
    status, code, _ = run(
        relay.set_charging_profile(1, profile(5, setpoint=-3600.0, discharge_limit=-4320.0))
    )  # 50 % under its own new 60 %
    assert (status, code) == ("Accepted", None), "the 30 % it replaces is no longer in force"
    assert in_effect(world, Mode.FIXED_W) == 50.0 and in_effect(world, Mode.MAX_LIM_W) == 60.0


def test_a_cap_arriving_below_a_setpoint_in_force_holds_the_setpoint_to_it() -> None:
    world = authorized()
    relay = relay_for(world, Charger())
    assert run(relay.set_charging_profile(1, profile(1, setpoint=-3600.0)))[0] == "Accepted"
    assert in_effect(world, Mode.FIXED_W) == 50.0
    cap = profile(2, discharge_limit=-1440.0)  # 20 %, its own profile: it prevails for the cap
    cap["stack_level"] = 1
    assert run(relay.set_charging_profile(1, cap))[0] == "Accepted"
    assert in_effect(world, Mode.MAX_LIM_W) == 20.0
    assert in_effect(world, Mode.FIXED_W) == 20.0, "never dispatched above the cap"
    told = notified(relay, "DispatchLimited")
    assert len(told) == 1 and "50 % held to 20 %" in told[0]
    assert run(relay.clear_charging_profile(2)) == "Accepted"
    assert in_effect(world, Mode.FIXED_W) == 50.0, "back to what it asked once the cap goes"


def test_the_site_owner_lowering_the_cap_holds_the_csmss_setpoint_to_it() -> None:
    owner = replace(SITE, functions=(SiteFunction(Mode.MAX_LIM_W, value=60.0),))
    world = authorized(owner)
    relay = relay_for(world, Charger())

    async def steps() -> None:
        assert (await relay.set_charging_profile(1, profile(setpoint=-3600.0)))[0] == "Accepted"
        world.sep2.site.change(SiteFunction(Mode.MAX_LIM_W, value=30.0), world.store.records())
        relay.owner_changed()
        await asyncio.gather(*relay._tasks)

    run(steps())
    assert in_effect(world, Mode.FIXED_W) == 30.0
    assert in_effect(world, Mode.MAX_LIM_W) == 30.0


def test_a_relative_profile_is_anchored_on_the_monotonic_clock_not_the_stepped_wall() -> None:
    world, clocks = authorized(), Clocks()
    relay = timed(world, Charger(), clocks)
    relay._upstream.observe(StationView(True, 1, "Occupied", False, 0.0, None))
    started = clocks.mono_s
    clocks.advance(10)
    clocks.wall_s += 3600  # NTP steps a clock that had no RTC, mid-transaction
    relative = with_times(profile(setpoint=-2000.0), duration=60)
    relative["charging_profile_kind"] = "Relative"

    async def steps() -> None:
        assert (await relay.set_charging_profile(1, relative))[0] == "Accepted"
        assert in_effect(world, Mode.FIXED_W) is not None, "in force, not Expired by the step"
        held = relay._held[7, 0]
        assert (held.start_s, held.end_s) == (started, started + 60)

    run(steps())


def test_dates_are_refused_while_the_clock_has_never_been_synchronized() -> None:
    world, clocks = authorized(), Clocks()
    relay = timed(world, Charger(), clocks, synced=False)
    dated = with_times(profile(setpoint=-2000.0), start_schedule=clocks.stamp(0), duration=60)
    status, code, text = run(relay.set_charging_profile(1, dated))
    assert (status, code) == ("Rejected", "ClockNotSynced") and "synchronized" in str(text)
    assert in_effect(world, Mode.FIXED_W) is None
    undated = with_times(profile(setpoint=-2000.0), duration=60)  # from now: no date needed
    assert run(relay.set_charging_profile(1, undated))[0] == "Accepted"


def test_what_came_due_while_the_vehicle_was_away_is_put_when_it_binds_again() -> None:
    world, clocks = authorized(), Clocks()
    relay = timed(world, Charger(), clocks)

    async def steps() -> None:
        later = with_times(profile(setpoint=-2000.0, discharge_limit=-3600.0),
                           start_schedule=clocks.stamp(60))  # fmt: skip
        assert (await relay.set_charging_profile(1, later))[0] == "Accepted"
        bound, world.gate.bound = world.gate.bound, None  # the link lost, still plugged in
        clocks.advance(60)
        await relay.follow()
        assert in_effect(world, Mode.FIXED_W) is None and not relay._applied
        relay.observe()
        assert not relay._tasks, "nothing to do while it is away"
        world.gate.bound = bound  # the same vehicle, the same plug-in
        relay.observe()
        await asyncio.gather(*relay._tasks)
        assert in_effect(world, Mode.FIXED_W) is not None
        assert in_effect(world, Mode.MAX_LIM_W) == 50.0

    run(steps())
