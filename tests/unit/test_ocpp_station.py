"""The station's sender and connection without a network: a CSMS stand-in that answers (or
refuses) each call made through the ``ocpp`` package's real request classes. What is sent,
in which order, and what is said; no timing is asserted beyond "before a long interval"."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ocpp.exceptions import FormationViolationError
from ocpp.messages import Call, _validate_payload
from ocpp.v21 import call as call21

from firmware.config.reader import SectionReader
from firmware.journal.outbox import Outbox
from firmware.journal.recorder import Recorder
from firmware.journal.store import Journal
from firmware.ocpp import station as station_module
from firmware.ocpp.config import OcppConfig, read_ocpp
from firmware.ocpp.service import OcppService
from firmware.ocpp.station import MESSAGE_ATTEMPTS, MIN_INTERVAL_S, Station, _interval
from firmware.ocpp.upstream import StationView, Upstream

CONFIG = OcppConfig(url="wss://csms/ocpp", heartbeat_s=300, meter_interval_s=3600)


class Csms:
    """Answers each call; ``refuse`` maps an action to how many times it is refused first
    (-1: always); ``during`` runs inside a named call (something queued meanwhile)."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self._call = call21
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse or {}
        self.during: dict[str, Any] = {}
        self.interval: Any = 2

    async def call(self, request: Any, suppress: bool = True) -> Any:
        action = type(request).__name__
        self.calls.append((action, vars(request)))
        if action in self.during:
            self.during.pop(action)()
        left = self.refuse.get(action, 0)
        if left:
            self.refuse[action] = left - 1
            raise FormationViolationError(description="refused by the test CSMS")
        if action == "BootNotification":
            return SimpleNamespace(status="Accepted", interval=self.interval, current_time="x")
        return SimpleNamespace(current_time="x")

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]


def station(config: OcppConfig = CONFIG) -> tuple[Station, Upstream]:
    upstream = Upstream(config, Outbox(None, 100), 240)
    made = Station(config, upstream, None, "test")  # type: ignore[arg-type]
    made.attempt_interval_s = 0.01
    return made, upstream


async def send_until(made: Station, csms: Csms, done: Any, within_s: float = 5.0) -> None:
    """Run the send loop until ``done()``; fails if it takes ``within_s`` (a lost wake-up
    waits the heartbeat interval, 300 s)."""
    reader = asyncio.create_task(asyncio.sleep(3600))
    sender = asyncio.create_task(made._send_loop(csms, reader))
    try:
        async with asyncio.timeout(within_s):
            while not done():
                await asyncio.sleep(0.005)
    finally:
        sender.cancel()
        reader.cancel()
        await asyncio.gather(sender, reader, return_exceptions=True)


def tx_event(upstream: Upstream, n: int) -> None:
    upstream._put("NotifyEvent", {"generatedAt": "2026-01-01T00:00:00Z", "seqNo": n,
                                  "eventData": []}, essential=True)  # fmt: skip


def test_an_event_queued_while_a_heartbeat_is_in_flight_is_sent_at_once() -> None:
    made, upstream = station()
    made._heartbeat_s = 0.01  # the first heartbeat at once, the next one in 300 s
    csms = Csms()

    def queue_and_slow_down() -> None:
        made._heartbeat_s = 300.0
        upstream._put("StatusNotification", {"timestamp": "2026-01-01T00:00:00Z",
                                             "connectorStatus": "Occupied", "evseId": 1,
                                             "connectorId": 1})  # fmt: skip

    csms.during["Heartbeat"] = queue_and_slow_down
    asyncio.run(send_until(made, csms, lambda: "StatusNotification" in csms.actions()))
    assert csms.actions() == ["Heartbeat", "StatusNotification"]


def test_an_essential_event_the_csms_refuses_is_retried_then_the_queue_goes_on() -> None:
    made, upstream = station()
    csms = Csms(refuse={"NotifyEvent": 2})
    tx_event(upstream, 1)
    tx_event(upstream, 2)
    asyncio.run(send_until(made, csms, lambda: upstream.outbox.unsent() == 0))
    sent = [payload["seq_no"] for action, payload in csms.calls if action == "NotifyEvent"]
    assert sent == [1, 1, 1, 2], "refused twice, accepted the third time, then the next"


def test_an_essential_event_refused_every_time_is_dropped_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    made, upstream = station()
    csms = Csms(refuse={"NotifyEvent": MESSAGE_ATTEMPTS})
    tx_event(upstream, 1)
    tx_event(upstream, 2)
    with caplog.at_level(logging.WARNING):
        asyncio.run(send_until(made, csms, lambda: upstream.outbox.unsent() == 0))
    sent = [payload["seq_no"] for action, payload in csms.calls if action == "NotifyEvent"]
    assert sent == [1] * MESSAGE_ATTEMPTS + [2]
    dropped = [r.getMessage() for r in caplog.records if "ocpp.message_dropped" in r.getMessage()]
    assert len(dropped) == 1 and "seq=1" in dropped[0] and "FormationViolation" in dropped[0]


def test_a_routine_event_refused_is_not_retried() -> None:
    made, upstream = station()
    csms = Csms(refuse={"NotifyEvent": -1})
    upstream._put("NotifyEvent", {"generatedAt": "2026-01-01T00:00:00Z", "seqNo": 1,
                                  "eventData": []}, essential=False)  # fmt: skip
    asyncio.run(send_until(made, csms, lambda: upstream.outbox.unsent() == 0))
    assert csms.actions() == ["NotifyEvent"]


@pytest.mark.parametrize(
    ("given", "fallback", "used"),
    [(-5, 300.0, 300.0), (0, 300.0, 300.0), (0.001, 300.0, MIN_INTERVAL_S), (None, 60.0, 60.0),
     ("soon", 60.0, 60.0), (120, 300.0, 120.0)],
)  # fmt: skip
def test_the_csmss_interval_is_clamped(given: object, fallback: float, used: float) -> None:
    assert _interval(given, fallback) == used


def test_the_heartbeat_interval_in_effect_is_the_csmss_and_reported() -> None:
    made, upstream = station()
    csms = Csms()
    csms.interval = -5
    asyncio.run(made._boot(csms))
    assert made._heartbeat_s == 300.0 and upstream.heartbeat_s == 300.0, "negative: ignored"
    made._booted = False
    csms.interval = 42
    asyncio.run(made._boot(csms))
    assert upstream.heartbeat_s == 42.0


def test_energy_is_not_sent_before_the_meter_has_read_it_and_never_goes_back() -> None:
    _, upstream = station()

    def energy_after(import_wh: float | None) -> dict[str, float]:
        upstream.observe(StationView(True, 1, "Occupied", False, 0.0, None, import_wh,
                                     import_wh and 0.0))  # fmt: skip
        upstream._tx("Updated", "MeterValuePeriodic", "Sample.Periodic", essential=False)
        payload = None
        while (queued := upstream.outbox.next()) is not None:
            payload = queued.payload
            upstream.outbox.sent(queued.seq, "answered")
        assert payload is not None
        values = payload["meterValue"][0]["sampledValue"]
        return {v["measurand"]: v["value"] for v in values if "Energy" in v["measurand"]}

    assert energy_after(None) == {}, "no reading yet: no register"
    assert energy_after(1200.0)["Energy.Active.Import.Register"] == 1200.0
    assert energy_after(None)["Energy.Active.Import.Register"] == 1200.0, "the last known"


def read(table: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    read_ocpp(SectionReader("ocpp", table, problems))
    return problems


def test_unusable_tls_files_are_refused_at_load_in_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    problems = read({"url": "wss://csms/ocpp", "security_profile": 3, "cert_file": str(junk),
                     "key_file": str(junk)})  # fmt: skip
    assert len(problems) == 1 and problems[0].startswith("ocpp.cert_file: ")
    assert "not a usable certificate and key" in problems[0]
    problems = read({"url": "wss://csms/ocpp", "security_profile": 3, "cert_file": str(junk),
                     "key_file": str(junk), "ca_file": str(junk)})  # fmt: skip
    assert len(problems) == 1 and problems[0].startswith("ocpp.ca_file: ")


def test_tls_files_that_became_unusable_are_said_once_shown_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("replaced by something that is no certificate\n")
    config = OcppConfig(url="wss://127.0.0.1:9/ocpp", ca_file=junk, security_profile=3,
                        cert_file=junk, key_file=junk, reconnect_max_s=1)  # fmt: skip
    made, _ = station(config)
    monkeypatch.setattr(station_module, "FIRST_RETRY_S", 0.01)
    attempts = 0
    real = station_module.tls_context

    def counted(config: OcppConfig) -> Any:
        nonlocal attempts
        attempts += 1
        return real(config)

    monkeypatch.setattr(station_module, "tls_context", counted)

    async def run() -> None:
        made.start()
        async with asyncio.timeout(5):
            while attempts < 3:
                await asyncio.sleep(0.01)
        assert made._task is not None and not made._task.done(), "still retrying"
        await made.stop()

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    assert made.last_error is not None and made.last_error.startswith("TLS: our certificate")
    said = [r.getMessage() for r in caplog.records if "ocpp.connect_failed" in r.getMessage()]
    assert len(said) == 1


def test_a_transaction_left_open_by_the_last_run_is_ended_first(tmp_path: Path) -> None:
    with Journal.in_state_dir(tmp_path) as journal:
        outbox = Outbox(journal, 100)
        upstream = Upstream(CONFIG, outbox, 240)
        upstream.observe(StationView(True, 7, "Occupied", False, 0.0, None, 10.0, 0.0))
        upstream._tx("Updated", "MeterValuePeriodic", "Sample.Periodic", essential=False)
        queued = outbox.next()
        assert queued is not None
        outbox.sent(queued.seq, "answered")  # the CSMS had the first; the rest waits
    # the daemon stops with the vehicle plugged in, and starts again
    recorder = Recorder.open(tmp_path)
    service = OcppService(CONFIG, recorder, 240)
    service.observe(StationView(False, None, "Available", False, 0.0, None))
    assert recorder.journal is not None
    sent = []
    while (queued := service.upstream.outbox.next()) is not None:
        sent.append((queued.message, queued.payload))
        service.upstream.outbox.sent(queued.seq, "answered")
    kinds = [(name, p.get("eventType") or p.get("connectorStatus")) for name, p in sent]
    assert kinds == [
        ("TransactionEvent", "Started"), ("TransactionEvent", "Updated"),
        ("TransactionEvent", "Ended"), ("StatusNotification", "Available"),
    ]  # fmt: skip
    ended = sent[2][1]
    assert ended["transactionInfo"] == {"transactionId": "S7", "stoppedReason": "Reboot"}
    assert ended["seqNo"] == 2 and "meterValue" not in ended, "no reading is made up"
    for version in ("2.0.1", "2.1"):
        _validate_payload(Call("1", "TransactionEvent", ended), version)
    service.upstream.end_left_open()
    assert service.upstream.outbox.next() is None, "ended once"
    recorder.close()
