"""The IEEE 1547 functions a site puts in effect (V2G-AC profile §4.7.1 Table 5, §4.9): what
``[[site.functions]]`` may say, the set published when it says nothing, and the rules that make
a set mutually compatible. The run-time change (``evse-gatekeeper control``) goes through the
same reader and the same rules, so nothing reaches a vehicle that the loader would refuse.

Units are the site owner's: curve points in percent (of setVRef on a voltage axis, of setMaxW
or setMaxVar on a power axis), ride-through curves as [seconds, percent of setVRef] or
[seconds, Hz]; ``site.py`` turns them into 2030.5 units. docs/v2g-ac-profile.md, "The
management information", lists the functions and the default set.

- At most one reactive-power mode (constant PF, volt-var, watt-var, constant var), each mode
  at most once (§4.7.1: one operating mode per DERControl).
- The protective functions are always published (§4.9.1: what is absent, the vehicle
  disables): HV/LV/HF/LF must-trip and HV/LV momentary cessation (§4.9.2, SHALL be
  supported), and frequency droop (§4.9.3, on by default). A site that lists its own
  functions gets the defaults of those it leaves out; only frequency droop can be turned off
  (``enabled = false``), as IEEE 1547 allows.
- The Enter Service window lies inside the must-trip thresholds (a vehicle allowed to enter
  service at a voltage it must trip at would cycle), and momentary cessation lies outside the
  continuous operating range the must-trip curves bound. A dispatch (fixed-w) above
  opModMaxLimW is not refused: the cap wins (a site owner curtails by lowering it), and the
  gate's limit is the lower of the two.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from firmware.config.reader import SectionReader

if TYPE_CHECKING:
    from firmware.sep2.config import EnterService

NOMINAL_HZ = 60.0  # J3072 and IEEE 1547: North American systems
MAX_CURVE_POINTS = 10  # 2030.5 CurveData: at most 10 points


class Mode(enum.Enum):
    """The IEEE 1547 functions a site can put in effect, one DERControl each."""

    FIXED_PF = "fixed-pf"
    VOLT_VAR = "volt-var"
    WATT_VAR = "watt-var"
    FIXED_VAR = "fixed-var"
    VOLT_WATT = "volt-watt"
    FREQ_DROOP = "freq-droop"
    MAX_LIM_W = "max-lim-w"
    FIXED_W = "fixed-w"  # the dispatch (§4.8.2): + discharge, % of setMaxW; only once energized
    HV_MUST_TRIP = "hv-must-trip"
    LV_MUST_TRIP = "lv-must-trip"
    HF_MUST_TRIP = "hf-must-trip"
    LF_MUST_TRIP = "lf-must-trip"
    HV_MOMENTARY_CESSATION = "hv-momentary-cessation"
    LV_MOMENTARY_CESSATION = "lv-momentary-cessation"

    @property
    def reactive(self) -> bool:
        return self in (Mode.FIXED_PF, Mode.VOLT_VAR, Mode.WATT_VAR, Mode.FIXED_VAR)

    @property
    def ride_through(self) -> bool:
        """A must-trip or momentary-cessation curve: x in seconds, y a voltage or frequency."""
        return self in RIDE_THROUGH


CURVE_MODES = (Mode.VOLT_VAR, Mode.WATT_VAR, Mode.VOLT_WATT)
# y's range per ride-through curve: percent of setVRef, or Hz
RIDE_THROUGH: dict[Mode, tuple[float, float, str]] = {
    Mode.HV_MUST_TRIP: (100.01, 200.0, "% of setVRef"),
    Mode.LV_MUST_TRIP: (0.0, 99.99, "% of setVRef"),
    Mode.HF_MUST_TRIP: (NOMINAL_HZ + 0.01, NOMINAL_HZ + 10.0, "Hz"),
    Mode.LF_MUST_TRIP: (NOMINAL_HZ - 15.0, NOMINAL_HZ - 0.01, "Hz"),
    Mode.HV_MOMENTARY_CESSATION: (100.01, 200.0, "% of setVRef"),
    Mode.LV_MOMENTARY_CESSATION: (0.0, 99.99, "% of setVRef"),
}
MAX_TRIP_TIME_S = 1000.0  # x of a ride-through point; IEEE 1547's longest clearing time is 300 s
# freq-droop parameters: (default, low, high); defaults from IEEE 1547-2018 Table 24
# (category III): deadbands 0.036 Hz, droop 5 %, open-loop response time 5 s
DROOP_KEYS: dict[str, tuple[float, float, float]] = {
    "db_of_hz": (0.036, 0.017, 1.0),
    "db_uf_hz": (0.036, 0.017, 1.0),
    "k_of": (0.05, 0.02, 0.07),
    "k_uf": (0.05, 0.02, 0.07),
    "response_s": (5.0, 0.2, 10.0),
}
DROOP_DEFAULTS = tuple((key, limits[0]) for key, limits in DROOP_KEYS.items())


@dataclass(frozen=True, slots=True)
class SiteFunction:
    """One mode and its parameters: ``curve`` for the curve and ride-through modes (x, y
    pairs), ``value`` for fixed-pf (the power factor), fixed-var, max-lim-w and fixed-w
    (percent), and the droop parameters for freq-droop."""

    mode: Mode
    curve: tuple[tuple[float, float], ...] = ()
    value: float | None = None
    droop: tuple[tuple[str, float], ...] = ()


def _curve_of(mode: Mode, *points: tuple[float, float]) -> SiteFunction:
    return SiteFunction(mode, curve=points)


# The published set when [site] lists no functions: IEEE 1547-2018 Category B for normal
# performance (Table 8 volt-var, Table 10 volt-watt with P'2 = 0 for a DER that can absorb),
# Category III for abnormal performance (Table 13 voltage trip, Table 19 frequency trip,
# Table 15 momentary cessation), Table 24 frequency droop, and no cap (max-lim-w 100 %). A
# must-trip curve steps: trip after x seconds beyond y (two points at the same x make the
# step); a momentary-cessation curve says where the vehicle ceases to energize.
PROTECTIVE_DEFAULTS: tuple[SiteFunction, ...] = (
    _curve_of(Mode.HV_MUST_TRIP, (0.16, 120.0), (13.0, 120.0), (13.0, 110.0)),
    _curve_of(Mode.LV_MUST_TRIP, (2.0, 50.0), (21.0, 50.0), (21.0, 88.0)),
    _curve_of(Mode.HF_MUST_TRIP, (0.16, 62.0), (300.0, 62.0), (300.0, 61.2)),
    _curve_of(Mode.LF_MUST_TRIP, (0.16, 56.5), (300.0, 56.5), (300.0, 58.5)),
    _curve_of(Mode.HV_MOMENTARY_CESSATION, (0.0, 110.0), (13.0, 110.0)),
    _curve_of(Mode.LV_MOMENTARY_CESSATION, (0.0, 50.0), (21.0, 50.0)),
    SiteFunction(Mode.FREQ_DROOP, droop=DROOP_DEFAULTS),
)
DEFAULT_FUNCTIONS: tuple[SiteFunction, ...] = (
    _curve_of(Mode.VOLT_VAR, (92.0, 44.0), (98.0, 0.0), (102.0, 0.0), (108.0, -44.0)),
    _curve_of(Mode.VOLT_WATT, (106.0, 100.0), (110.0, 0.0)),
    SiteFunction(Mode.MAX_LIM_W, value=100.0),
    *PROTECTIVE_DEFAULTS,
)


def read_functions(raw: Any, es: EnterService, problems: list[str]) -> tuple[SiteFunction, ...]:
    """``[[site.functions]]`` completed with the protective defaults it leaves out, checked."""
    if raw is None:
        functions = DEFAULT_FUNCTIONS
    elif not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        problems.append("site.functions: must be an array of tables ([[site.functions]])")
        return ()
    else:
        listed: list[SiteFunction] = []
        droop_off = False
        for index, table in enumerate(raw):
            section = SectionReader(f"site.functions[{index}]", table, problems)
            if table.get("mode") == Mode.FREQ_DROOP.value and not section.boolean("enabled", True):
                droop_off = True
            function = read_function(section)
            if function is not None:
                listed.append(function)
        if droop_off:
            listed = [f for f in listed if f.mode is not Mode.FREQ_DROOP]
        given = {f.mode for f in listed} | ({Mode.FREQ_DROOP} if droop_off else set())
        functions = (*listed, *(f for f in PROTECTIVE_DEFAULTS if f.mode not in given))
    problems += incompatible(functions, es)
    return tuple(functions)


def read_function(section: SectionReader) -> SiteFunction | None:
    """One function table (config or run-time change); problems go to the section's list."""
    problems = section.problems
    choices = tuple(m.value for m in Mode)
    name = section.string("mode", "", choices)
    if not name:
        if not section.has("mode"):
            problems.append(f"{section.name}.mode: required (one of {', '.join(choices)})")
        section.finish()
        return None
    mode = Mode(name)
    function = SiteFunction(mode)
    if mode in CURVE_MODES or mode.ride_through:
        function = SiteFunction(mode, curve=_curve(section, mode))
    elif mode is Mode.FIXED_PF:
        function = SiteFunction(mode, value=section.number("power_factor", 1.0, 0.8, 1.0))
    elif mode in (Mode.FIXED_VAR, Mode.MAX_LIM_W, Mode.FIXED_W):
        low = 0.0 if mode is Mode.MAX_LIM_W else -100.0
        function = SiteFunction(mode, value=section.number("percent", 100.0, low, 100.0))
    elif mode is Mode.FREQ_DROOP:
        droop = tuple((key, section.number(key, *limits)) for key, limits in DROOP_KEYS.items())
        function = SiteFunction(mode, droop=droop)
    section.finish()
    return function


def replaced(
    functions: tuple[SiteFunction, ...], new: SiteFunction
) -> tuple[tuple[SiteFunction, ...], SiteFunction | None]:
    """The set with ``new`` in effect, and the function it supersedes: the same mode, or the
    reactive mode in effect when ``new`` is another reactive one (one at a time)."""
    for index, old in enumerate(functions):
        if old.mode is new.mode or (old.mode.reactive and new.mode.reactive):
            return (*functions[:index], new, *functions[index + 1 :]), old
    return (*functions, new), None


def incompatible(functions: tuple[SiteFunction, ...] | list[SiteFunction],
                 es: EnterService) -> list[str]:  # fmt: skip
    """Why this set cannot be published together; empty when it can."""
    problems = []
    modes = [f.mode for f in functions]
    for mode in sorted({m for m in modes if modes.count(m) > 1}, key=lambda m: m.value):
        problems.append(f"site.functions: mode {mode.value} appears more than once")
    reactive = sorted({m.value for m in modes if m.reactive})
    if len(reactive) > 1:
        problems.append(
            f"site.functions: at most one reactive-power mode, got {', '.join(reactive)}"
        )
    ys = {f.mode: [y for _, y in f.curve] for f in functions if f.mode.ride_through and f.curve}
    problems += _enter_service_window(ys, es) + _cessation_outside_continuous(ys)
    return problems


def _enter_service_window(ys: dict[Mode, list[float]], es: EnterService) -> list[str]:
    """The Enter Service window strictly inside the must-trip thresholds."""
    window = (
        (Mode.HV_MUST_TRIP, es.high_volt_pct, "enter_service.high_volt_pct", min, "below"),
        (Mode.LV_MUST_TRIP, es.low_volt_pct, "enter_service.low_volt_pct", max, "above"),
        (Mode.HF_MUST_TRIP, es.high_freq_hz, "enter_service.high_freq_hz", min, "below"),
        (Mode.LF_MUST_TRIP, es.low_freq_hz, "enter_service.low_freq_hz", max, "above"),
    )
    problems = []
    for mode, es_value, key, pick, side in window:
        if mode in ys:
            trip = pick(ys[mode])
            if (side == "below" and es_value >= trip) or (side == "above" and es_value <= trip):
                problems.append(f"site.{key}: {es_value:g} must be {side} the {mode.value} "
                                f"threshold {trip:g}")  # fmt: skip
    return problems


def _cessation_outside_continuous(ys: dict[Mode, list[float]]) -> list[str]:
    """Momentary cessation belongs to the ride-through zone, beyond the continuous operating
    range the longest must-trip bounds (HV: its lowest threshold, LV: its highest)."""
    pairs = ((Mode.HV_MOMENTARY_CESSATION, Mode.HV_MUST_TRIP, min, "below"),
             (Mode.LV_MOMENTARY_CESSATION, Mode.LV_MUST_TRIP, max, "above"))  # fmt: skip
    problems = []
    for cessation, trip, pick, side in pairs:
        if cessation in ys and trip in ys:
            threshold, bound = pick(ys[cessation]), pick(ys[trip])
            if (side == "below" and threshold < bound) or (side == "above" and threshold > bound):
                problems.append(f"site.functions: {cessation.value} at {threshold:g} lies "
                                f"{side} the {trip.value} threshold {bound:g}, inside the "
                                "continuous operating range")  # fmt: skip
    return problems


def _curve(section: SectionReader, mode: Mode) -> tuple[tuple[float, float], ...]:
    raw = section.raw_list("curve")
    where = f"{section.name}.curve"
    problems = section.problems
    fewest = 1 if mode.ride_through else 2
    unit = "[seconds, y] points" if mode.ride_through else "[x, y] points, in percent"
    ok = (
        isinstance(raw, list)
        and all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
            for p in raw
        )
        and fewest <= len(raw) <= MAX_CURVE_POINTS
    )
    if not ok:
        problems.append(f"{where}: {fewest} to {MAX_CURVE_POINTS} {unit}")
        return ()
    points = tuple((float(x), float(y)) for x, y in raw)
    if not mode.ride_through:
        if any(b[0] <= a[0] for a, b in itertools.pairwise(points)):
            problems.append(f"{where}: x values must increase")
        return points
    low, high, unit = RIDE_THROUGH[mode]
    found = []
    if any(b[0] < a[0] for a, b in itertools.pairwise(points)):
        found.append(f"{where}: times must not decrease")
    if any(not 0.0 <= x <= MAX_TRIP_TIME_S for x, _ in points):
        found.append(f"{where}: times must be 0 to {MAX_TRIP_TIME_S:g} s")
    if any(not low <= y <= high for _, y in points):
        found.append(f"{where}: {mode.value} values must be {low:g} to {high:g} {unit}")
    problems += found
    return () if found else points  # a refused curve takes no part in the set's checks


def describe(function: SiteFunction) -> str:
    """One line for ``status``: the mode and what it is set to."""
    mode = function.mode
    if function.curve:
        points = " ".join(f"({x:g}, {y:g})" for x, y in function.curve)
        return f"{mode.value} {points}"
    if mode is Mode.FIXED_PF:
        return f"{mode.value} {function.value:g}"
    if function.value is not None:
        return f"{mode.value} {function.value:g} %"
    droop = "".join(f" {key}={value:g}" for key, value in function.droop)
    return f"{mode.value}{droop}"
