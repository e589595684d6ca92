"""One vehicle's authorization over time, with an injected clock: grant, heartbeat loss and
resumption, sleep/wake, the meter, later denials, the end of the session."""

from __future__ import annotations

from firmware.j3072.decision import Decision
from firmware.j3072.session import (
    HEARTBEAT_LOSS_NS,
    STOP_GRACE_NS,
    Energize,
    J3072Session,
    OpenMain,
    SessionNote,
)

S = 1_000_000_000
GRANT = Decision(True, (), 7200, "ISM-1")
DENY = Decision(False, ("ISM ISM-1 revoked on the approval list",), None, "ISM-1")


def energize(actions: list[object]) -> list[bool]:
    return [a.value for a in actions if isinstance(a, Energize)]


def granted(at: int = 0) -> J3072Session:
    session = J3072Session("AB" * 20, at)
    assert energize(session.on_decision(GRANT, at)) == [True]
    assert session.authorized and session.reasons == ()
    return session


def test_a_denial_never_authorizes_and_keeps_its_reasons() -> None:
    session = J3072Session("AB" * 20, 0)
    actions = session.on_decision(DENY, 0)
    assert energize(actions) == [] and not session.authorized
    assert any(
        isinstance(a, SessionNote) and "revoked on the approval list" in a.detail for a in actions
    )
    for t in range(1, 20):
        assert energize(session.on_heartbeat(0, t * S)) == []
    opened = session.on_meter(3000, None, 30 * S)
    assert opened == [OpenMain("discharge 3000 W while not authorized")]


def test_ten_seconds_without_heartbeats_revokes_and_three_good_ones_resume() -> None:
    session = granted()
    for t in range(1, 5):
        session.on_heartbeat(0, t * S)
    assert session.next_deadline_ns() == 4 * S + HEARTBEAT_LOSS_NS
    assert session.poll(4 * S + HEARTBEAT_LOSS_NS - 1) == []
    actions = session.poll(4 * S + HEARTBEAT_LOSS_NS)
    assert energize(actions) == [False] and session.reasons == ("10 heartbeats missed",)
    back = 20 * S
    assert energize(session.on_heartbeat(0, back)) == []
    assert energize(session.on_heartbeat(0, back + S)) == []
    assert energize(session.on_heartbeat(0, back + 2 * S)) == [True], "after 3 good ones"


def test_sleeping_revokes_and_waking_resumes_after_three_heartbeats() -> None:
    session = granted()
    assert energize(session.on_heartbeat(2, S)) == [False]
    assert session.reasons == ("the vehicle's inverter is sleeping",)
    assert energize(session.on_heartbeat(2, 2 * S)) == []
    assert energize(session.on_heartbeat(0, 3 * S)) == []
    assert energize(session.on_heartbeat(0, 4 * S)) == []
    assert energize(session.on_heartbeat(0, 5 * S)) == [True]


def test_discharge_over_the_limit_revokes_at_once_and_for_good() -> None:
    session = granted()
    assert session.on_meter(7000, 7200, S) == []
    actions = session.on_meter(7500, 7200, 2 * S)
    assert energize(actions) == [False] and "7500 W over the 7200 W in effect" in session.reasons[0]
    for t in range(3, 8):
        session.on_heartbeat(0, t * S)
    assert not session.authorized, "a violation is not forgiven by heartbeats"


def test_still_discharging_3_s_after_a_revocation_opens_main() -> None:
    session = granted()
    session.on_meter(9000, 7200, 10 * S)
    assert session.on_meter(9000, 7200, 10 * S + STOP_GRACE_NS - 1) == [], "the vehicle's 3 s"
    assert session.on_meter(9000, 7200, 10 * S + STOP_GRACE_NS) == [
        OpenMain("discharge 9000 W while not authorized")
    ]
    assert session.on_meter(20, 7200, 20 * S) == [], "below the noise floor nothing flows"


def test_a_later_denial_revokes_and_a_later_grant_authorizes_again_after_3_heartbeats() -> None:
    """After a revocation, a new grant alone does not re-authorize: 3 consecutive on-time
    heartbeats do (§4.8.1.1), whatever caused the revocation."""
    session = granted()
    assert energize(session.on_decision(DENY, 5 * S)) == [False]
    assert session.reasons == DENY.reasons
    assert energize(session.on_decision(GRANT, 6 * S)) == []
    assert energize(session.on_heartbeat(0, 7 * S)) == []
    assert energize(session.on_heartbeat(0, 8 * S)) == []
    assert energize(session.on_heartbeat(0, 9 * S)) == [True]


def test_the_end_of_the_session_revokes_and_nothing_reauthorizes() -> None:
    session = granted()
    assert energize(session.end("pilot left C/D", S)) == [False]
    assert session.reasons == ("pilot left C/D",)
    assert energize(session.on_decision(GRANT, 2 * S)) == []
    for t in range(3, 8):
        assert energize(session.on_heartbeat(0, t * S)) == []
    assert session.next_deadline_ns() is None


def test_an_unhealthy_meter_revokes_and_three_heartbeats_resume_once_it_is_healthy() -> None:
    session = granted()
    for t in range(1, 4):
        session.on_heartbeat(0, t * S)
    actions = session.on_meter_health("no good reading for 512 ms", 4 * S)
    assert energize(actions) == [False]
    assert session.reasons == ("the meter is unhealthy: no good reading for 512 ms",)
    assert energize(session.on_heartbeat(0, 5 * S)) == [], "the meter still cannot be trusted"
    assert energize(session.on_meter_health(None, 5 * S)) == [], "one heartbeat since"
    assert energize(session.on_heartbeat(0, 6 * S)) == []
    assert energize(session.on_heartbeat(0, 7 * S)) == [True], "the third since the revocation"


def test_a_grant_while_the_meter_is_unhealthy_waits_for_it_and_names_it() -> None:
    session = J3072Session("AB" * 20, 0)
    assert session.on_meter_health("exception: exception 2", 0) == []
    assert energize(session.on_decision(GRANT, 0)) == []
    assert not session.authorized
    assert session.reasons == ("the meter is unhealthy: exception: exception 2",)
    for t in range(1, 4):
        session.on_heartbeat(0, t * S)
    assert energize(session.on_meter_health(None, 3 * S + 1)) == [True]


def test_a_denied_session_keeps_its_reasons_whatever_the_meter() -> None:
    session = J3072Session("AB" * 20, 0)
    session.on_decision(DENY, 0)
    session.on_meter_health("no reading yet", S)
    assert session.reasons == DENY.reasons
