"""The CSMS's dispatch relayed to the authorized vehicle (V2G-AC profile §3.4.5.2: the EVSE
relays a DER managing entity's control to the connected and approved PEV).

A charging profile the J3072 gate's vehicle can follow becomes a superseding DERControl in
that vehicle's session only (``Sep2Service.dispatch``: opModFixedW for a setpoint,
opModMaxLimW for a discharge cap), the same path the site owner's ``control`` takes, with
who set it recorded in the journal and told to the CSMS; the vehicle's Responses to it are
reported back (``Upstream``) and the gate holds the vehicle to it with the meter. A charging
limit lowers the pilot's offer, as ``evse-gatekeeper limit`` does.

Default deny: a profile for a vehicle the gate has not authorized is refused with the gate's
reasons, and nothing here can make the gate authorize. ClearChargingProfile returns the
session to the site's own functions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from firmware.logs import log_event
from firmware.ocpp.dispatch import Dispatch, DispatchRefused, read_profile
from firmware.ocpp.limits import ITEMS_PER_MESSAGE
from firmware.ocpp.messages import EVSE_ID
from firmware.ocpp.upstream import Upstream
from firmware.sep2.functions import Mode, SiteFunction, describe
from firmware.sep2.site import watts

if TYPE_CHECKING:
    from firmware.j3072.gate import Gate
    from firmware.journal.recorder import Recorder
    from firmware.sep2.service import Sep2Service

logger = logging.getLogger(__name__)
Verdict = tuple[str, str | None, str | None]  # status, reasonCode, additionalInfo


class DispatchRelay:
    def __init__(self, gate: Gate, sep2: Sep2Service | None, recorder: Recorder,
                 upstream: Upstream, set_limit: Callable[[float | None], Awaitable[Any]],
                 rating_a: float) -> None:  # fmt: skip
        """``set_limit``: the CSMS's charging limit, None to withdraw it (the daemon offers the
        lower of it and the site owner's)."""
        self._gate, self._sep2, self._recorder = gate, sep2, recorder
        self._upstream, self._set_limit, self._rating_a = upstream, set_limit, rating_a
        self._active: dict[Mode | str, int] = {}  # what a profile set, in this session
        self._session: str | None = None  # the vehicle those were set for

    async def set_charging_profile(self, evse_id: int, profile: dict[str, Any]) -> Verdict:
        try:
            dispatch, lfdi = await self._read(evse_id, profile)
        except DispatchRefused as err:
            log_event(logger, "ocpp.dispatch_refused", logging.WARNING,
                      profile=profile.get("id"), code=err.code, reason=str(err))  # fmt: skip
            self._upstream.refused(f"charging profile {profile.get('id')}", str(err))
            return "Rejected", err.code, str(err)
        await self._withdraw(lfdi, dispatch.profile_id, keep=_keys(dispatch))
        capped = self._apply_controls(lfdi, dispatch)
        if dispatch.charge_limit_a is not None:
            current = await self._set_limit(dispatch.charge_limit_a)
            self._record(f"charge limit {dispatch.charge_limit_a:g} A", dispatch.set_by, None)
            self._active["limit"] = dispatch.profile_id
            offered = float(current["limit_a"]) if isinstance(current, dict) else None
            if offered is not None and offered < dispatch.charge_limit_a:
                capped.append(f"charge limit {offered:g} A (the site owner's)")
        log_event(logger, "ocpp.dispatch_accepted", profile=dispatch.profile_id, lfdi=lfdi,
                  fixed_w_pct=dispatch.fixed_w_pct, max_lim_w_pct=dispatch.max_lim_w_pct,
                  charge_limit_a=dispatch.charge_limit_a)  # fmt: skip
        if capped:
            return "Accepted", "LimitedBySiteOwner", "in effect: " + "; ".join(capped)
        return "Accepted", None, None

    def _apply_controls(self, lfdi: str, dispatch: Dispatch) -> list[str]:
        """The 2030.5 controls of ``dispatch`` for the vehicle; what the site owner's lower
        opModMaxLimW held down (docs/ocpp.md "Dispatch": the CSMS lowers, never raises)."""
        assert self._sep2 is not None
        capped = []
        owner = self._owner_percent(Mode.MAX_LIM_W)
        for mode, percent in ((Mode.FIXED_W, dispatch.fixed_w_pct),
                              (Mode.MAX_LIM_W, dispatch.max_lim_w_pct)):  # fmt: skip
            if percent is None:
                continue
            if mode is Mode.MAX_LIM_W and owner is not None and owner < percent:
                percent = owner
                capped.append(f"opModMaxLimW {owner:g} % (the site owner's)")
            function = SiteFunction(mode, value=percent)
            issued = self._sep2.dispatch(lfdi, function, dispatch.set_by)
            self._record(describe(function), dispatch.set_by, issued.mrid)
            self._active[mode] = dispatch.profile_id
        return capped

    def _owner_percent(self, mode: Mode) -> float | None:
        assert self._sep2 is not None
        return next((f.value for f in self._sep2.site.functions if f.mode is mode), None)

    async def _read(self, evse_id: int, profile: dict[str, Any]) -> tuple[Dispatch, str]:
        """The dispatch and the vehicle it is for; DispatchRefused unless the gate has
        authorized a vehicle on this EVSE (and only then is anything read)."""
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
        record = sep2.store.get(bound.lfdi)
        settings = record.der_settings if record is not None else None
        base_w = watts(settings.set_max_w) if settings is not None else sep2.site.config.max_w
        site = sep2.site.config
        dispatch = read_profile(profile, base_w, site.v_ref_v, self._rating_a,
                                self._upstream.transaction_id)  # fmt: skip
        self._check_setpoint(dispatch, base_w)
        return dispatch, bound.lfdi

    def _check_setpoint(self, dispatch: Dispatch, base_w: float) -> None:
        """A discharge setpoint above the gate's limit (the approval list's cap, setMaxW, the
        session's opModMaxLimW, this profile's own dischargeLimit) is refused: the vehicle
        would follow it and then be revoked for exceeding the limit."""
        if dispatch.fixed_w_pct is None or dispatch.fixed_w_pct <= 0:
            return
        ceilings = [self._gate.dispatch_ceiling_w()]
        for percent in (dispatch.max_lim_w_pct, self._owner_percent(Mode.MAX_LIM_W)):
            if percent is not None:
                ceilings.append(int(percent * base_w / 100))
        ceiling = min((c for c in ceilings if c is not None), default=None)
        wanted_w = dispatch.fixed_w_pct * base_w / 100
        if ceiling is not None and wanted_w > ceiling:
            raise DispatchRefused("OutOfRange", f"a discharge setpoint of {wanted_w:g} W is "
                                  f"above the discharge limit in effect, {ceiling:g} W "
                                  "(approval list, site owner, setMaxW)")  # fmt: skip

    async def clear_charging_profile(self, profile_id: int | None) -> str:
        """The controls this profile (every profile: None) set go back to the site's. A
        charging limit is the charger's, not the vehicle's: it goes back to the site owner's
        whether or not a vehicle is still bound."""
        bound = self._gate.bound
        cleared = await self._withdraw(bound.lfdi if bound is not None else None, profile_id)
        names = ",".join(k.value if isinstance(k, Mode) else k for k in cleared)
        log_event(logger, "ocpp.dispatch_cleared", profile=profile_id, cleared=names or "none")
        return "Accepted" if cleared else "Unknown"

    async def _withdraw(self, lfdi: str | None, profile_id: int | None,
                        keep: frozenset[Mode | str] = frozenset()) -> list[Mode | str]:  # fmt: skip
        """What ``profile_id`` (None: every profile) set, except ``keep``, back to the site
        owner's: the vehicle's controls while it is the one they were set for, the charging
        limit always."""
        cleared = [k for k, v in self._active.items()
                   if profile_id in (None, v) and k not in keep]  # fmt: skip
        for key in cleared:
            del self._active[key]
            if key == "limit":
                await self._restore_limit()
            elif isinstance(key, Mode) and self._sep2 is not None and lfdi == self._session:
                assert lfdi is not None
                issued = self._sep2.restore(lfdi, key)
                what = describe(issued.function) if issued else f"{key.value} withdrawn"
                self._record(what, issued.set_by if issued else "site owner (config)",
                             issued.mrid if issued else None)  # fmt: skip
        return cleared

    async def session_ended(self) -> None:
        """The transaction is over: a charging limit a profile set goes with it."""
        await self._withdraw(None, None)
        self._session = None

    async def _restore_limit(self) -> None:
        current = await self._set_limit(None)
        offered = current.get("limit_a") if isinstance(current, dict) else None
        shown = f"{offered:g}" if isinstance(offered, int | float) else f"{self._rating_a:g}"
        self._record(f"charge limit {shown} A", "site owner", None)

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
            await self._withdraw(None, None)
            self._session = lfdi


def _keys(dispatch: Dispatch) -> frozenset[Mode | str]:
    """What ``dispatch`` sets (re-sent with the same id, the rest of that id goes)."""
    keys: set[Mode | str] = set()
    if dispatch.fixed_w_pct is not None:
        keys.add(Mode.FIXED_W)
    if dispatch.max_lim_w_pct is not None:
        keys.add(Mode.MAX_LIM_W)
    if dispatch.charge_limit_a is not None:
        keys.add("limit")
    return frozenset(keys)
