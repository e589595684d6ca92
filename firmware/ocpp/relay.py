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
        self._gate, self._sep2, self._recorder = gate, sep2, recorder
        self._upstream, self._set_limit, self._rating_a = upstream, set_limit, rating_a
        self._active: dict[Mode | str, int] = {}  # what a profile set, in this session
        self._session: str | None = None  # the vehicle those were set for

    async def set_charging_profile(self, evse_id: int, profile: dict[str, Any]) -> Verdict:
        try:
            dispatch, lfdi = self._read(evse_id, profile)
        except DispatchRefused as err:
            log_event(logger, "ocpp.dispatch_refused", logging.WARNING,
                      profile=profile.get("id"), code=err.code, reason=str(err))  # fmt: skip
            self._upstream.refused(f"charging profile {profile.get('id')}", str(err))
            return "Rejected", err.code, str(err)
        assert self._sep2 is not None
        for mode, percent in ((Mode.FIXED_W, dispatch.fixed_w_pct),
                              (Mode.MAX_LIM_W, dispatch.max_lim_w_pct)):  # fmt: skip
            if percent is None:
                continue
            function = SiteFunction(mode, value=percent)
            issued = self._sep2.dispatch(lfdi, function, dispatch.set_by)
            self._record(describe(function), dispatch.set_by, issued.mrid)
            self._active[mode] = dispatch.profile_id
        if dispatch.charge_limit_a is not None:
            await self._set_limit(dispatch.charge_limit_a)
            self._record(f"charge limit {dispatch.charge_limit_a:g} A", dispatch.set_by, None)
            self._active["limit"] = dispatch.profile_id
        log_event(logger, "ocpp.dispatch_accepted", profile=dispatch.profile_id, lfdi=lfdi,
                  fixed_w_pct=dispatch.fixed_w_pct, max_lim_w_pct=dispatch.max_lim_w_pct,
                  charge_limit_a=dispatch.charge_limit_a)  # fmt: skip
        return "Accepted", None, None

    def _read(self, evse_id: int, profile: dict[str, Any]) -> tuple[Dispatch, str]:
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
        self._forget_other_session(bound.lfdi)
        record = sep2.store.get(bound.lfdi)
        settings = record.der_settings if record is not None else None
        base_w = watts(settings.set_max_w) if settings is not None else sep2.site.config.max_w
        site = sep2.site.config
        dispatch = read_profile(profile, base_w, site.v_ref_v, self._rating_a,
                                self._upstream.transaction_id)  # fmt: skip
        return dispatch, bound.lfdi

    async def clear_charging_profile(self, profile_id: int | None) -> str:
        """The controls this profile (every profile: None) set go back to the site's."""
        bound = self._gate.bound
        if bound is None or self._sep2 is None:
            self._active.clear()
            return "Unknown"
        self._forget_other_session(bound.lfdi)
        cleared = [k for k, v in self._active.items() if profile_id in (None, v)]
        for key in cleared:
            del self._active[key]
            if isinstance(key, Mode):
                issued = self._sep2.restore(bound.lfdi, key)
                what = describe(issued.function) if issued else f"{key.value} withdrawn"
                self._record(what, issued.set_by if issued else "site owner (config)",
                             issued.mrid if issued else None)  # fmt: skip
            else:
                await self._restore_limit()
        names = ",".join(k.value if isinstance(k, Mode) else k for k in cleared)
        log_event(logger, "ocpp.dispatch_cleared", profile=profile_id, cleared=names or "none")
        return "Accepted" if cleared else "Unknown"

    async def session_ended(self) -> None:
        """The transaction is over: a charging limit a profile set goes with it."""
        if self._active.pop("limit", None) is not None:
            await self._restore_limit()
        self._active.clear()
        self._session = None

    async def _restore_limit(self) -> None:
        await self._set_limit(None)
        self._record(f"charge limit {self._rating_a:g} A", "site owner (config)", None)

    def variable(self, component: str, variable: str) -> str | None:
        config = self._upstream.config
        known = {
            ("OCPPCommCtrlr", "HeartbeatInterval"): str(config.heartbeat_s),
            ("SecurityCtrlr", "SecurityProfile"): str(config.security_profile),
            ("SecurityCtrlr", "Identity"): config.station_id,
            ("J3072Gate", "DischargeAuthorization"): str(self._gate.snapshot()["state"]),
        }
        return known.get((component, variable))

    def _record(self, function: str, set_by: str, mrid: str | None) -> None:
        self._recorder.control(function, set_by)
        if mrid is not None:
            self._upstream.control(mrid, function, set_by)

    def _forget_other_session(self, lfdi: str) -> None:
        """A dispatch lives with the session it was for: a new vehicle starts from the site's."""
        if self._session != lfdi:
            self._session = lfdi
            self._active.clear()
