"""Which of the CSMS's charging profiles is in force, and so what the vehicle and the pilot
follow: pure, the time passed in (monotonic seconds).

docs/ocpp.md "Dispatch": each accepted profile is held with the span it is in force
(``Window.span``, turned into monotonic deadlines when it arrived, so a step of the wall
clock neither starts nor ends one early). For each value (setpoint, dischargeLimit, limit),
of the profiles in force that set it one prevails, as OCPP's stacking has it: a TxProfile
over a TxDefaultProfile, then the highest stackLevel, then (this station's choice for a tie)
the one received last. So a cap sent as its own profile lowers a setpoint in force rather
than ending it; a value no profile in force sets goes back to the site owner's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from firmware.ocpp.dispatch import Dispatch
from firmware.sep2.functions import Mode

Key = Mode | str  # a 2030.5 control's mode, or LIMIT
LIMIT = "limit"  # the pilot's offer


@dataclass(frozen=True, slots=True)
class Held:
    dispatch: Dispatch
    start_s: float  # monotonic: in force from
    end_s: float | None  # until (None: until cleared)
    order: int  # received order

    def in_force(self, now_s: float) -> bool:
        return self.start_s <= now_s and (self.end_s is None or now_s < self.end_s)


def values(dispatch: Dispatch) -> dict[Key, float]:
    found: dict[Key, float | None] = {
        Mode.FIXED_W: dispatch.fixed_w_pct,
        Mode.MAX_LIM_W: dispatch.max_lim_w_pct,
        LIMIT: dispatch.charge_limit_a,
    }
    return {key: value for key, value in found.items() if value is not None}


def in_effect(held: Iterable[Held], now_s: float) -> dict[Key, Held]:
    """For each value some profile in force sets, the profile that prevails for it."""
    ranked = sorted((h for h in held if h.in_force(now_s)),
                    key=lambda h: (h.dispatch.window.tx_profile, h.dispatch.window.stack_level,
                                   h.order))  # fmt: skip
    return {key: h for h in ranked for key in values(h.dispatch)}  # the last ranked wins


def next_change_s(held: Iterable[Held], now_s: float) -> float | None:
    """When the next profile starts or ends (None: none will)."""
    moments = [t for h in held for t in (h.start_s, h.end_s) if t is not None and t > now_s]
    return min(moments, default=None)
