"""The CSMS's dispatch relayed to the vehicle, on the real J3072 gate and 2030.5 site
resources: it never exceeds the site owner's or the gate's limits, and a charging limit it set
never outlives what it was set for."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from firmware.daemon.running import CurrentLimits
from firmware.journal.outbox import Outbox
from firmware.journal.recorder import Recorder
from firmware.ocpp.config import OcppConfig
from firmware.ocpp.relay import DispatchRelay
from firmware.ocpp.upstream import Upstream
from firmware.sep2.functions import Mode, SiteFunction
from firmware.sep2.site import IssuedControl
from hil.pev.profiles import PROFILES
from tests.unit.test_j3072_gate import LFDI, SITE, World

RATING_A = 32.0


class Sep2(World):
    """The gate's world with the two calls the relay makes of the 2030.5 service."""

    def dispatch(self, lfdi: str, function: SiteFunction, set_by: str) -> IssuedControl:
        record = self.store.get(lfdi)
        assert record is not None
        return self.sep2.site.supersede(record, function, set_by)

    def restore(self, lfdi: str, mode: Mode) -> IssuedControl | None:
        record = self.store.get(lfdi)
        assert record is not None
        return self.sep2.site.restore(record, mode)


class Charger:
    """The daemon's current limits (``Running.set_csms_limit``) without the charger."""

    def __init__(self, owner_a: float | None = None) -> None:
        self.limits = CurrentLimits(owner_a=owner_a)
        self.offered: list[float] = []

    async def set_csms_limit(self, amps: float | None) -> dict[str, Any]:
        self.limits.csms_a = amps
        self.offered.append(self.limits.offered_a(RATING_A))
        return {"limit_a": self.offered[-1]}


def relay_for(world: Sep2, charger: Charger) -> DispatchRelay:
    world.sep2.dispatch = world.dispatch  # type: ignore[attr-defined]
    world.sep2.restore = world.restore  # type: ignore[attr-defined]
    upstream = Upstream(OcppConfig(url="wss://csms/ocpp"), Outbox(None, 100), 240)
    return DispatchRelay(world.gate, world.sep2, Recorder(None), upstream,  # type: ignore[arg-type]
                         charger.set_csms_limit, RATING_A)  # fmt: skip


def authorized(site: Any = SITE) -> Sep2:
    world = Sep2(site)
    world.gate.plugged(True)
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.heartbeat(LFDI)
    world.gate.poll()
    assert world.gate.authorized
    return world


def profile(profile_id: int = 7, unit: str = "W", **period: Any) -> dict[str, Any]:
    return {"id": profile_id, "stack_level": 0, "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [{"id": 1, "charging_rate_unit": unit,
                                   "charging_schedule_period": [{"start_period": 0,
                                                                 **period}]}]}  # fmt: skip


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def in_effect(world: Sep2, mode: Mode) -> float | None:
    record = world.store.get(LFDI)
    assert record is not None and record.program is not None
    control = record.program.of(mode)
    return control.function.value if control is not None else None


def test_a_csms_discharge_cap_cannot_raise_the_site_owners() -> None:
    owner = replace(SITE, functions=(SiteFunction(Mode.MAX_LIM_W, value=40.0),))
    world = authorized(owner)
    relay = relay_for(world, Charger())
    status, code, text = run(relay.set_charging_profile(1, profile(discharge_limit=-1e6)))
    assert (status, code) == ("Accepted", "LimitedBySiteOwner") and "40" in str(text)
    assert in_effect(world, Mode.MAX_LIM_W) == 40.0, "the owner's 40 %, not the CSMS's 100 %"
    status, code, _ = run(relay.set_charging_profile(1, profile(discharge_limit=-100.0)))
    assert status == "Accepted" and code is None
    assert in_effect(world, Mode.MAX_LIM_W) is not None and in_effect(world, Mode.MAX_LIM_W) < 40


def test_a_setpoint_above_the_gates_limit_is_refused_with_a_reason() -> None:
    world = authorized()
    ceiling = world.gate.dispatch_ceiling_w()
    assert ceiling == 5000, "the approval list's cap for this ISM"
    relay = relay_for(world, Charger())
    status, code, text = run(relay.set_charging_profile(1, profile(setpoint=-6000.0)))
    assert (status, code) == ("Rejected", "OutOfRange") and "5000 W" in str(text)
    assert in_effect(world, Mode.FIXED_W) is None, "nothing was dispatched"
    assert run(relay.set_charging_profile(1, profile(setpoint=-4000.0)))[0] == "Accepted"
    status, code, _ = run(relay.set_charging_profile(
        1, profile(2, setpoint=-3000.0, discharge_limit=-2000.0)))  # fmt: skip
    assert (status, code) == ("Rejected", "OutOfRange"), "above its own dischargeLimit"


def test_a_charging_limit_is_the_lower_of_the_owners_and_the_csmss_and_clears_to_the_owners(
) -> None:  # fmt: skip
    world = authorized()
    charger = Charger(owner_a=16.0)
    relay = relay_for(world, charger)
    status, code, _ = run(relay.set_charging_profile(1, profile(unit="A", limit=24.0)))
    assert (status, code) == ("Accepted", "LimitedBySiteOwner")
    assert charger.offered[-1] == 16.0 and charger.limits.set_by() != "csms"
    run(relay.set_charging_profile(1, profile(unit="A", limit=10.0)))
    assert charger.offered[-1] == 10.0 and charger.limits.set_by() == "csms"
    assert run(relay.clear_charging_profile(None)) == "Accepted"
    assert charger.offered[-1] == 16.0, "back to the owner's 16 A, not the 32 A rating"


def test_a_charging_limit_does_not_outlive_a_vehicle_the_gate_unbound() -> None:
    world = authorized()
    charger = Charger()
    relay = relay_for(world, charger)
    run(relay.set_charging_profile(1, profile(unit="A", limit=0.0)))  # a pause
    assert charger.offered[-1] == 0.0
    world.gate.bound = None  # the PLC link lost: the gate unbinds, the vehicle still plugged
    assert run(relay.clear_charging_profile(None)) == "Accepted"
    assert charger.offered[-1] == RATING_A and charger.limits.csms_a is None
    run(relay.session_ended())
    assert charger.offered[-1] == RATING_A


def test_a_new_vehicle_does_not_inherit_the_last_ones_charging_limit() -> None:
    world = authorized()
    charger = Charger()
    relay = relay_for(world, charger)
    run(relay.set_charging_profile(1, profile(unit="A", limit=0.0)))
    other = "B" * 40
    world.exchange(PROFILES["certified-4q"], other)
    assert world.gate.bound is not None
    world.gate.bound.lfdi = other  # the gate's vehicle is another one now
    run(relay.set_charging_profile(1, profile(3, setpoint=-100.0)))
    assert charger.offered[-1] == RATING_A, "the last vehicle's pause went with it"


def test_a_profile_re_sent_with_only_a_limit_withdraws_its_setpoint() -> None:
    world = authorized()
    relay = relay_for(world, Charger())
    run(relay.set_charging_profile(1, profile(setpoint=-3000.0)))
    assert in_effect(world, Mode.FIXED_W) is not None
    run(relay.set_charging_profile(1, profile(unit="A", limit=16.0)))
    assert in_effect(world, Mode.FIXED_W) is None, "the same id replaces all it set"
