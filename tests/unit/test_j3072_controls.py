"""The session's controls as the gate holds a vehicle to them (§4.6.3, §4.7.1, §4.8.2, §4.8.3):
fresh mRIDs and start per session, a control changed at run time superseding the old one, its
Responses due after a few polls, the meter held to the new value once the vehicle has had
``follow_s`` to reach it, the dispatch counted in the limit, and a waking vehicle that must
re-read its controls."""

from __future__ import annotations

from dataclasses import replace

from firmware.j3072.gate import NOT_REREAD, RESPONSES_DUE_NS
from firmware.pilot.levels import PilotState
from firmware.sep2.functions import Mode, SiteFunction
from firmware.sep2.response import STATUS_RECEIVED, STATUS_STARTED
from firmware.sep2.site import EVENT_SUPERSEDED
from firmware.sep2.store import PevRecord, SiteRead
from hil.pev import documents
from hil.pev.profiles import APPROVED_ISM, PROFILES
from tests.unit.test_j3072_gate import LFDI, SITE, World

S = 1_000_000_000
CAR = PROFILES["certified-4q"]  # setMaxW 7,200 W; the list caps it at 5,000 W
FOLLOW_NS = 10 * S


def plugged(world: World) -> World:
    world.gate.plugged(True)
    return world


def record_of(world: World) -> PevRecord:
    record = world.store.get(LFDI)
    assert record is not None
    return record


def change(world: World, function: SiteFunction) -> str:
    """The site owner's run-time change; returns the new control's mRID."""
    world.sep2.site.change(function, world.store.records())
    program = record_of(world).program
    assert program is not None
    control = program.of(function.mode)
    assert control is not None
    return control.mrid


def respond(world: World, mrid: str, statuses: tuple[int, ...] = (1, 2)) -> None:
    for status in statuses:
        response = documents.control_response(LFDI, mrid, status, 0)
        world.store.add_response(record_of(world), response)


def beat(world: World, seconds: int, asleep: bool = False) -> None:
    for _ in range(seconds):
        world.now += S
        world.heartbeat(LFDI, asleep)
        world.gate.poll()


def test_each_session_has_its_own_mrids_and_start() -> None:
    """§4.6.3: every control of a session starts when the session does, with new mRIDs."""
    world = plugged(World())
    world.sep2.site.wall_clock = lambda: 1_000.0
    world.exchange(CAR, LFDI)
    first = world.sep2.site.controls(record_of(world))
    world.gate.on_link(False)  # the session ends; the vehicle re-pairs later
    world.sep2.site.wall_clock = lambda: 2_000.0
    world.exchange(CAR, LFDI)
    second = world.sep2.site.controls(record_of(world))
    assert [c.description for c in first] == [c.description for c in second]
    assert not {c.mrid for c in first} & {c.mrid for c in second}
    assert {c.interval.start for c in first} == {1_000}
    assert {c.interval.start for c in second} == {2_000}
    assert {c.creation_time for c in second} == {2_000}


def test_a_tightened_limit_counts_once_the_vehicle_has_had_follow_s() -> None:
    """max-lim-w 100 % -> 50 % mid-session: the new control supersedes the old (listed as
    superseded), the looser value counts for follow_s, then 3,600 W does."""
    world = plugged(World(follow_ns=FOLLOW_NS))
    world.exchange(CAR, LFDI)
    assert world.gate.limit_w == 5000
    new = change(world, SiteFunction(Mode.MAX_LIM_W, value=50.0))
    controls = world.sep2.site.controls(record_of(world))
    superseded = [c for c in controls if c.event_status.current_status == EVENT_SUPERSEDED]
    assert [c.description for c in superseded] == ["max-lim-w"]
    assert next(c.mrid for c in controls if c.description == "max-lim-w") == new
    respond(world, new)
    beat(world, 9)
    world.gate.on_meter(4900.0, main_closed=True)
    assert world.gate.authorized and world.gate.limit_w == 5000, "still following"
    beat(world, 1)
    assert world.gate.limit_w == 3600
    world.gate.on_meter(4900.0, main_closed=True)
    assert not world.gate.authorized
    assert world.gate.snapshot()["reasons"] == ["discharge 4900 W over the 3600 W in effect"]


def test_a_loosened_limit_counts_at_once() -> None:
    site = replace(SITE, functions=(SiteFunction(Mode.MAX_LIM_W, value=25.0),))
    world = plugged(World(site=site, follow_ns=FOLLOW_NS))
    world.exchange(CAR, LFDI)
    assert world.gate.limit_w == 1800
    respond(world, change(world, SiteFunction(Mode.MAX_LIM_W, value=50.0)))
    assert world.gate.limit_w == 3600


def test_a_changed_control_without_its_responses_revokes_once_they_are_due() -> None:
    world = plugged(World())
    world.exchange(CAR, LFDI)
    new = change(world, SiteFunction(Mode.MAX_LIM_W, value=60.0))
    beat(world, RESPONSES_DUE_NS // S - 1)
    assert world.gate.authorized, "the vehicle has a few polls to answer"
    respond(world, new, (STATUS_RECEIVED,))
    beat(world, 2)
    assert not world.gate.authorized
    assert world.gate.snapshot()["reasons"] == [f"Responses missing: started {new[:8]}"]
    respond(world, new, (STATUS_STARTED,))
    beat(world, world.gate._hold_ns // S + 3)
    assert world.gate.authorized, "answered, the decision grants again"


def test_a_negative_response_to_a_changed_control_revokes_at_once() -> None:
    world = plugged(World())
    world.exchange(CAR, LFDI)
    new = change(world, SiteFunction(Mode.MAX_LIM_W, value=60.0))
    respond(world, new, (STATUS_RECEIVED, 254))
    assert not world.gate.authorized
    assert world.gate.snapshot()["reasons"] == [
        f"control {new[:8]} refused: rejected: invalid event (status 254)"
    ]


def test_a_reactive_mode_replaces_the_reactive_mode_in_effect() -> None:
    site = replace(SITE, functions=(SiteFunction(Mode.VOLT_VAR, curve=((92, 44), (108, -44))),))
    world = plugged(World(site=site))
    world.exchange(CAR, LFDI)
    change(world, SiteFunction(Mode.FIXED_PF, value=0.95))
    program = record_of(world).program
    assert program is not None
    assert [c.function.mode for c in program.current()] == [Mode.FIXED_PF]
    assert world.sep2.site.curves(record_of(world))[0].description == "volt-var", "superseded"


def test_the_dispatch_is_part_of_the_limit_in_effect() -> None:
    """§4.8.2: dispatched to discharge 25 % of its 7,200 W, the vehicle may discharge 1,800 W;
    dispatched to charge, none."""
    site = replace(SITE, functions=(SiteFunction(Mode.FIXED_W, value=25.0),))
    world = plugged(World(site=site))
    world.exchange(CAR, LFDI)
    assert world.gate.limit_w == 1800
    respond(world, change(world, SiteFunction(Mode.FIXED_W, value=-10.0)))
    assert world.gate.limit_w == 0
    world.gate.on_meter(300.0, main_closed=True)
    assert not world.gate.authorized


def test_waking_without_re_reading_the_controls_does_not_resume() -> None:
    """§4.8.3: a vehicle that slept re-reads all its controls before it says it is awake."""
    world = plugged(World())
    world.exchange(CAR, LFDI)
    beat(world, 1, asleep=True)
    assert not world.gate.authorized
    world.gate._hold_ns = 0
    beat(world, 4)
    assert not world.gate.authorized
    assert world.gate.snapshot()["reasons"] == [NOT_REREAD]
    world.store.note_read(record_of(world), SiteRead.CONTROLS, world.now)
    beat(world, 3)
    assert world.gate.authorized


def test_a_vehicle_flipping_its_ism_neither_cycles_the_path_nor_fills_the_journal() -> None:
    """A vehicle alternating an approved and an unapproved ISM: one revocation, then nothing
    authorizes while it flips (the hold), and the journal gets one row per change of the
    decision that took effect, not one per flip."""
    world = plugged(World(hold_ns=10 * S))
    world.exchange(CAR, LFDI)
    assert world.gate.authorized and len(world.journal.decisions) == 1
    flips = [PROFILES["unapproved-ism"], CAR] * 20
    for profile in flips:
        world.now += S // 7
        world.put_device_information(profile, LFDI)
        world.heartbeat(LFDI)
        world.gate.poll()
        assert not world.gate.authorized
    assert world.sep2.changes == 2, "energized once, revoked once"
    assert [d.granted for d in world.journal.decisions] == [True, False]
    beat(world, 12)  # it stopped flipping (approved): the hold ends, 3 heartbeats resume
    assert world.gate.authorized
    assert [d.granted for d in world.journal.decisions] == [True, False, True]
    world.put_device_information(PROFILES["unapproved-ism"], LFDI)
    assert not world.gate.authorized
    assert [d.granted for d in world.journal.decisions] == [True, False, True, False]


def test_two_lowerings_in_a_row_leave_the_vehicle_the_first_ones_time() -> None:
    """100 % -> 50 % and, within follow_s, 50 % -> 20 %: the vehicle may still be at 100 %
    until the first change is due, then at 50 % until the second is."""
    world = plugged(World(follow_ns=FOLLOW_NS))
    world.exchange(CAR, LFDI)
    respond(world, change(world, SiteFunction(Mode.MAX_LIM_W, value=50.0)))
    beat(world, 5)
    respond(world, change(world, SiteFunction(Mode.MAX_LIM_W, value=20.0)))
    assert world.gate.limit_w == 5000, "the 100 % of the first change still counts"
    world.gate.on_meter(4900.0, main_closed=True)
    assert world.gate.authorized
    beat(world, 5)  # the first change is due: 50 % of 7,200 W, until the second is
    assert world.gate.limit_w == 3600
    beat(world, 5)
    assert world.gate.limit_w == 1440


def test_a_pilot_return_and_a_new_list_word_re_authorize_only_by_heartbeats() -> None:
    """Revoked when the pilot left C; back in C, a list reload changing the ISM's entry (not
    the decision) must not authorize at once and unjournaled."""
    world = plugged(World())
    world.exchange(CAR, LFDI)
    world.gate.on_pilot(PilotState.C)
    world.gate.on_pilot(PilotState.B)
    assert not world.gate.authorized
    world.gate.on_pilot(PilotState.C)
    entry = world.approvals.current.entries[APPROVED_ISM]  # type: ignore[union-attr]
    world.approvals.current.entries[APPROVED_ISM] = replace(  # type: ignore[union-attr]
        entry, max_discharge_w=6000
    )
    world.gate.poll()
    assert not world.gate.authorized, "no heartbeat since the revocation"
    beat(world, 3)
    assert world.gate.authorized
    assert world.journal.decisions[-1].granted, "the re-authorization is journaled"
