"""The site's resources, built from ``[site]``: the limits the PEV reads first, the EVSE's own
DERCapability, and the program the PEV must follow (DefaultDERControl + one DERControl per
IEEE 1547 function in effect, with their curves).

Pure: config, identifiers and ``now`` in, model instances out. Units follow 2030.5: powers as
value x 10^multiplier W, settings in hundredths (Hz, % of setVRef, seconds), curve points in
hundredths of a percent (multiplier -2). docs/v2g-ac-profile.md, "The session", step 4:
every function in effect is published (absence disables it in the PEV), one mode per control,
``start`` = the control's creation, ``duration`` = 4294967295, responses "received" and
"started" required, replies to the Response list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TypedDict

from firmware.sep2 import paths
from firmware.sep2.config import EnterService, Mode, SiteConfig, SiteFunction
from firmware.sep2.control import DefaultDERControl, DERControl, DERControlBase, FreqDroop
from firmware.sep2.curve import CurveData, DERCurve
from firmware.sep2.der import DERCapability, DERSettings
from firmware.sep2.values import (
    ActivePower,
    DateTimeInterval,
    EventStatus,
    FixedVar,
    Link,
    PowerFactorWithExcitation,
    VoltageRMS,
    WattHour,
)

FOREVER_S = 4_294_967_295  # DateTimeInterval.duration: "until superseded"
RESPONSES_RECEIVED_STARTED = 0x03  # responseRequired bits 0 and 1
EVENT_ACTIVE = 1
DER_TYPE_EVSE = 82
DER_TYPE_PEV = 81
# DERCurveType and DERUnitRefType (2030.5 enumerations)
CURVE_TYPES = {Mode.VOLT_VAR: 11, Mode.VOLT_WATT: 12, Mode.WATT_VAR: 14}
Y_REF_TYPES = {Mode.VOLT_VAR: 2, Mode.VOLT_WATT: 1, Mode.WATT_VAR: 2}  # %setMaxVar / %setMaxW
REF_SET_MAX_VAR = 2
HUNDREDTHS = -2


def active_power(watts: int) -> ActivePower:
    """The smallest power-of-ten multiplier whose value fits a 16-bit signed integer."""
    multiplier, value = 0, watts
    while not -32768 <= value <= 32767:
        multiplier, value = multiplier + 1, round(watts / 10 ** (multiplier + 1))
    return ActivePower(multiplier=multiplier, value=value)


def scaled(quantity: ActivePower | VoltageRMS | WattHour) -> float:
    """A 2030.5 {multiplier, value} quantity in its unit (W, V, Wh)."""
    return float(quantity.value * 10**quantity.multiplier)


watts = scaled  # the name reads better where the quantity is a power


def mrid(*parts: object) -> str:
    """A stable 128-bit mRID for a site object (the same across restarts)."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32].upper()


@dataclass(frozen=True, slots=True)
class SiteResources:
    config: SiteConfig
    evse_lfdi: str
    created_at: int  # when the controls were put in effect (their creationTime and start)

    def settings(self, now: int) -> DERSettings:
        """The site limits (J3072 Table C2): setMaxW (never VA), setVRef, Enter-Service."""
        site, es = self.config, self.config.enter_service
        return DERSettings(
            href=paths.SELF_DER_SETTINGS,
            **enter_service(es),
            set_max_w=active_power(site.max_w),
            set_v_ref=VoltageRMS(multiplier=0, value=site.v_ref_v),
            updated_time=now,
        )

    def capability(self) -> DERCapability:
        return DERCapability(
            href=paths.SELF_DER_CAPABILITY,
            modes_supported=0,
            rtg_max_w=active_power(self.config.max_w),
            der_type=DER_TYPE_EVSE,
        )

    def default_control(self, n: int, energize: bool) -> DefaultDERControl:
        """Enter-Service and the permission itself: ``opModEnergize`` is the J3072 grant."""
        es = self.config.enter_service
        return DefaultDERControl(
            href=paths.under(n, paths.DEFAULT_CONTROL),
            subscribable=1,
            mrid=mrid(self.evse_lfdi, "default"),
            description="site defaults",
            der_control_base=DERControlBase(op_mod_energize=energize),
            **enter_service(es),
        )

    def controls(self, n: int) -> tuple[DERControl, ...]:
        return tuple(self._control(n, k, f) for k, f in enumerate(self.config.functions))

    def curves(self, n: int) -> tuple[DERCurve, ...]:
        curved = [f for f in self.config.functions if f.curve]
        return tuple(self._curve(n, k, f) for k, f in enumerate(curved))

    def _control(self, n: int, k: int, function: SiteFunction) -> DERControl:
        return DERControl(
            href=paths.control(n, k),
            reply_to=paths.RESPONSES,
            response_required=RESPONSES_RECEIVED_STARTED,
            subscribable=0,
            mrid=mrid(self.evse_lfdi, "control", function.mode.value),
            description=function.mode.value,
            creation_time=self.created_at,
            event_status=EventStatus(
                current_status=EVENT_ACTIVE, date_time=self.created_at, potentially_superseded=False
            ),
            interval=DateTimeInterval(duration=FOREVER_S, start=self.created_at),
            der_control_base=self._base(n, function),
        )

    def _base(self, n: int, function: SiteFunction) -> DERControlBase:
        mode = function.mode
        if mode in CURVE_TYPES:
            curved = [f.mode for f in self.config.functions if f.curve]
            link = Link(href=paths.curve(n, curved.index(mode)))
            if mode is Mode.VOLT_VAR:
                return DERControlBase(op_mod_volt_var=link)
            if mode is Mode.VOLT_WATT:
                return DERControlBase(op_mod_volt_watt=link)
            return DERControlBase(op_mod_watt_var=link)
        value = function.value if function.value is not None else 0.0
        if mode is Mode.FIXED_PF:
            pf = PowerFactorWithExcitation(
                displacement=round(value * 100), excitation=False, multiplier=HUNDREDTHS
            )
            return DERControlBase(op_mod_fixed_pf_inject_w=pf)
        if mode is Mode.FIXED_VAR:
            fixed = FixedVar(ref_type=REF_SET_MAX_VAR, value=round(value * 100))
            return DERControlBase(op_mod_fixed_var=fixed)
        if mode is Mode.MAX_LIM_W:
            return DERControlBase(op_mod_max_lim_w=round(value * 100))
        if mode is Mode.FIXED_W:
            return DERControlBase(op_mod_fixed_w=round(value * 100))
        droop = dict(function.droop)
        return DERControlBase(
            op_mod_freq_droop=FreqDroop(
                db_of=round(droop["db_of_hz"] * 1000),  # thousandths of Hz
                db_uf=round(droop["db_uf_hz"] * 1000),
                k_of=round(droop["k_of"] * 1000),  # thousandths (per-unit)
                k_uf=round(droop["k_uf"] * 1000),
                open_loop_tms=round(droop["response_s"] * 100),
            )
        )

    def _curve(self, n: int, k: int, function: SiteFunction) -> DERCurve:
        return DERCurve(
            href=paths.curve(n, k),
            mrid=mrid(self.evse_lfdi, "curve", function.mode.value),
            description=function.mode.value,
            creation_time=self.created_at,
            curve_data=tuple(
                CurveData(xvalue=round(x * 100), yvalue=round(y * 100)) for x, y in function.curve
            ),
            curve_type=CURVE_TYPES[function.mode],
            x_multiplier=HUNDREDTHS,
            y_multiplier=HUNDREDTHS,
            y_ref_type=Y_REF_TYPES[function.mode],
        )


class EnterServiceFields(TypedDict):
    """The Enter-Service settings as both DERSettings and DefaultDERControl name them."""

    set_es_delay: int
    set_es_high_freq: int
    set_es_high_volt: int
    set_es_low_freq: int
    set_es_low_volt: int
    set_es_ramp_tms: int
    set_es_random_delay: int
    set_grad_w: int


def enter_service(es: EnterService) -> EnterServiceFields:
    """In 2030.5 units: hundredths of a second, of a Hz and of a percent of setVRef."""
    return EnterServiceFields(
        set_es_delay=es.delay_s * 100,
        set_es_high_freq=round(es.high_freq_hz * 100),
        set_es_high_volt=round(es.high_volt_pct * 100),
        set_es_low_freq=round(es.low_freq_hz * 100),
        set_es_low_volt=round(es.low_volt_pct * 100),
        set_es_ramp_tms=es.ramp_s * 100,
        set_es_random_delay=es.random_delay_s * 100,
        set_grad_w=_grad_w(es),
    )


def _grad_w(es: EnterService) -> int:
    """setGradW: hundredths of a percent of setMaxW per second, the ramp over ``ramp_s``."""
    return max(1, round(10_000 / es.ramp_s))
