"""HIL scenario files: parse and validate one TOML scenario into typed steps.

A scenario is data a test engineer edits (``hil/scenarios/*.toml``): a name, a description,
tags, an optional simulated vehicle profile, and ordered steps (rig stimuli, pauses, vehicle
actions, expectations with their limits). This module only reads and checks them; running
and judging them is ``hil.runner``. Every problem is one line: ``file: where: why``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hil.pev.profiles import PROFILES

SCENARIO_DIR = Path(__file__).parent / "scenarios"
TAGS = ("j1772", "j3072")
VEHICLE_ACTIONS = ("start", "stop", "silent")
# What the runner can tell about the board under test; a scenario needing one it lacks is
# skipped with that reason.
CAPABILITIES = (
    "ventilation",
    "no-ventilation",
    "proximity-type1",
    "proximity-type2",
    "four-quadrant-site",  # [site] quadrants = "4Q": a 2-quadrant inverter is denied
    "no-approval-list",  # no valid approval list in force (every ISM fails closed)
    "board-control",  # the runner can reach the board's control socket (``board`` steps)
    "daemon-log",
)
# What the board's config decides; no board can have both of a pair.
CONFIG_CAPABILITIES = (
    "ventilation",
    "no-ventilation",
    "proximity-type1",
    "proximity-type2",
    "four-quadrant-site",
    "no-approval-list",
)
# A board set up to deny everyone: nothing else shares its config.
SOLITARY = ("no-approval-list",)
CONFLICTS = (("ventilation", "no-ventilation"), ("proximity-type1", "proximity-type2"))
# Requests a ``board`` step may send over the control socket (firmware/daemon/control_socket.py).
BOARD_COMMAND = re.compile(r"limit (?:\d+(?:\.\d+)?|default)")
# Stimuli (and EVENTS) a step may send; WAIT/MEAS are what expectations are made of.
COMMANDS: dict[str, str] = {
    "*RST": r"",
    "EVENTS": r"ON|OFF",
    "EV:STATE": r"[ABCD]|[BCD],\d+",  # ",<ohms>": the vehicle's load off nominal (tolerance)
    "EV:DIODE": r"OK|SHORT",
    "EV:SHORT": r"ON|OFF",
    "EV:PE": r"ON|OFF",
    "EV:PLC": r"ON|OFF",
    "PP:RES": r"\d+|OPEN",
    "FB:MAIN": r"FOLLOW|STUCK_CLOSED|STUCK_OPEN",
    "FB:DISCHARGE": r"FOLLOW|STUCK_CLOSED|STUCK_OPEN",
    "RCD:TRIP": r"NONE|DC|AC",
    "METER:W": r"-?\d+",
}
STEP_KEYS = {"send", "wait_ms", "expect", "vehicle", "board", "why"}
TOP_KEYS = {"name", "description", "tags", "vehicle", "requires", "leaves_inoperative", "steps"}
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_MS = r"(?P<ms>\d+)\s*ms"
EXPECTATIONS = {
    "relay": re.compile(
        rf"^relay (?P<relay>MAIN|DISCHARGE) (?P<pos>OPEN|CLOSED) within (?:(?P<min>\d+)\.\.)?{_MS}$"
    ),
    "stays": re.compile(rf"^relay (?P<relay>MAIN|DISCHARGE) stays (?P<pos>OPEN|CLOSED) for {_MS}$"),
    "duty": re.compile(rf"^duty (?P<low>[\d.]+)\.\.(?P<high>[\d.]+) within {_MS}$"),
    "pilot": re.compile(rf"^pilot (?P<state>[A-F])(?: within {_MS})?$"),
    "log": re.compile(rf"^log (?P<needle>\S.*?) within {_MS}$"),
    "nolog": re.compile(r"^no log (?P<needle>\S.*)$"),
}


class ScenarioError(Exception):
    """Raised when a scenario file is not valid TOML or breaks the format; one line."""


@dataclass(frozen=True, slots=True)
class Send:
    commands: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pause:
    ms: int


@dataclass(frozen=True, slots=True)
class VehicleAction:
    action: str  # start | stop | silent


@dataclass(frozen=True, slots=True)
class BoardCommand:
    """A request to the board under test's control socket, e.g. ``limit 0``."""

    command: str


@dataclass(frozen=True, slots=True)
class Expect:
    """One expectation: ``kind`` is a key of EXPECTATIONS, ``limit_ms`` its time limit."""

    text: str
    kind: str
    limit_ms: int
    relay: str = ""
    position: str = ""
    low_pct: float = 0.0
    high_pct: float = 0.0
    pilot: str = ""
    needle: str = ""
    min_ms: int = 0  # "within 9000..11500 ms": sooner than this is a failure too


Action = Send | Pause | VehicleAction | BoardCommand | Expect


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    why: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    tags: tuple[str, ...]
    steps: tuple[Step, ...]
    path: Path
    vehicle: str | None = None
    requires: tuple[str, ...] = ()
    leaves_inoperative: bool = False  # a permanent fault record: run last, then restart


def parse_expect(text: str) -> Expect:
    """``relay MAIN OPEN within 100 ms`` and friends (see EXPECTATIONS)."""
    for kind, pattern in EXPECTATIONS.items():
        found = pattern.match(text.strip())
        if found is None:
            continue
        fields = found.groupdict()
        limit_ms = int(fields.get("ms") or (300 if kind == "pilot" else 0))
        min_ms = int(fields.get("min") or 0)
        if min_ms > limit_ms:
            raise ValueError(f"expect {text!r}: the range {min_ms}..{limit_ms} ms is reversed")
        low, high = float(fields.get("low") or 0), float(fields.get("high") or 0)
        if kind == "duty" and not 0 <= low <= high <= 100:
            raise ValueError(f"duty range {low:g}..{high:g} is not within 0..100 and ordered")
        return Expect(
            text.strip(),
            kind,
            limit_ms,
            relay=fields.get("relay") or "",
            position=fields.get("pos") or "",
            low_pct=low,
            high_pct=high,
            pilot=fields.get("state") or "",
            needle=fields.get("needle") or "",
            min_ms=min_ms,
        )
    raise ValueError(
        f"expect {text!r} is not one of: relay X OPEN|CLOSED within N ms, "
        "relay X stays OPEN|CLOSED for N ms, duty LO..HI within N ms, pilot A-F, "
        "log TEXT within N ms, no log TEXT"
    )


def check_command(line: str) -> str:
    word, _, argument = line.strip().upper().partition(" ")
    pattern = COMMANDS.get(word)
    if pattern is None:
        raise ValueError(f"send {line!r}: not a rig stimulus ({', '.join(COMMANDS)})")
    if not re.fullmatch(pattern, argument.strip()):
        raise ValueError(f"send {line!r}: argument must match {pattern or 'nothing'}")
    return line.strip()


def _step(raw: object, vehicle: str | None) -> Step:
    if not isinstance(raw, dict):
        raise ValueError("must be a table")
    unknown = set(raw) - STEP_KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    kinds = [key for key in ("send", "wait_ms", "expect", "vehicle", "board") if key in raw]
    if len(kinds) != 1:
        raise ValueError("needs exactly one of send, wait_ms, expect, vehicle, board")
    kind, value, why = kinds[0], raw[kinds[0]], str(raw.get("why", ""))
    if kind == "send":
        lines = [value] if isinstance(value, str) else value
        if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
            raise ValueError("send must be a command or a list of commands")
        return Step(Send(tuple(check_command(x) for x in lines)), why)
    if kind == "wait_ms":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 60_000:
            raise ValueError("wait_ms must be an integer 0..60000")
        return Step(Pause(value), why)
    if kind == "board":
        if not isinstance(value, str) or not BOARD_COMMAND.fullmatch(value.strip()):
            raise ValueError("board must be 'limit <amps>' or 'limit default'")
        return Step(BoardCommand(value.strip()), why)
    if kind == "vehicle":
        if value not in VEHICLE_ACTIONS:
            raise ValueError(f"vehicle must be one of {', '.join(VEHICLE_ACTIONS)}")
        if vehicle is None:
            raise ValueError("vehicle action without a scenario-level vehicle profile")
        if value == "silent" and PROFILES[vehicle].heartbeats is None:
            raise ValueError(
                f"vehicle = 'silent' needs a profile that stops heartbeating "
                f"(e.g. 'silent'), not {vehicle!r}"
            )
        return Step(VehicleAction(value), why)
    if not isinstance(value, str):
        raise ValueError("expect must be a string")
    return Step(parse_expect(value), why)


def _strings(data: dict[str, object], key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"{key} must be a list of strings")
    for item in value:
        if item not in allowed:
            raise ValueError(f"{key}: {item!r} is not one of {', '.join(allowed)}")
    return tuple(str(x) for x in value)


def _scenario(data: dict[str, object], path: Path) -> Scenario:
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    name, description = data.get("name"), data.get("description")
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError("name must be lowercase letters, digits and dashes")
    if not isinstance(description, str) or not description.strip():
        raise ValueError("description is missing")
    tags = _strings(data, "tags", TAGS)
    if not tags:
        raise ValueError(f"tags must name at least one of {', '.join(TAGS)}")
    vehicle = data.get("vehicle")
    if vehicle is not None and vehicle not in PROFILES:
        raise ValueError(f"vehicle {vehicle!r} is not a profile ({', '.join(PROFILES)})")
    inoperative = data.get("leaves_inoperative", False)
    if not isinstance(inoperative, bool):
        raise ValueError("leaves_inoperative must be true or false")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ValueError("steps: at least one [[steps]] table is needed")
    steps = []
    for index, raw in enumerate(raw_steps, start=1):
        try:
            steps.append(_step(raw, str(vehicle) if vehicle else None))
        except ValueError as err:
            raise ValueError(f"step {index}: {err}") from None
    requires = _strings(data, "requires", CAPABILITIES)
    for pair in CONFLICTS:
        if set(pair) <= set(requires):
            raise ValueError(f"requires both {pair[0]!r} and {pair[1]!r}: no board has both")
    if any(isinstance(s.action, BoardCommand) for s in steps) and "board-control" not in requires:
        requires += ("board-control",)  # a board step needs the control socket
    return Scenario(
        name,
        description.strip(),
        tags,
        tuple(steps),
        path,
        vehicle=str(vehicle) if vehicle else None,
        requires=requires,
        leaves_inoperative=inoperative,
    )


def load_scenario(path: Path) -> Scenario:
    """Read one scenario file; ScenarioError with one line naming the file on any problem."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError(f"{path}: cannot read: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: not TOML: {err}") from None
    try:
        return _scenario(data, path)
    except ValueError as err:
        raise ScenarioError(f"{path}: {err}") from None


def load_all(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    """Every ``*.toml`` in the directory, by file name; names must be unique."""
    scenarios = [load_scenario(p) for p in sorted(directory.glob("*.toml"))]
    seen: dict[str, Path] = {}
    for scenario in scenarios:
        if scenario.name in seen:
            raise ScenarioError(
                f"{scenario.path}: name {scenario.name!r} also in {seen[scenario.name]}"
            )
        seen[scenario.name] = scenario.path
    return scenarios
