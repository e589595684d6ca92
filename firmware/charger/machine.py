"""The J1772 charger state machine: states, events and guarded transitions, nothing else.

Declared with python-statemachine; a missing row is an error (``TransitionNotAllowed``), so
every event is answered explicitly in every state. Guards read the controller's context and
have no side effects; the controller (``firmware.charger.controller``) owns timers and faults
and turns the state into outputs. The diagram in docs/charger-machine.md is generated from
this class and a test fails when it drifts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from statemachine import State, StateMachine


def _each_to(sources: tuple[State, ...], target: State | None) -> Any:
    """One transition from each source to ``target`` (None: each to itself)."""
    rows = [s.to.itself() if target is None else s.to(target) for s in sources]
    combined = rows[0]
    for row in rows[1:]:
        combined = combined | row
    return combined


AUTO = "auto"  # what an eventless move was "on"


class ChargerContext(Protocol):
    """What the guards may read. Implemented by the controller."""

    def may_close(self) -> bool: ...
    def ventilation_allowed(self) -> bool: ...
    def fault_hold_elapsed(self) -> bool: ...
    def fault_clear_to_idle(self) -> bool: ...
    def fault_clear_to_connected(self) -> bool: ...
    def pwm_withdrawn_too_long(self) -> bool: ...
    def weld_recheck_done(self) -> bool: ...
    def requests_c(self) -> bool: ...
    def requests_d(self) -> bool: ...


class ChargerMachine(StateMachine):
    idle = State("idle (A)", initial=True)
    connected = State("connected (B1/B2)")
    charging = State("charging (C2)")
    ventilating = State("ventilation charging (D2)")
    finishing = State("finishing")
    fault = State("fault (signalling F)")
    fault_latched = State("fault latched")
    inoperative = State("inoperative")

    _alive = (idle, connected, charging, ventilating, finishing)
    _faulted = (fault, fault_latched)

    pilot_a = (
        idle.to.itself()
        | connected.to(idle)
        | charging.to(idle)
        | ventilating.to(idle)
        | finishing.to(idle)
        | fault.to.itself()
        | fault_latched.to(idle, cond="fault_clear_to_idle")
        | fault_latched.to.itself()
        | inoperative.to.itself()
    )
    pilot_b = (
        idle.to(connected)
        | connected.to.itself()
        | charging.to(finishing)
        | ventilating.to(finishing)
        | finishing.to.itself()
        | fault.to.itself()
        | fault_latched.to(connected, cond="fault_clear_to_connected")
        | fault_latched.to.itself()
        | inoperative.to.itself()
    )
    pilot_c = (
        idle.to(charging, cond="may_close")
        | idle.to(connected)
        | connected.to(charging, cond="may_close")
        | connected.to.itself()
        | charging.to.itself()
        | ventilating.to(charging)
        | finishing.to.itself()
        | _each_to(_faulted, None)
        | inoperative.to.itself()
    )
    pilot_d = (
        idle.to(fault, unless="ventilation_allowed")
        | idle.to(ventilating, cond="may_close")
        | idle.to(connected)
        | connected.to(fault, unless="ventilation_allowed")
        | connected.to(ventilating, cond="may_close")
        | connected.to.itself()
        | charging.to(fault, unless="ventilation_allowed")
        | charging.to(ventilating)
        | ventilating.to.itself()
        | finishing.to(fault, unless="ventilation_allowed")
        | finishing.to.itself()
        | _each_to(_faulted, None)
        | inoperative.to.itself()
    )
    pilot_error = _each_to(_alive, fault) | _each_to(_faulted, None) | inoperative.to.itself()
    rcd_trip = _each_to(_alive, fault) | _each_to(_faulted, None) | inoperative.to.itself()
    # the J3072 gate saw discharge it had not authorized (docs/v2g-ac-profile.md "The session",
    # step 8)
    discharge_fault = _each_to(_alive, fault) | _each_to(_faulted, None) | inoperative.to.itself()
    contactor_fault = _each_to((*_alive, *_faulted), inoperative) | inoperative.to.itself()
    proximity_lost = (
        charging.to(finishing)
        | ventilating.to(finishing)
        | _each_to((idle, connected, finishing, fault, fault_latched, inoperative), None)
    )
    close_refused = (
        charging.to(connected)
        | ventilating.to(connected)
        | idle.to.itself()
        | connected.to.itself()
        | finishing.to.itself()
        | _each_to(_faulted, None)
        | inoperative.to.itself()
    )
    # Time passed: a chance for the eventless moves below to look at their guards again, and
    # the one timed move that would close a loop if it were eventless.
    tick = finishing.to(connected, cond="weld_recheck_done") | _each_to(
        (*_alive, *_faulted, inoperative), None
    )

    # Eventless: taken after any event whenever the guard holds, until none does, so one
    # event settles the machine (a fault held long enough and already cleared goes
    # fault -> fault latched -> connected in one call). They form no cycle (a test checks),
    # so settling always ends: finishing -> connected waits for a tick.
    connected.to(charging, cond=["requests_c", "may_close"])
    connected.to(ventilating, cond=["requests_d", "may_close"])
    charging.to(finishing, cond="pwm_withdrawn_too_long")
    ventilating.to(finishing, cond="pwm_withdrawn_too_long")
    fault.to(fault_latched, cond="fault_hold_elapsed")
    fault_latched.to(idle, cond="fault_clear_to_idle")
    fault_latched.to(connected, cond="fault_clear_to_connected")

    def __init__(self, ctx: ChargerContext, on_change: Callable[[str, str, str], None]) -> None:
        self.ctx = ctx
        self._on_change = on_change
        super().__init__()

    def after_transition(self, event: Any, source: State, target: State) -> None:
        """The library's hook after each transition: a change of state is told to the
        controller as (from, to, on), an eventless move on ``auto``."""
        if source is not target:
            self._on_change(source.id, target.id, str(event) if event else AUTO)

    # Guards: thin, side-effect free, delegated to the context.
    def may_close(self) -> bool:
        return self.ctx.may_close()

    def ventilation_allowed(self) -> bool:
        return self.ctx.ventilation_allowed()

    def fault_hold_elapsed(self) -> bool:
        return self.ctx.fault_hold_elapsed()

    def fault_clear_to_idle(self) -> bool:
        return self.ctx.fault_clear_to_idle()

    def fault_clear_to_connected(self) -> bool:
        return self.ctx.fault_clear_to_connected()

    def pwm_withdrawn_too_long(self) -> bool:
        return self.ctx.pwm_withdrawn_too_long()

    def weld_recheck_done(self) -> bool:
        return self.ctx.weld_recheck_done()

    def requests_c(self) -> bool:
        return self.ctx.requests_c()

    def requests_d(self) -> bool:
        return self.ctx.requests_d()
