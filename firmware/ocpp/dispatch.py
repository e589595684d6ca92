"""A CSMS's charging profile read as what the vehicle is to follow: pure, no I/O.

docs/ocpp.md, "Dispatch": of a SetChargingProfile for this EVSE, the period in effect is
mapped onto the 2030.5 controls the J3072 vehicle follows (V2G-AC profile §4.8.2):

- a setpoint (2.1 ``setpoint``, W; OCPP's sign: + charging, - discharging) becomes
  ``opModFixedW``, a percentage of the vehicle's setMaxW with 2030.5's sign (+ discharge);
- a discharge cap (2.1 ``dischargeLimit``, W, <= 0) becomes ``opModMaxLimW``, a percentage
  of the vehicle's setMaxW;
- a charging limit (``limit``, both versions: 2.0.1 has nothing else, and no negative
  values) becomes the current the pilot's PWM offers, as ``evse-gatekeeper limit`` does.

Each period is followed in its turn, from when the profile comes into force (validFrom, the
schedule's startSchedule, or the transaction's start for a Relative one) plus its
startPeriod until the next period's start, the last one until the profile ends (validTo,
the schedule's duration): ``Window``, one per period (``read_schedule``; a day-ahead plan of
up to ``MAX_PERIODS``). A schedule whose periods are not in order from 0, a Recurring
profile, a profile for another transaction, a unit or an operation mode this EVSE cannot
honour is refused with a reason (StatusInfo: a reason code of at most 20 characters and a
sentence), rather than misapplied. Nothing here, nor
anywhere the CSMS reaches, grants discharge: that is the J3072 gate's alone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from firmware.errors import GatekeeperError
from firmware.pilot.duty import MIN_CURRENT_A

PURPOSES = ("TxProfile", "TxDefaultProfile")
MAX_PERIODS = 96  # a day of quarter hours (SmartChargingCtrlr.PeriodsPerSchedule)
FOLLOWED_MODES = (None, "ChargingOnly", "CentralSetpoint", "ExternalSetpoint", "ExternalLimits")


class DispatchRefused(GatekeeperError):
    """Raised when a charging profile cannot be followed; ``code`` is its StatusInfo
    reasonCode, the message its additionalInfo."""

    def __init__(self, code: str, why: str) -> None:
        super().__init__(why)
        self.code = code[:20]


@dataclass(frozen=True, slots=True)
class Window:
    """When a profile is in force, read from it (wall seconds; None: not given)."""

    stack_level: int = 0
    tx_profile: bool = True  # a TxProfile (else TxDefaultProfile): it prevails
    relative: bool = False  # Relative: the schedule starts with the transaction
    valid_from_s: float | None = None
    valid_to_s: float | None = None
    start_schedule_s: float | None = None
    duration_s: float | None = None
    offset_s: float = 0.0  # the period's startPeriod, from the schedule's start
    length_s: float | None = None  # until the next period's start (None: the last period)

    @property
    def dated(self) -> bool:
        """It gives a date and time (placed on the wall clock)."""
        return any(t is not None for t in (self.valid_from_s, self.valid_to_s,
                                           self.start_schedule_s))  # fmt: skip

    def span(self, now_s: float, tx_start_s: float | None) -> tuple[float, float | None]:
        """From when until when (None: until cleared) it is in force, in wall seconds:
        the schedule starts at startSchedule (Relative: the transaction's start; neither:
        now) and lasts its duration, within validFrom..validTo."""
        begin = self.start_schedule_s
        if self.relative or begin is None:
            begin = tx_start_s if self.relative and tx_start_s is not None else now_s
        ends = [begin + self.duration_s] if self.duration_s is not None else []
        ends += [self.valid_to_s] if self.valid_to_s is not None else []
        ends += [begin + self.offset_s + self.length_s] if self.length_s is not None else []
        start = begin + self.offset_s
        start = max(start, self.valid_from_s) if self.valid_from_s is not None else start
        return start, min(ends) if ends else None


@dataclass(frozen=True, slots=True)
class Dispatch:
    profile_id: int
    fixed_w_pct: float | None = None  # opModFixedW, + discharge
    max_lim_w_pct: float | None = None  # opModMaxLimW
    charge_limit_a: float | None = None  # the PWM's offer
    window: Window = field(default_factory=Window)

    @property
    def set_by(self) -> str:
        return f"csms (charging profile {self.profile_id})"


def read_profile(profile: dict[str, Any], base_w: float, v_ref_v: int, rating_a: float,
                 transaction_id: str | None) -> Dispatch:  # fmt: skip
    """The first period of ``read_schedule``."""
    return read_schedule(profile, base_w, v_ref_v, rating_a, transaction_id)[0]


def read_schedule(profile: dict[str, Any], base_w: float, v_ref_v: int, rating_a: float,
                  transaction_id: str | None) -> list[Dispatch]:  # fmt: skip
    """Each period of ``profile`` as a dispatch with its own window. ``profile``: the
    ChargingProfile as the ocpp package hands it (snake_case keys); ``base_w``: the
    vehicle's setMaxW (the site's when it gave none)."""
    profile_id = int(profile["id"])
    purpose = profile["charging_profile_purpose"]
    if purpose not in PURPOSES:
        raise DispatchRefused("UnsupportedPurpose", f"{purpose}: only TxProfile and "
                              "TxDefaultProfile are followed")  # fmt: skip
    wanted_tx = profile.get("transaction_id")
    if wanted_tx is not None and wanted_tx != transaction_id:
        raise DispatchRefused("TxNotFound", f"no transaction {wanted_tx} on this EVSE")
    schedules = profile["charging_schedule"]
    if isinstance(schedules, list) and len(schedules) != 1:
        raise DispatchRefused("UnsupportedSchedule", "one charging schedule is followed")
    schedule = schedules[0] if isinstance(schedules, list) else schedules
    window = _window(profile, schedule)
    periods = schedule["charging_schedule_period"]
    starts = [int(period["start_period"]) for period in periods]
    if not periods or starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)):
        raise DispatchRefused("UnsupportedSchedule", "periods must start at 0 and follow "
                              "each other in order")  # fmt: skip
    if len(periods) > MAX_PERIODS:
        raise DispatchRefused("UnsupportedSchedule", f"at most {MAX_PERIODS} periods")
    per_unit = 1.0 if schedule["charging_rate_unit"] == "W" else float(v_ref_v)
    dispatches = []
    for n, period in enumerate(periods):
        mode = period.get("operation_mode")
        if mode not in FOLLOWED_MODES:
            raise DispatchRefused("UnsupportedMode", f"operation mode {mode} is not followed "
                                  "here")  # fmt: skip
        read = _dispatch(profile_id, period, per_unit, base_w, v_ref_v, rating_a)
        length = starts[n + 1] - starts[n] if n + 1 < len(starts) else None
        span = replace(window, offset_s=float(starts[n]),
                       length_s=float(length) if length is not None else None)  # fmt: skip
        dispatches.append(Dispatch(read.profile_id, read.fixed_w_pct, read.max_lim_w_pct,
                                   read.charge_limit_a, span))  # fmt: skip
    return dispatches


def _window(profile: dict[str, Any], schedule: dict[str, Any]) -> Window:
    kind = profile.get("charging_profile_kind")
    if kind not in ("Absolute", "Relative"):
        raise DispatchRefused("UnsupportedKind", f"{kind}: only Absolute and Relative "
                              "profiles are followed")  # fmt: skip
    duration = schedule.get("duration")
    if duration is not None and int(duration) <= 0:
        raise DispatchRefused("OutOfRange", f"a duration of {duration} s is over before it starts")
    return Window(
        stack_level=int(profile.get("stack_level", 0)),
        tx_profile=profile.get("charging_profile_purpose") == "TxProfile",
        relative=kind == "Relative",
        valid_from_s=_wall(profile.get("valid_from"), "validFrom"),
        valid_to_s=_wall(profile.get("valid_to"), "validTo"),
        start_schedule_s=_wall(schedule.get("start_schedule"), "startSchedule"),
        duration_s=float(duration) if duration is not None else None,
    )


def _wall(text: object, name: str) -> float | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise DispatchRefused("InvalidValue", f"{name} {text!r} is no date and time") from None
    if moment.tzinfo is None:
        raise DispatchRefused("InvalidValue", f"{name} {text!r} has no time zone (UTC: Z)")
    return moment.timestamp()


def _dispatch(profile_id: int, period: dict[str, Any], per_unit: float, base_w: float,
              v_ref_v: int, rating_a: float) -> Dispatch:  # fmt: skip
    fixed = max_lim = charge_a = None
    setpoint = period.get("setpoint")
    if setpoint is not None:
        watts = float(setpoint) * per_unit
        if abs(watts) > base_w:
            raise DispatchRefused("OutOfRange", f"setpoint {watts:g} W is beyond the "
                                  f"vehicle's setMaxW {base_w:g} W")  # fmt: skip
        fixed = round(-watts / base_w * 100, 2)
    discharge_limit = period.get("discharge_limit")
    if discharge_limit is not None:
        watts = abs(float(discharge_limit)) * per_unit
        max_lim = round(min(watts / base_w * 100, 100.0), 2)
    limit = period.get("limit")
    if limit is not None:
        if float(limit) < 0:  # the 2.0.1 schema lets it through; its text does not
            raise DispatchRefused("OutOfRange", "a negative limit is no charging limit; "
                                  "discharge is OCPP 2.1's setpoint or dischargeLimit")  # fmt: skip
        amps = min(float(limit) * per_unit / v_ref_v, rating_a)
        charge_a = float(int(amps)) if amps >= MIN_CURRENT_A else 0.0  # below 6 A: pause
    if fixed is None and max_lim is None and charge_a is None:
        raise DispatchRefused("NothingToFollow", "no setpoint, dischargeLimit or limit")
    return Dispatch(profile_id, fixed, max_lim, charge_a)
