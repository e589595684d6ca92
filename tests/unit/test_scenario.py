"""The scenario loader: every shipped file loads; a bad file is refused with one line. And the
virtual run's plan: which board config each scenario runs under."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.__main__ import _capabilities, _plan
from hil.scenario import (
    SCENARIO_DIR,
    BoardCommand,
    Expect,
    Scenario,
    ScenarioError,
    Send,
    load_all,
    load_scenario,
    parse_expect,
)

GOOD = """name = "x"
description = "a scenario"
tags = ["j1772"]

[[steps]]
send = "EV:STATE B"
"""


def test_every_shipped_scenario_loads() -> None:
    scenarios = load_all()
    assert len(scenarios) == len(list(SCENARIO_DIR.glob("*.toml"))) >= 15
    names = {s.name for s in scenarios}
    assert {"b1-diode-short", "d3-j3072-heartbeat-loss", "z1-welded-main"} <= names
    assert all(s.path.stem == s.name for s in scenarios)
    assert all(s.vehicle for s in scenarios if "j3072" in s.tags)


def test_expectations_parse_with_their_limits() -> None:
    assert parse_expect("relay MAIN OPEN within 100 ms") == Expect(
        "relay MAIN OPEN within 100 ms", "relay", 100, relay="MAIN", position="OPEN"
    )
    stays = parse_expect("relay DISCHARGE stays OPEN for 1500 ms")
    assert (stays.kind, stays.relay, stays.position, stays.limit_ms) == (
        "stays",
        "DISCHARGE",
        "OPEN",
        1500,
    )
    duty = parse_expect("duty 0..0 within 300 ms")
    assert (duty.low_pct, duty.high_pct, duty.limit_ms) == (0.0, 0.0, 300)
    assert parse_expect("pilot F").pilot == "F"
    window = parse_expect("relay DISCHARGE OPEN within 9000..11500 ms")
    assert (window.min_ms, window.limit_ms) == (9000, 11500)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("name = ", "not TOML"),
        (GOOD.replace('send = "EV:STATE B"', 'send = "EV:STATE Q"'), "step 1: send"),
        (GOOD.replace('send = "EV:STATE B"', 'send = "REBOOT"'), "not a rig stimulus"),
        (GOOD.replace('send = "EV:STATE B"', 'expect = "relay MAIN OPEN soon"'), "step 1: expect"),
        (GOOD.replace('send = "EV:STATE B"', 'expect = "duty 90..10 within 5 ms"'), "duty range"),
        (GOOD.replace('send = "EV:STATE B"', 'wait_ms = "long"'), "wait_ms"),
        (GOOD.replace('send = "EV:STATE B"', 'vehicle = "start"'), "without a scenario-level"),
        (GOOD.replace('send = "EV:STATE B"', 'send = "EV:STATE B"\nwait_ms = 3'), "exactly one"),
        (GOOD.replace('tags = ["j1772"]', 'tags = ["iso15118"]'), "tags"),
        (GOOD.replace('name = "x"', 'name = "X Y"'), "name"),
        (GOOD.replace('name = "x"', 'name = "x"\ncolour = "red"'), "unknown key 'colour'"),
        ('name = "x"\ndescription = "d"\ntags = ["j3072"]\nvehicle = "a-car"\n', "not a profile"),
        (GOOD.replace('tags = ["j1772"]', 'tags = ["j1772"]\nrequires = ["wings"]'), "requires"),
        (GOOD.split("[[steps]]")[0], "steps"),
        (GOOD.replace('send = "EV:STATE B"', 'send = "EV:STATE A,2740"'), "step 1: send"),
        (GOOD.replace('send = "EV:STATE B"', 'send = "EV:STATE B,lots"'), "step 1: send"),
        (GOOD.replace('send = "EV:STATE B"', 'board = "reboot"'), "board must be 'limit"),
        (GOOD.replace('send = "EV:STATE B"', 'board = "limit -3"'), "board must be 'limit"),
        (
            GOOD.replace(
                'tags = ["j1772"]', 'tags = ["j1772"]\nrequires = ["ventilation", "no-ventilation"]'
            ),
            "no board has both",
        ),
        (
            GOOD.replace('send = "EV:STATE B"', 'expect = "relay MAIN OPEN within 9..3 ms"'),
            "reversed",
        ),
        (
            GOOD.replace('tags = ["j1772"]', 'tags = ["j3072"]\nvehicle = "certified-4q"').replace(
                'send = "EV:STATE B"', 'vehicle = "silent"'
            ),
            "stops heartbeating",
        ),
    ],
)
def test_a_bad_file_is_refused_with_one_line(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as refused:
        load_scenario(path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(str(path)) and why in message


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text(GOOD)
    with pytest.raises(ScenarioError, match="also in"):
        load_all(tmp_path)


def test_a_load_off_nominal_and_a_board_step_parse(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text(
        GOOD.replace('send = "EV:STATE B"', 'send = "EV:STATE C,855"')
        + '\n[[steps]]\nboard = "limit 0"\n\n[[steps]]\nboard = "limit default"\n'
    )
    scenario = load_scenario(path)
    assert [s.action for s in scenario.steps] == [
        Send(("EV:STATE C,855",)),
        BoardCommand("limit 0"),
        BoardCommand("limit default"),
    ]
    assert scenario.requires == ("board-control",)  # implied by the board steps


def named(name: str, *requires: str) -> Scenario:
    return Scenario(name, "d", ("j1772",), (), Path(f"{name}.toml"), requires=requires)


def test_the_plan_runs_what_the_base_config_allows_first_then_as_few_variants_as_needed() -> None:
    base = _capabilities({"charger": {"ventilation": False}}, True, Path("control.sock"))
    assert base == {"daemon-log", "board-control", "no-ventilation"}
    scenarios = [
        named("plain"),
        named("d-vent", "ventilation"),
        named("no-vent", "no-ventilation"),
        named("type1", "proximity-type1"),
        named("type2", "proximity-type2"),
        named("paused", "board-control"),
        named("type1-vent", "proximity-type1", "ventilation"),
        named("4q", "four-quadrant-site"),
        named("no-list", "no-approval-list"),
        named("no-list-vent", "no-approval-list", "ventilation"),
    ]
    plan = _plan(scenarios, base)
    assert [[s.name for s in v.scenarios] for v in plan] == [
        ["plain", "no-vent", "paused"],
        ["d-vent", "type1", "type1-vent", "4q"],
        ["type2"],
        ["no-list", "no-list-vent"],  # a deny-everyone board shares with no one else
    ]
    assert plan[1].overlay() == {
        "charger": {"proximity": "type1", "ventilation": True},
        "site": {"quadrants": "4Q"},
    }
    assert plan[1].label == "site.quadrants=4Q, charger.proximity=type1, charger.ventilation=true"
    assert plan[2].label == "charger.proximity=type2"


def test_capabilities_of_a_board_whose_config_is_not_known() -> None:
    assert _capabilities(None, False, None) == frozenset()  # not even no-ventilation
    type2 = _capabilities({"charger": {"proximity": "type2", "ventilation": True}}, False, None)
    assert type2 == {"ventilation", "proximity-type2"}
    four = _capabilities({"site": {"quadrants": "4Q"}}, False, None)
    assert four == {"no-ventilation", "four-quadrant-site"}
