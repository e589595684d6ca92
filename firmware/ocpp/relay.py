"""The CSMS's dispatch relayed to the authorized vehicle (V2G-AC profile §3.4.5.2: the EVSE
relays a DER managing entity's control to the connected and approved PEV).

A charging profile the J3072 gate's vehicle can follow becomes a superseding DERControl in
that vehicle's session only (``Sep2Service.dispatch``: opModFixedW for a setpoint,
opModMaxLimW for a discharge cap), the same path the site owner's ``control`` takes, with
who set it recorded in the journal and told to the CSMS; the vehicle's Responses to it are
reported back (``Upstream``) and the gate holds the vehicle to it with the meter. A charging
limit lowers the pilot's offer, as ``evse-gatekeeper limit`` does.

Default deny: a profile for a vehicle the gate has not authorized is refused with the gate's
reasons, and nothing here can make the gate authorize. A profile is followed while it is in
force (``firmware.ocpp.profiles``: its validity and schedule, a timer on the loop for when it
starts or ends, the prevailing one by purpose and stackLevel); ClearChargingProfile, or its
end, returns the session to the site's own functions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from firmware.logs import log_event
from firmware.ocpp.dispatch import Dispatch, DispatchRefused, read_schedule
from firmware.ocpp.limits import ITEMS_PER_MESSAGE
from firmware.ocpp.messages import EVSE_ID
from firmware.ocpp.profiles import LIMIT, Held, Key, in_effect, next_change_s, values
from firmware.ocpp.upstream import Upstream
from firmware.sep2.functions import Mode, SiteFunction, describe
from firmware.sep2.site import watts

if TYPE_CHECKING:
    from firmware.j3072.gate import Gate
    from firmware.journal.recorder import Recorder
    from firmware.sep2.service import Sep2Service

logger = logging.getLogger(__name__)
Verdict = tuple[str, str | None, str | None]  # status, reasonCode, additionalInfo
MAX_PROFILES = 32  # held at once (OCPP's SmartChargingCtrlr.Entries): a CSMS cannot grow it
RETRY_S = 5.0  # a follow that failed (the charger did not take a limit in time) is tried again
Read = tuple[Dispatch, float, float | None]  # a period's dispatch, in force from, until (mono)
HeldKey = tuple[int, int]  # the profile's id, the period's startPeriod (s)


class DispatchRelay:
    def __init__(self, gate: Gate, sep2: Sep2Service | None, recorder: Recorder,
                 upstream: Upstream, set_limit: Callable[[float | None], Awaitable[Any]],
                 rating_a: float, clock_synced: Callable[[], bool],
                 mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:  # fmt: skip
        """``set_limit``: the CSMS's charging limit, None to withdraw it (the daemon offers the
        lower of it and the site owner's); ``clock_synced``: whether the wall clock has been
        synchronized since boot (``ClockWatch.since_boot``)."""
        self._gate, self._sep2, self._recorder = gate, sep2, recorder
        self._upstream, self._set_limit, self._rating_a = upstream, set_limit, rating_a
        self._mono, self._wall, self._clock_synced = mono, wall, clock_synced
        self._held: dict[HeldKey, Held] = {}  # the accepted profiles' periods
        self._applied: dict[Key, tuple[int, float]] = {}  # in effect: key -> (profile, value)
        self._offered_a: float | None = None  # the pilot's offer after our last limit
        self._received = 0
        self._session: str | None = None  # the vehicle the profiles were set for
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._following = asyncio.Lock()  # one follow at a time: each awaits the charger
        self._failed: set[str] = set()  # the kinds of failed follow already logged
        self._skipped = False  # a control not put: the vehicle was away

    async def set_charging_profile(self, evse_id: int, profile: dict[str, Any]) -> Verdict:
        try:
            periods = await self._read(evse_id, profile)
        except DispatchRefused as err:
            log_event(logger, "ocpp.dispatch_refused", logging.WARNING,
                      profile=profile.get("id"), code=err.code, reason=str(err))  # fmt: skip
            self._upstream.refused(f"charging profile {profile.get('id')}", str(err))
            return "Rejected", err.code, str(err)
        dispatch, start_s, _ = periods[0]
        end_s = periods[-1][2]
        profile_id = dispatch.profile_id
        if profile_id not in self._profiles() and len(self._profiles()) >= MAX_PROFILES:
            why = f"{MAX_PROFILES} profiles are held for this session: clear one, or re-use an id"
            self._upstream.refused(f"charging profile {profile_id}", why)
            return "Rejected", "TooManyProfiles", why
        bound = self._gate.bound
        if bound is None or bound.lfdi != self._session:  # it left while this was read
            why = "the vehicle left while the profile was read"
            self._upstream.refused(f"charging profile {profile_id}", why)
            return "Rejected", "NotAuthorized", why
        self._received += 1
        self._hold(periods, self._held, self._received)
        await self.follow()
        log_event(logger, "ocpp.dispatch_accepted", profile=profile_id, periods=len(periods),
                  fixed_w_pct=dispatch.fixed_w_pct, max_lim_w_pct=dispatch.max_lim_w_pct,
                  charge_limit_a=dispatch.charge_limit_a,
                  starts_in_s=round(max(start_s - self._mono(), 0.0), 1),
                  lasts_s=round(end_s - start_s, 1) if end_s is not None else "")  # fmt: skip
        capped = self._capped(dispatch)
        if capped:
            return "Accepted", "LimitedBySiteOwner", "in effect: " + "; ".join(capped)
        return "Accepted", None, None

    def _profiles(self) -> set[int]:
        return {profile_id for profile_id, _ in self._held}

    @staticmethod
    def _hold(periods: list[Read], held: dict[HeldKey, Held], order: int) -> None:
        """``periods`` (one profile's) replace whatever that profile's id held."""
        profile_id = periods[0][0].profile_id
        for key in [k for k in held if k[0] == profile_id]:
            del held[key]
        for dispatch, start_s, end_s in periods:
            held[profile_id, int(dispatch.window.offset_s)] = Held(dispatch, start_s, end_s, order)

    def _capped(self, dispatch: Dispatch) -> list[str]:
        """What the site owner's lower limits hold down (docs/ocpp.md "Dispatch": the CSMS
        lowers, never raises)."""
        capped = []
        owner = self._owner_percent(Mode.MAX_LIM_W)
        asked = dispatch.max_lim_w_pct
        if asked is not None and owner is not None and owner < asked:
            capped.append(f"opModMaxLimW {owner:g} % (the site owner's)")
        limit = dispatch.charge_limit_a
        offered = self._offered_a
        in_effect = self._applied.get(LIMIT) == (dispatch.profile_id, limit)
        if limit is not None and in_effect and offered is not None and offered < limit:
            capped.append(f"charge limit {offered:g} A (the site owner's)")
        return capped

    def _owner_percent(self, mode: Mode) -> float | None:
        if self._sep2 is None:
            return None
        return next((f.value for f in self._sep2.site.functions if f.mode is mode), None)

    async def _read(self, evse_id: int, profile: dict[str, Any]) -> list[Read]:
        """Each period's dispatch and its span in force (monotonic), those not over yet;
        DispatchRefused unless the gate has authorized a vehicle on this EVSE (and only then
        is anything read)."""
        if evse_id != EVSE_ID:
            raise DispatchRefused("UnknownEvse", f"this station has EVSE {EVSE_ID} only")
        gate, sep2 = self._gate, self._sep2
        bound = gate.bound
        if sep2 is None or bound is None or not gate.authorized:
            snapshot = gate.snapshot()
            why = "; ".join(snapshot.get("reasons") or []) or "no vehicle"
            raise DispatchRefused("NotAuthorized", f"no J3072-authorized vehicle "
                                  f"({snapshot['state']}: {why}); the CSMS cannot authorize "
                                  "discharge")  # fmt: skip
        await self._forget_other_session(bound.lfdi)
        base_w = self._base_w() or sep2.site.config.max_w
        site = sep2.site.config
        dispatches = read_schedule(profile, base_w, site.v_ref_v, self._rating_a,
                                   self._upstream.transaction_id)  # fmt: skip
        wall, mono = self._wall(), self._mono()
        if dispatches[0].window.dated and not self._clock_synced():
            raise DispatchRefused("ClockNotSynced", "the clock has not been synchronized "
                                  "since boot: its validFrom, validTo or startSchedule "
                                  "cannot be placed in time")  # fmt: skip
        tx_mono = self._upstream.tx_started_s  # the transaction's start, on the wall clock now
        tx_wall = wall - (mono - tx_mono) if tx_mono is not None else None
        periods: list[Read] = []
        for dispatch in dispatches:
            start, end = dispatch.window.span(wall, tx_wall)
            if end is not None and (end <= wall or end <= start):
                continue  # over already (or cut off by validTo before it starts)
            periods.append((dispatch, mono + start - wall,
                            (mono + end - wall) if end is not None else None))  # fmt: skip
        if not periods:
            raise DispatchRefused("Expired", "its validTo or the end of its schedule's "
                                  "duration has passed")  # fmt: skip
        for dispatch, start_s, _ in periods:
            self._check_setpoint(periods, dispatch, start_s, base_w)
        return periods

    def _check_setpoint(self, periods: list[Read], dispatch: Dispatch, start_s: float,
                        base_w: float) -> None:  # fmt: skip
        """A discharge setpoint above the discharge limit that will be in force with it (the
        gate's grant, the site owner's opModMaxLimW, the CSMS's that will prevail once this
        profile replaces its id) is refused: the vehicle would follow it and then be revoked
        for exceeding the limit. ``follow`` clamps one that a later change puts above."""
        if dispatch.fixed_w_pct is None or dispatch.fixed_w_pct <= 0:
            return
        held = dict(self._held)
        self._hold(periods, held, self._received + 1)
        at_s = max(start_s, self._mono())
        chosen = in_effect(held.values(), at_s)
        cap = chosen.get(Mode.MAX_LIM_W)
        cap_pct = cap.dispatch.max_lim_w_pct if cap is not None else None
        ceiling = self._ceiling_w(cap_pct, base_w)
        wanted_w = dispatch.fixed_w_pct * base_w / 100
        if ceiling is not None and wanted_w > ceiling:
            raise DispatchRefused("OutOfRange", f"a discharge setpoint of {wanted_w:g} W is "
                                  f"above the discharge limit in effect, {ceiling:g} W "
                                  "(approval list, site owner, setMaxW)")  # fmt: skip

    def _ceiling_w(self, csms_pct: float | None, base_w: float) -> float | None:
        """The most the vehicle may be asked to discharge: the lowest of the gate's grant,
        the site owner's opModMaxLimW and the CSMS's (``csms_pct``)."""
        ceilings = [self._gate.granted_limit_w()]
        for percent in (csms_pct, self._owner_percent(Mode.MAX_LIM_W)):
            if percent is not None:
                ceilings.append(int(percent * base_w / 100))
        return min((c for c in ceilings if c is not None), default=None)

    def _base_w(self) -> float | None:
        """The bound vehicle's setMaxW (the site's when it gave none): what percentages of
        its controls are of."""
        bound, sep2 = self._gate.bound, self._sep2
        if sep2 is None or bound is None:
            return None
        record = sep2.store.get(bound.lfdi)
        settings = record.der_settings if record is not None else None
        return watts(settings.set_max_w) if settings is not None else sep2.site.config.max_w

    async def clear_charging_profile(self, profile_id: int | None) -> str:
        """The profile (every profile: None) withdrawn: what it set goes back to the site
        owner's, or to the profile that prevails for it without it. A charging limit is the
        charger's, not the vehicle's: it goes whether or not a vehicle is still bound."""
        cleared = sorted({i for i, _ in self._held if profile_id in (None, i)})
        for key in [k for k in self._held if k[0] in cleared]:
            del self._held[key]
        await self.follow()
        log_event(logger, "ocpp.dispatch_cleared", profile=profile_id,
                  cleared=",".join(map(str, cleared)) or "none")  # fmt: skip
        return "Accepted" if cleared else "Unknown"

    async def session_ended(self) -> None:
        """The transaction is over: the profiles go with it."""
        self._held.clear()
        await self.follow()
        self._new_session(None)

    def _new_session(self, lfdi: str | None) -> None:
        """The controls put in the last vehicle's session went with it (a charging limit
        does not: ``follow`` withdrew it)."""
        self._session, self._skipped = lfdi, False
        self._applied = {k: v for k, v in self._applied.items() if k == LIMIT}

    async def follow(self) -> None:
        """Put in effect what the prevailing profiles set, withdraw what none sets any
        longer, and wake again when the next profile starts or ends.

        One at a time (``_following``): a follow awaits the charger taking a limit, and one
        started meanwhile (a profile arrived, the vehicle left, a profile came due) chooses
        only once the first is done, from the profiles held then, so the last choice is the
        one in effect. It never raises: a failure is logged once and tried again."""
        async with self._following:
            try:
                await self._follow_held()
            except Exception as err:  # the charger's, the site's: whoever called goes on
                self._follow_failed(err)
            else:
                self._arm(next_change_s(self._held.values(), self._mono()), self._mono())

    async def _follow_held(self) -> None:
        now = self._mono()
        for (i, n), held in list(self._held.items()):
            if held.end_s is not None and held.end_s <= now:
                del self._held[i, n]
                log_event(logger, "ocpp.dispatch_ended", profile=i, start_period_s=n)
        chosen = in_effect(self._held.values(), now)
        wanted = self._effective(chosen)
        for key in [*wanted, *(k for k in self._applied if k not in wanted)]:
            if wanted.get(key) != self._applied.get(key):
                value = wanted[key][1] if key in wanted else None
                if not await self._put(key, chosen[key].dispatch if key in chosen else None,
                                       value):  # fmt: skip
                    self._skipped = True  # its vehicle is away: put again when it is back
                    continue
                if key in wanted:  # recorded as it goes: a failure leaves the rest to redo
                    self._applied[key] = wanted[key]
                else:
                    self._applied.pop(key, None)

    def _effective(self, chosen: dict[Key, Held]) -> dict[Key, tuple[int, float]]:
        """What each prevailing profile's value puts in effect: a discharge cap no higher
        than the site owner's, a discharge setpoint no higher than the cap in effect (the
        gate's grant, the owner's, the CSMS's: docs/ocpp.md "Dispatch"), so whatever changed
        since it arrived, the vehicle is never dispatched above what it is held to."""
        wanted = {k: (h.dispatch.profile_id, values(h.dispatch)[k]) for k, h in chosen.items()}
        if Mode.MAX_LIM_W in wanted:
            profile_id, percent = wanted[Mode.MAX_LIM_W]
            owner = self._owner_percent(Mode.MAX_LIM_W)
            wanted[Mode.MAX_LIM_W] = (
                profile_id,
                min(percent, owner) if owner is not None else percent,
            )
        base_w = self._base_w()
        if Mode.FIXED_W in wanted and wanted[Mode.FIXED_W][1] > 0 and base_w:
            profile_id, percent = wanted[Mode.FIXED_W]
            cap = wanted.get(Mode.MAX_LIM_W)
            ceiling = self._ceiling_w(cap[1] if cap is not None else None, base_w)
            if ceiling is not None and percent * base_w / 100 > ceiling:
                wanted[Mode.FIXED_W] = (profile_id, round(ceiling / base_w * 100, 2))
        return wanted

    def _follow_failed(self, err: Exception) -> None:
        """Logged once per kind; the whole choice is tried again in ``RETRY_S`` (or when the
        next profile starts or ends, if sooner)."""
        kind = type(err).__name__
        if kind not in self._failed:
            self._failed.add(kind)
            log_event(logger, "ocpp.dispatch_follow_failed", logging.ERROR, error=kind,
                      reason=str(err), retry_s=RETRY_S)  # fmt: skip
        now = self._mono()
        due = next_change_s(self._held.values(), now)
        self._arm(min(due, now + RETRY_S) if due is not None else now + RETRY_S, now)

    async def _put(self, key: Key, dispatch: Dispatch | None, value: float | None) -> bool:
        """``key`` as ``dispatch`` sets it, at ``value`` (None: back to the site owner's);
        False if it could not be (the vehicle is not bound)."""
        if key == LIMIT:
            amps = dispatch.charge_limit_a if dispatch is not None else None
            current = await self._set_limit(amps)
            offered = current.get("limit_a") if isinstance(current, dict) else None
            self._offered_a = float(offered) if isinstance(offered, int | float) else None
            shown = f"{offered:g}" if self._offered_a is not None else f"{amps}"
            self._record(f"charge limit {shown} A", dispatch.set_by if dispatch else
                         "site owner", None)  # fmt: skip
            return True
        bound, sep2 = self._gate.bound, self._sep2
        if sep2 is None or bound is None or bound.lfdi != self._session:
            return False  # its vehicle is away: its session's controls went with it
        assert isinstance(key, Mode)
        if dispatch is None or value is None:
            issued = sep2.restore(bound.lfdi, key)
            what = describe(issued.function) if issued else f"{key.value} withdrawn"
            self._record(what, issued.set_by if issued else "site owner (config)",
                         issued.mrid if issued else None)  # fmt: skip
            return True
        function = SiteFunction(key, value=value)
        issued = sep2.dispatch(bound.lfdi, function, dispatch.set_by)
        self._record(describe(function), dispatch.set_by, issued.mrid)
        asked = values(dispatch)[key]
        if value != asked:
            self._upstream.limited(f"charging profile {dispatch.profile_id}",
                                   f"{key.value} {asked:g} % held to {value:g} %: the "
                                   "discharge limit in effect is lower")  # fmt: skip
        return True

    def observe(self) -> None:
        """After each turn of the loop: the session's vehicle bound again (its link lost and
        back, the same plug-in) gets what was not put while it was away."""
        bound = self._gate.bound
        if self._skipped and bound is not None and bound.lfdi == self._session:
            self._skipped = False
            self._soon()

    def _soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.follow())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def owner_changed(self) -> None:
        """The site owner changed a function at run time (it superseded every session's):
        the CSMS's controls are put again over it, each held to the new limits."""
        for key in (Mode.MAX_LIM_W, Mode.FIXED_W):
            self._applied.pop(key, None)
        self._soon()

    def _arm(self, at_s: float | None, now_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at_s is None:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(at_s - now_s, 0.0), self._due)

    def _due(self) -> None:
        self._timer = None
        self._soon()

    def variable(self, component: str, variable: str) -> str | None:
        config = self._upstream.config
        known = {
            ("OCPPCommCtrlr", "HeartbeatInterval"): f"{self._upstream.heartbeat_s:g}",
            ("DeviceDataCtrlr", "ItemsPerMessage"): str(ITEMS_PER_MESSAGE),
            ("DeviceDataCtrlr", "BytesPerMessage"): str(config.max_message_bytes),
            ("SecurityCtrlr", "SecurityProfile"): str(config.security_profile),
            ("SecurityCtrlr", "Identity"): config.station_id,
            ("J3072Gate", "DischargeAuthorization"): str(self._gate.snapshot()["state"]),
        }
        return known.get((component, variable))

    def _record(self, function: str, set_by: str, mrid: str | None) -> None:
        self._recorder.control(function, set_by)
        if mrid is not None:
            self._upstream.control(mrid, function, set_by)

    async def _forget_other_session(self, lfdi: str) -> None:
        """A dispatch lives with the session it was for: a new vehicle starts from the site's
        (and a charging limit the last one's profile set is withdrawn)."""
        if self._session != lfdi:
            self._held.clear()
            await self.follow()
            self._new_session(lfdi)
