"""The OCPP station's pure parts: the [ocpp] section, the charging profile read as a dispatch,
the payloads (checked against the official schemas the ``ocpp`` package bundles, after the
package's own key conversion both ways), the outbox in the journal, and what the CSMS is told
of a session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ocpp.charge_point import camel_to_snake_case, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call, _validate_payload
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from firmware.config.reader import SectionReader
from firmware.j3072.decision import Decision
from firmware.journal.outbox import Outbox
from firmware.journal.store import Journal
from firmware.ocpp import messages as m
from firmware.ocpp.config import OcppConfig, read_ocpp
from firmware.ocpp.dispatch import MAX_PERIODS, DispatchRefused, read_profile, read_schedule
from firmware.ocpp.upstream import StationView, Upstream


def read(table: dict[str, Any]) -> tuple[OcppConfig, list[str]]:
    problems: list[str] = []
    return read_ocpp(SectionReader("ocpp", table, problems)), problems


def test_off_without_a_url_and_each_problem_named(tmp_path: Path) -> None:
    config, problems = read({})
    assert not config.enabled and problems == []
    short = tmp_path / "short"
    short.write_text("tooshort\n")
    _, problems = read({"url": "ws://csms/ocpp", "colour": 1})
    assert problems == ["ocpp.url: must be wss://host[:port][/path] (profiles 2 and 3 are TLS)",
                        "ocpp.colour: unknown key"]  # fmt: skip
    _, problems = read({"url": "wss://csms/ocpp", "password_file": str(short)})
    assert problems == ["ocpp.password_file: the password must be 16..40 characters"]
    _, problems = read({"url": "wss://csms/ocpp", "security_profile": 3, "version": "1.6"})
    assert problems == ["ocpp.version: must be one of 2.0.1, 2.1; got '1.6'",
                        "ocpp.cert_file: required by security_profile 3",
                        "ocpp.key_file: required by security_profile 3"]  # fmt: skip


def profile(**period: Any) -> dict[str, Any]:
    return {"id": 9, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [{
                "id": 1, "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, **period}]}]}  # fmt: skip


def test_a_discharge_setpoint_is_opmodfixedw_with_2030_5s_sign() -> None:
    dispatch = read_profile(profile(setpoint=-3600.0, operation_mode="CentralSetpoint"),
                            7200, 240, 32, None)  # fmt: skip
    assert dispatch.fixed_w_pct == 50.0 and dispatch.max_lim_w_pct is None
    charging = read_profile(profile(setpoint=1800.0), 7200, 240, 32, None)
    assert charging.fixed_w_pct == -25.0  # + in OCPP is into the vehicle
    cap = read_profile(profile(discharge_limit=-1440.0), 7200, 240, 32, None)
    assert cap.max_lim_w_pct == 20.0 and cap.set_by == "csms (charging profile 9)"
    limit = read_profile(profile(limit=3840.0), 7200, 240, 32, None)
    assert limit.charge_limit_a == 16.0
    assert read_profile(profile(limit=1000.0), 7200, 240, 32, None).charge_limit_a == 0.0
    assert read_profile(profile(limit=99000.0), 7200, 240, 32, None).charge_limit_a == 32.0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"period": {"setpoint": -9000.0}}, "OutOfRange"),
        ({"period": {"limit": -10.0}}, "OutOfRange"),
        ({"period": {"operation_mode": "LocalFrequency", "setpoint": -10.0}}, "UnsupportedMode"),
        ({"period": {}}, "NothingToFollow"),
        ({"charging_profile_purpose": "ChargingStationMaxProfile"}, "UnsupportedPurpose"),
        ({"transaction_id": "S7"}, "TxNotFound"),
    ],
)
def test_what_cannot_be_followed_is_refused_with_a_reason(change: dict[str, Any],
                                                          code: str) -> None:  # fmt: skip
    given = profile(**change.pop("period", {"setpoint": -10.0}))
    given.update(change)
    with pytest.raises(DispatchRefused) as info:
        read_profile(given, 7200, 240, 32, "S8")
    assert info.value.code == code and str(info.value)


def test_several_periods_are_read_each_with_its_window_and_out_of_order_ones_refused() -> None:
    given = profile(setpoint=-720.0)
    periods = given["charging_schedule"][0]["charging_schedule_period"]
    periods.append({"start_period": 60, "setpoint": -1440.0})
    first, second = read_schedule(given, 7200, 240, 32, None)
    assert (first.fixed_w_pct, first.window.offset_s, first.window.length_s) == (10.0, 0.0, 60.0)
    assert (second.fixed_w_pct, second.window.offset_s, second.window.length_s) == (
        20.0,
        60.0,
        None,
    )
    assert first.window.span(1000.0, None) == (1000.0, 1060.0)
    assert second.window.span(1000.0, None) == (1060.0, None)
    periods.append({"start_period": 30, "setpoint": -10.0})
    with pytest.raises(DispatchRefused, match="in order"):
        read_schedule(given, 7200, 240, 32, None)
    periods[:] = [{"start_period": n * 60, "setpoint": -10.0} for n in range(MAX_PERIODS + 1)]
    with pytest.raises(DispatchRefused, match=f"at most {MAX_PERIODS} periods"):
        read_schedule(given, 7200, 240, 32, None)


READING = m.Reading(1_800_000_000.25, 1234.5, 67.8, 3600.0, 55.5)
NEEDS = m.ChargingNeeds(20_000, 1_800_030_000, 7200, 80.0, 6000)


def payloads(version: str) -> list[tuple[str, dict[str, Any]]]:
    tx = m.TxEvent("Started", "CablePluggedIn", 0, "S1", "EVConnected", offline=True)
    ended = m.TxEvent("Ended", "EVDeparted", 3, "S1", stopped_reason="EVDisconnected")
    event = m.Event(5, m.GATE_COMPONENT, "DischargeAuthorization", "granted", "limit_w=5000",
                    "ism X", "S1")  # fmt: skip
    return [
        ("BootNotification", m.boot_notification("evse-gatekeeper", "v", "0.1", "PowerUp")),
        ("StatusNotification", m.status_notification(READING.wall_s, "Occupied")),
        ("TransactionEvent", m.transaction_event(tx, READING, "Transaction.Begin")),
        ("TransactionEvent", m.transaction_event(ended, READING, "Transaction.End")),
        ("NotifyEvent", m.notify_event(READING.wall_s, 0, event)),
        ("NotifyEVChargingNeeds", m.ev_charging_needs(NEEDS, version, 240)),
    ]


@pytest.mark.parametrize(("version", "calls"), [("2.0.1", call201), ("2.1", call21)])
def test_every_payload_is_valid_and_survives_the_packages_key_conversion(
    version: str, calls: Any
) -> None:
    for action, payload in payloads(version):
        _validate_payload(Call("1", action, payload), version)
        request = getattr(calls, action)(**camel_to_snake_case(payload))
        wire = snake_to_camel_case(serialize_as_dict(request))
        # the 2.1 dataclasses default offline and tbc to false: the same as leaving them out
        defaulted = {k for k, v in wire.items() if v is False and k not in payload}
        assert {k: v for k, v in wire.items() if v is not None and k not in defaulted} == payload


def test_the_outbox_keeps_order_across_a_restart_and_drops_only_routine(tmp_path: Path) -> None:
    with Journal.in_state_dir(tmp_path) as journal:
        outbox = Outbox(journal, limit=3)
        first = outbox.put("StatusNotification", {"n": 1}, essential=True)
        outbox.put("TransactionEvent", {"n": 2}, essential=False)
        outbox.put("NotifyEvent", {"n": 3}, essential=True)
        outbox.put("NotifyEvent", {"n": 4}, essential=True)  # full: the routine one goes
        assert outbox.dropped == 1
        outbox.put("NotifyEvent", {"n": 5}, essential=True)  # only essential: kept, over
        queued = outbox.next()
        assert queued is not None and queued.seq == first and queued.payload == {"n": 1}
        outbox.sent(first, "answered")
    with Journal.in_state_dir(tmp_path) as journal:
        outbox = Outbox(journal, limit=3)
        seen = []
        while (queued := outbox.next()) is not None:
            seen.append(queued.payload["n"])
            outbox.sent(queued.seq, "answered")
        assert seen == [3, 4, 5] and outbox.unsent() == 0


class Clock:
    def __init__(self) -> None:
        self.s = 1000.0

    def __call__(self) -> float:
        return self.s


def view(
    plugged: bool, power_w: float = 0.0, main: bool = False, export_wh: float = 0.0
) -> StationView:
    return StationView(plugged, 7 if plugged else None, "Occupied" if plugged else "Available",
                       main, power_w, None, 1200.0, export_wh)  # fmt: skip


def test_a_session_is_one_transaction_with_its_energy_and_decisions() -> None:
    clock = Clock()
    config = OcppConfig(url="wss://csms/ocpp", meter_interval_s=60)
    outbox = Outbox(None, 100)
    upstream = Upstream(config, outbox, 240, wall=clock, mono=clock)
    upstream.observe(view(False))
    upstream.observe(view(True))
    upstream.online = True
    upstream.observe(view(True, 3600.0, main=True))
    upstream.decision(Decision(True, (), 5000, "ISM-1"))
    clock.s += 3600  # an hour discharging at 3.6 kW: the meter's export register says so
    upstream.decision(Decision(False, ("revoked: 10 heartbeats missed",), None, "ISM-1"))
    upstream.observe(view(False, export_wh=3600.0))
    sent = []
    while (queued := outbox.next()) is not None:
        sent.append((queued.message, queued.payload, queued.essential))
        outbox.sent(queued.seq, "answered")
    kinds = [(name, p.get("eventType") or p.get("connectorStatus")) for name, p, _ in sent]
    assert kinds == [
        ("StatusNotification", "Available"), ("StatusNotification", "Occupied"),
        ("TransactionEvent", "Started"), ("TransactionEvent", "Updated"),
        ("NotifyEvent", None), ("NotifyEvent", None),
        ("StatusNotification", "Available"), ("TransactionEvent", "Ended"),
    ]  # fmt: skip
    started, updated, ended = (p for name, p, _ in sent if name == "TransactionEvent")
    assert started["offline"] is True and "offline" not in updated
    assert started["transactionInfo"]["transactionId"] == "S7"
    assert [p["seqNo"] for p in (started, updated, ended)] == [0, 1, 2]
    energy = {v["measurand"]: v["value"] for v in ended["meterValue"][0]["sampledValue"]}
    assert energy["Energy.Active.Export.Register"] == 3600.0
    assert energy["Energy.Active.Import.Register"] == 1200.0, "the meter's own register"
    words = [p["eventData"][0]["actualValue"] for name, p, _ in sent if name == "NotifyEvent"]
    assert words == ["granted", "revoked"]
    routine = [(name, p.get("triggerReason")) for name, p, essential in sent if not essential]
    assert routine == [("TransactionEvent", "ChargingStateChanged")], "the rest is essential"
