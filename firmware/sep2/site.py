"""The site's resources, built from ``[site]``: the limits the PEV reads first, the EVSE's own
DERCapability, and the program each session's vehicle must follow (DefaultDERControl + one
DERControl per IEEE 1547 function in effect, with their curves).

Units follow 2030.5: powers as value x 10^multiplier W, settings in hundredths (Hz, % of
setVRef, seconds), curve points in hundredths (of a percent, a second or a Hz; multiplier
-2). docs/v2g-ac-profile.md, "The management information": every function in effect is
published (absence disables it in the PEV), one mode per control, each session's controls
``start`` when the session does with mRIDs of their own (§4.6.3), ``duration`` = 4294967295,
responses "received" and "started" required, replies to the Response list. A change at run
time publishes a superseding control (a newer start, a new mRID) in every running session and
lists the one it replaced as superseded.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from firmware.sep2 import paths
from firmware.sep2.config import EnterService, SiteConfig
from firmware.sep2.control import DefaultDERControl, DERControl, DERControlBase, FreqDroop
from firmware.sep2.curve import CurveData, DERCurve
from firmware.sep2.der import DERCapability, DERSettings
from firmware.sep2.functions import Mode, SiteFunction, replaced
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

if TYPE_CHECKING:
    from firmware.sep2.store import PevRecord

FOREVER_S = 4_294_967_295  # DateTimeInterval.duration: "until superseded"
RESPONSES_RECEIVED_STARTED = 0x03  # responseRequired bits 0 and 1
EVENT_ACTIVE = 1
EVENT_SUPERSEDED = 4
DER_TYPE_EVSE = 82
DER_TYPE_PEV = 81
# DERCurveType and DERUnitRefType (2030.5 enumerations)
# (the ride-through curves: x in seconds, y in % of setVRef, "%setEffectiveV", or in Hz, "N/A")
CURVE_TYPES = {
    Mode.HF_MUST_TRIP: 2, Mode.HV_MOMENTARY_CESSATION: 4, Mode.HV_MUST_TRIP: 5,
    Mode.LF_MUST_TRIP: 7, Mode.LV_MOMENTARY_CESSATION: 9, Mode.LV_MUST_TRIP: 10,
    Mode.VOLT_VAR: 11, Mode.VOLT_WATT: 12, Mode.WATT_VAR: 14,
}  # fmt: skip
REF_NONE, REF_SET_MAX_W, REF_SET_MAX_VAR, REF_EFFECTIVE_V = 0, 1, 2, 4
Y_REF_TYPES = {
    Mode.VOLT_VAR: REF_SET_MAX_VAR, Mode.VOLT_WATT: REF_SET_MAX_W, Mode.WATT_VAR: REF_SET_MAX_VAR,
    Mode.HV_MUST_TRIP: REF_EFFECTIVE_V, Mode.LV_MUST_TRIP: REF_EFFECTIVE_V,
    Mode.HV_MOMENTARY_CESSATION: REF_EFFECTIVE_V, Mode.LV_MOMENTARY_CESSATION: REF_EFFECTIVE_V,
    Mode.HF_MUST_TRIP: REF_NONE, Mode.LF_MUST_TRIP: REF_NONE,
}  # fmt: skip
CURVE_LINKS: dict[Mode, Callable[[Link], DERControlBase]] = {  # the element linking each curve
    Mode.VOLT_VAR: lambda link: DERControlBase(op_mod_volt_var=link),
    Mode.VOLT_WATT: lambda link: DERControlBase(op_mod_volt_watt=link),
    Mode.WATT_VAR: lambda link: DERControlBase(op_mod_watt_var=link),
    Mode.HV_MUST_TRIP: lambda link: DERControlBase(op_mod_hvrt_must_trip=link),
    Mode.LV_MUST_TRIP: lambda link: DERControlBase(op_mod_lvrt_must_trip=link),
    Mode.HF_MUST_TRIP: lambda link: DERControlBase(op_mod_hfrt_must_trip=link),
    Mode.LF_MUST_TRIP: lambda link: DERControlBase(op_mod_lfrt_must_trip=link),
    Mode.HV_MOMENTARY_CESSATION: lambda link: DERControlBase(op_mod_hvrt_momentary_cessation=link),
    Mode.LV_MOMENTARY_CESSATION: lambda link: DERControlBase(op_mod_lvrt_momentary_cessation=link),
}
HUNDREDTHS = -2
SET_BY_CONFIG = "site owner (config)"
SET_BY_SOCKET = "site owner (control socket)"


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


@dataclass(slots=True)
class IssuedControl:
    """One DERControl as a session's vehicle sees it: its own mRID and start."""

    k: int  # its place in the session: /edev/<n>/derp/0/derc/<k>, and its curve's
    function: SiteFunction
    mrid: str
    created_at: int  # wall seconds: creationTime, interval.start and the status's dateTime
    issued_ns: int  # monotonic: when its Responses and its values fall due
    initial: bool  # published at the session's start: due with the exchange
    before: IssuedControl | None = None  # what it superseded (counts until it is due)
    superseded_at: int | None = None  # wall seconds, once a newer control of its mode took over
    set_by: str = SET_BY_CONFIG  # who put it in effect: the site owner, or the CSMS

    @property
    def current(self) -> bool:
        return self.superseded_at is None

    def due(self, now_ns: int, after_ns: int) -> bool:
        """Whether what it asks is due: from the start if it is initial, else ``after_ns``
        after it was published (its Responses, or its value for the meter)."""
        return self.initial or now_ns >= self.issued_ns + after_ns


@dataclass(slots=True)
class SessionProgram:
    """The controls of one vehicle's session (§4.6.3: start = now, fresh mRIDs): the ones in
    effect, and the one each of them superseded (kept listed, as superseded, until the next
    change of its mode)."""

    token: str  # makes every mRID of the session new
    started_at: int
    controls: list[IssuedControl] = field(default_factory=list)
    _next_k: itertools.count[int] = field(default_factory=itertools.count)

    def issue(self, function: SiteFunction, now: int, now_ns: int, evse_lfdi: str,
              initial: bool, before: IssuedControl | None = None,
              set_by: str = SET_BY_CONFIG) -> IssuedControl:  # fmt: skip
        k = next(self._next_k)
        control = IssuedControl(k, function, mrid(evse_lfdi, self.token, k), now, now_ns,
                                initial, before, set_by=set_by)  # fmt: skip
        self.controls.append(control)
        return control

    def current(self) -> list[IssuedControl]:
        return [c for c in self.controls if c.current]

    def of(self, mode: Mode) -> IssuedControl | None:
        return next((c for c in self.current() if c.function.mode is mode), None)

    def due(self, now_ns: int, after_ns: int) -> list[IssuedControl]:
        """The controls in effect whose Responses are due: the initial ones, and the later
        ones ``after_ns`` after they were published."""
        return [c for c in self.current() if c.due(now_ns, after_ns)]

    def pending(self, now_ns: int, after_ns: int) -> list[IssuedControl]:
        return [c for c in self.current() if not c.due(now_ns, after_ns)]


@dataclass(slots=True)
class SiteResources:
    """The site's limits and functions, and each session's program built from them. The
    functions in effect start as ``[site]`` says and change at run time (``change``)."""

    config: SiteConfig
    evse_lfdi: str
    wall_clock: Callable[[], float] = time.time
    clock_ns: Callable[[], int] = time.monotonic_ns
    functions: tuple[SiteFunction, ...] = ()
    set_by: dict[Mode, str] = field(default_factory=dict)  # who set each site function

    def __post_init__(self) -> None:
        self.functions = self.config.functions

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

    # --- one session's program ---------------------------------------------------------

    def program(self, record: PevRecord) -> SessionProgram:
        """The vehicle's program for this session, made at its first read: every function
        in effect, started now, with mRIDs no earlier session had."""
        if record.program is None:
            now = int(self.wall_clock())
            program = SessionProgram(secrets.token_hex(8), now)
            for function in self.functions:
                set_by = self.set_by.get(function.mode, SET_BY_CONFIG)
                program.issue(function, now, self.clock_ns(), self.evse_lfdi, initial=True,
                              set_by=set_by)  # fmt: skip
            record.program = program
        return record.program

    def change(self, function: SiteFunction, records: list[PevRecord],
               set_by: str = SET_BY_SOCKET) -> SiteFunction | None:  # fmt: skip
        """Put ``function`` in effect (the caller checked the set): each running session gets
        a superseding DERControl; returns the function it replaced, if any."""
        self.functions, old = replaced(self.functions, function)
        self.set_by[function.mode] = set_by
        for record in records:
            if record.program is not None:
                self.supersede(record, function, set_by)
        return old

    def supersede(self, record: PevRecord, function: SiteFunction, set_by: str) -> IssuedControl:
        """One session's superseding DERControl for ``function`` (a fresh mRID, start now),
        the site's functions unchanged: a CSMS's dispatch for the vehicle of this session."""
        now, now_ns = int(self.wall_clock()), self.clock_ns()
        program = self.program(record)
        before = next((c for c in program.current() if _same_slot(c.function, function)),
                      None)  # fmt: skip
        for control in list(program.controls):
            if not control.current and _same_slot(control.function, function):
                program.controls.remove(control)  # only the latest superseded one stays
        if before is not None:
            before.superseded_at = now
        return program.issue(function, now, now_ns, self.evse_lfdi, initial=False,
                             before=before, set_by=set_by)  # fmt: skip

    def restore(self, record: PevRecord, mode: Mode) -> IssuedControl | None:
        """The session back to the site's own function of ``mode`` (a superseding control),
        or, when the site has none, the session's control of that mode withdrawn (listed as
        superseded, nothing in its place: absent, the vehicle no longer follows it)."""
        site = next((f for f in self.functions if f.mode is mode), None)
        if site is not None:
            return self.supersede(record, site, self.set_by.get(mode, SET_BY_CONFIG))
        current = self.program(record).of(mode)
        if current is not None:
            current.superseded_at = int(self.wall_clock())
        return None

    def default_control(self, record: PevRecord) -> DefaultDERControl:
        """Enter-Service and the permission itself: ``opModEnergize`` is the J3072 grant."""
        es = self.config.enter_service
        program = self.program(record)
        return DefaultDERControl(
            href=paths.under(record.n, paths.DEFAULT_CONTROL),
            subscribable=1,
            mrid=mrid(self.evse_lfdi, program.token, "default"),
            description="site defaults",
            der_control_base=DERControlBase(op_mod_energize=record.energize),
            **enter_service(es),
        )

    def controls(self, record: PevRecord) -> tuple[DERControl, ...]:
        """The DERControlList: the controls in effect, then those they superseded."""
        program = self.program(record)
        ordered = sorted(program.controls, key=lambda c: (not c.current, c.k))
        return tuple(self._control(record.n, c) for c in ordered)

    def curves(self, record: PevRecord) -> tuple[DERCurve, ...]:
        listed = self.program(record).controls
        return tuple(self._curve(record.n, c) for c in listed if c.function.curve)

    def _control(self, n: int, issued: IssuedControl) -> DERControl:
        superseded = issued.superseded_at
        status = EventStatus(
            current_status=EVENT_ACTIVE if superseded is None else EVENT_SUPERSEDED,
            date_time=issued.created_at if superseded is None else superseded,
            potentially_superseded=False,
        )
        return DERControl(
            href=paths.control(n, issued.k),
            reply_to=paths.RESPONSES,
            response_required=RESPONSES_RECEIVED_STARTED,
            subscribable=0,
            mrid=issued.mrid,
            description=issued.function.mode.value,
            creation_time=issued.created_at,
            event_status=status,
            interval=DateTimeInterval(duration=FOREVER_S, start=issued.created_at),
            der_control_base=self._base(n, issued),
        )

    def _base(self, n: int, issued: IssuedControl) -> DERControlBase:
        function = issued.function
        mode = function.mode
        if function.curve:
            return CURVE_LINKS[mode](Link(href=paths.curve(n, issued.k)))
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

    def _curve(self, n: int, issued: IssuedControl) -> DERCurve:
        function = issued.function
        return DERCurve(
            href=paths.curve(n, issued.k),
            mrid=mrid(self.evse_lfdi, "curve", issued.mrid),
            description=function.mode.value,
            creation_time=issued.created_at,
            curve_data=tuple(
                CurveData(xvalue=round(x * 100), yvalue=round(y * 100)) for x, y in function.curve
            ),
            curve_type=CURVE_TYPES[function.mode],
            x_multiplier=HUNDREDTHS,
            y_multiplier=HUNDREDTHS,
            y_ref_type=Y_REF_TYPES[function.mode],
        )


def _same_slot(a: SiteFunction, b: SiteFunction) -> bool:
    """Whether one supersedes the other: the same mode, or both reactive (one at a time)."""
    return a.mode is b.mode or (a.mode.reactive and b.mode.reactive)


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
