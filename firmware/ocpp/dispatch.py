"""A CSMS's charging profile read as what the vehicle is to follow: pure, no I/O.

docs/ocpp.md, "Dispatch": of a SetChargingProfile for this EVSE, the period in effect is
mapped onto the 2030.5 controls the J3072 vehicle follows (V2G-AC profile §4.8.2):

- a setpoint (2.1 ``setpoint``, W; OCPP's sign: + charging, - discharging) becomes
  ``opModFixedW``, a percentage of the vehicle's setMaxW with 2030.5's sign (+ discharge);
- a discharge cap (2.1 ``dischargeLimit``, W, <= 0) becomes ``opModMaxLimW``, a percentage
  of the vehicle's setMaxW;
- a charging limit (``limit``, both versions: 2.0.1 has nothing else, and no negative
  values) becomes the current the pilot's PWM offers, as ``evse-gatekeeper limit`` does.

One period starting at 0 is followed; a schedule of several periods, a profile for another
transaction, a unit or an operation mode this EVSE cannot honour is refused with a reason
(StatusInfo: a reason code of at most 20 characters and a sentence). Nothing here, nor
anywhere the CSMS reaches, grants discharge: that is the J3072 gate's alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware.errors import GatekeeperError
from firmware.pilot.duty import MIN_CURRENT_A

PURPOSES = ("TxProfile", "TxDefaultProfile")
FOLLOWED_MODES = (None, "ChargingOnly", "CentralSetpoint", "ExternalSetpoint", "ExternalLimits")


class DispatchRefused(GatekeeperError):
    """Raised when a charging profile cannot be followed; ``code`` is its StatusInfo
    reasonCode, the message its additionalInfo."""

    def __init__(self, code: str, why: str) -> None:
        super().__init__(why)
        self.code = code[:20]


@dataclass(frozen=True, slots=True)
class Dispatch:
    profile_id: int
    fixed_w_pct: float | None = None  # opModFixedW, + discharge
    max_lim_w_pct: float | None = None  # opModMaxLimW
    charge_limit_a: float | None = None  # the PWM's offer

    @property
    def set_by(self) -> str:
        return f"csms (charging profile {self.profile_id})"


def read_profile(profile: dict[str, Any], base_w: float, v_ref_v: int, rating_a: float,
                 transaction_id: str | None) -> Dispatch:  # fmt: skip
    """``profile``: the ChargingProfile as the ocpp package hands it (snake_case keys);
    ``base_w``: the vehicle's setMaxW (the site's when it gave none)."""
    profile_id = int(profile["id"])
    purpose = profile["charging_profile_purpose"]
    if purpose not in PURPOSES:
        raise DispatchRefused("UnsupportedPurpose", f"{purpose}: only TxProfile and "
                              "TxDefaultProfile are followed")  # fmt: skip
    wanted_tx = profile.get("transaction_id")
    if wanted_tx is not None and wanted_tx != transaction_id:
        raise DispatchRefused("TxNotFound", f"no transaction {wanted_tx} on this EVSE")
    schedules = profile["charging_schedule"]
    schedule = schedules[0] if isinstance(schedules, list) else schedules
    periods = schedule["charging_schedule_period"]
    if len(periods) != 1 or periods[0]["start_period"] != 0:
        raise DispatchRefused("UnsupportedSchedule", "one period, starting at 0, is followed")
    period = periods[0]
    mode = period.get("operation_mode")
    if mode not in FOLLOWED_MODES:
        raise DispatchRefused("UnsupportedMode", f"operation mode {mode} is not followed here")
    per_unit = 1.0 if schedule["charging_rate_unit"] == "W" else float(v_ref_v)
    return _dispatch(profile_id, period, per_unit, base_w, v_ref_v, rating_a)


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
