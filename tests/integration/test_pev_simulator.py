"""The PEV simulator (``hil.pev``) against the real 2030.5 server, in process, over mutual TLS
on ::1. What counts is what the *server's store* recorded: the PUTs with their values, the
order of the reads and writes, the Responses, the heartbeats and their spacing, the mirror,
the subscription. Notifications are delivered to the simulator's listener by the test acting
as the EVSE (the EVSE's sender is not this suite's subject)."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from firmware.daemon.config import parse_config
from firmware.sep2.control import DERControlBase
from firmware.sep2.der_status import DERStatus
from firmware.sep2.identity import lfdi, load_certificate, sfdi
from firmware.sep2.metering import ROLE_IS_MIRROR, ROLE_IS_PEV, UOM_HZ, UOM_V, UOM_VAR, UOM_W
from firmware.sep2.pki import init_pki
from firmware.sep2.pubsub import NOTIFICATION_CANCELLED, NOTIFICATION_DEFAULT, Notification
from firmware.sep2.response import STATUS_RECEIVED, STATUS_STARTED
from firmware.sep2.server import Sep2Server, ServerSettings
from firmware.sep2.site import SiteResources, watts
from firmware.sep2.store import PevEvent, PevRecord, ResourcePut, Sep2Store
from firmware.sep2.tls import PeerIdentity, client_context
from firmware.sep2.xml import MEDIA_TYPE
from hil.pev import __main__ as cli
from hil.pev.client import PevClient
from hil.pev.profiles import APPROVED_ISM, CERTIFIED, PROFILES, Profile, SleepWake
from hil.pev.report import PevReport

pytestmark = pytest.mark.integration

SITE_MAX_W = 7200
SITE = parse_config(
    {
        "site": {
            "max_w": SITE_MAX_W,
            "functions": [
                {"mode": "volt-var", "curve": [[92, 44], [98, 0], [102, 0], [108, -44]]},
                {"mode": "max-lim-w", "percent": 80},
                {"mode": "freq-droop"},
            ],
        }
    }
).site
CERTIFIED_4Q = PROFILES["certified-4q"]
SCENARIO_TIMEOUT_S = 15


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    init_pki(directory)
    return directory


@dataclass(frozen=True)
class Seen:
    """A store event, when it happened, and the value stored with it."""

    monotonic_s: float
    what: str
    value: Any


@dataclass
class Evse:
    server: Sep2Server
    store: Sep2Store
    seen: list[Seen]

    @property
    def url(self) -> str:
        return f"https://[::1]:{self.server.port}"

    @property
    def site(self) -> SiteResources:
        return self.server.handlers.site

    def record(self, pev_lfdi: str) -> PevRecord:
        record = self.store.get(pev_lfdi)
        assert record is not None, "the server never saw this vehicle"
        return record

    def whats(self) -> list[str]:
        return [s.what for s in self.seen]

    def heartbeats(self) -> list[Seen]:
        return [s for s in self.seen if s.what == "der_status"]


@asynccontextmanager
async def evse(pki: Path) -> AsyncIterator[Evse]:
    der = load_certificate(pki / "evse.pem").public_bytes(Encoding.DER)
    identity = PeerIdentity(lfdi(der), sfdi(lfdi(der)), der, None)
    seen: list[Seen] = []

    def on_event(event: PevEvent) -> None:
        value = event.resource if isinstance(event, ResourcePut) else None
        seen.append(Seen(time.monotonic(), event.name, value))

    store = Sep2Store(on_event)
    settings = ServerSettings("::1", 0, pki / "serca.pem", pki / "evse.pem", pki / "evse.key")
    server = Sep2Server(settings, SiteResources(SITE, identity.lfdi), store, identity)
    await server.start()
    try:
        yield Evse(server, store, seen)
    finally:
        await server.stop()


During = Callable[[Evse, PevClient], Awaitable[None]]


def session(
    pki: Path, profile: Profile, duration_s: float, during: During | None = None, **kw: Any
) -> tuple[PevReport, Evse]:
    """Run one vehicle against a fresh server; ``during`` acts alongside it."""

    async def scenario() -> tuple[PevReport, Evse]:
        async with evse(pki) as bench:
            client = PevClient(bench.url, pki, profile, **kw)
            running = asyncio.create_task(client.run(duration_s))
            if during is not None:
                await during(bench, client)
            return await running, bench

    async def bounded() -> tuple[PevReport, Evse]:
        return await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT_S)

    return asyncio.run(bounded())


async def until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def energize_flipper(flipped_at: list[float]) -> During:
    """Once heartbeats arrive, set the record's ``energize`` as the J3072 session would."""

    async def flip(bench: Evse, client: PevClient) -> None:
        await until(lambda: bool(bench.heartbeats()))
        await asyncio.sleep(0.3)  # between two polls, not right after one
        bench.record(client.lfdi).energize = True
        flipped_at.append(time.monotonic())

    return flip


def assert_poll_saw_flip(report: PevReport, flipped_at: list[float]) -> None:
    assert [c.energize for c in report.energize_history] == [False, True]
    change = report.energize_history[1]
    assert change.via == "poll"
    assert 0 <= change.monotonic_s - flipped_at[0] < 1.5


@pytest.fixture(scope="module")
def certified_4q(pki: Path) -> tuple[PevReport, Evse]:
    """One certified-4q session, looked at by several tests."""
    return session(pki, CERTIFIED_4Q, 3.3)


def test_certified_4q_puts_its_data_after_reading_the_site_limits(
    certified_4q: tuple[PevReport, Evse],
) -> None:
    report, bench = certified_4q
    assert report.ok and report.completed and not report.errors, report.summary()
    record = bench.record(report.lfdi or "")
    info = record.device_information
    assert info is not None and info.lfdi == report.lfdi
    assert (info.mf_model, info.mf_info, info.mf_ser_num) == (
        APPROVED_ISM,
        CERTIFIED,
        CERTIFIED_4Q.vin,
    )
    assert (info.mf_info or "").startswith("J3072;")
    cap = record.der_capability
    assert cap is not None and cap.der_type == 81
    assert cap.rtg_max_var is not None and cap.rtg_max_var.value > 0
    assert cap.rtg_max_var_neg is not None and cap.rtg_max_var_neg.value > 0
    assert watts(cap.rtg_max_w) == CERTIFIED_4Q.ratings.max_w
    settings = record.der_settings
    assert settings is not None and settings.set_max_wh is not None
    assert watts(settings.set_max_w) == min(CERTIFIED_4Q.ratings.max_w, SITE_MAX_W)
    assert record.der_availability is not None
    assert record.power_status is not None and record.power_status.pev_info is not None
    # §4.6.1: the site limits were read before the PEV said anything about itself
    whats = bench.whats()
    assert whats.index("read:site_limits") < whats.index("der_settings")
    assert whats.index("read:site_limits") < whats.index("device_information")


def test_certified_4q_responses_heartbeats_mirror_subscription(
    certified_4q: tuple[PevReport, Evse],
) -> None:
    report, bench = certified_4q
    assert report.ok, report.summary()
    record = bench.record(report.lfdi or "")
    controls = bench.site.controls(record)
    answered = sorted((r.subject, r.status) for r in record.responses.values())
    assert answered == sorted(
        (c.mrid, status) for c in controls for status in (STATUS_RECEIVED, STATUS_STARTED)
    )
    assert {r.end_device_lfdi for r in record.responses.values()} == {report.lfdi}
    assert report.responses_posted == 2 * len(controls)
    beats = bench.heartbeats()
    assert len(beats) == report.heartbeats_sent >= 3
    gaps = [b.monotonic_s - a.monotonic_s for a, b in itertools.pairwise(beats)]
    assert all(0.8 < gap < 1.2 for gap in gaps), gaps
    first: DERStatus = beats[0].value
    assert first.inverter_status is not None and first.inverter_status.value == 0
    assert first.operational_mode_status is not None and first.state_of_charge_status
    assert first.gen_connect_status is not None
    assert bench.whats().index("response") < bench.whats().index("der_status")
    [mirror] = [m for m in bench.store.mirrors.values() if m.owner_lfdi == report.lfdi]
    assert mirror.point.role_flags & ROLE_IS_PEV and mirror.point.role_flags & ROLE_IS_MIRROR
    uoms = {r.reading_type.uom for r in mirror.readings if r.reading_type}
    assert uoms == {UOM_W, UOM_VAR, UOM_V, UOM_HZ}
    subscribed = {s.subscribed_resource for s in record.subscriptions.values()}
    default = bench.site.default_control(record).href
    assert subscribed == {default, f"/edev/{record.n}/derp/0/derc"}, "energize and controls"
    uris = {s.notification_uri for s in record.subscriptions.values()}
    assert len(uris) == 1 and uris.pop().startswith("https://[::1]:")
    assert report.watch == "notifications"


async def notify(
    bench: Evse,
    client: PevClient,
    status: int,
    energize: bool,
    credential: str = "evse",
    body: bytes | None = None,
) -> int:
    """POST a Notification to the simulator's notificationURI as ``credential``."""
    record = bench.record(client.lfdi)
    default = replace(bench.site.default_control(record),
                      der_control_base=DERControlBase(op_mod_energize=energize))  # fmt: skip
    [subscription] = [s for s in record.subscriptions.values()
                      if s.subscribed_resource == default.href]  # fmt: skip
    notification = Notification(
        subscribed_resource=subscription.subscribed_resource,
        resource=default,
        status=status,
        subscription_uri=bench.url + (subscription.href or ""),
    )
    pki = client.pki_dir
    context = client_context(
        pki / "serca.pem", pki / f"{credential}.pem", pki / f"{credential}.key"
    )
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
        http.post(
            subscription.notification_uri,
            data=body or notification.to_xml(),
            headers={"Content-Type": MEDIA_TYPE},
        ) as answer,
    ):
        return answer.status


def test_notifications_from_the_evse_drive_the_watch_and_a_cancel_falls_back(pki: Path) -> None:
    statuses: list[int] = []

    async def during(bench: Evse, client: PevClient) -> None:
        await until(lambda: client.log.watch == "notifications" and bool(bench.heartbeats()))
        statuses.append(await notify(bench, client, NOTIFICATION_DEFAULT, True, "pev-silent"))
        statuses.append(await notify(bench, client, NOTIFICATION_DEFAULT, True, body=b"<x/>"))
        statuses.append(await notify(bench, client, NOTIFICATION_DEFAULT, True))
        await asyncio.sleep(1.2)  # subscribed: no polling, so the server's False goes unseen
        statuses.append(await notify(bench, client, NOTIFICATION_CANCELLED, True))

    report, _ = session(pki, CERTIFIED_4Q, 3.0, during)
    assert statuses == [403, 400, 204, 204]
    assert [(c.energize, c.via) for c in report.energize_history] == [
        (False, "read"),
        (True, "notification"),
        (False, "poll"),
    ]
    assert report.watch.startswith("polling (subscription ended")
    assert report.ok, report.summary()


def test_polling_profile_sees_energize_change_within_1_5_s(pki: Path) -> None:
    flipped_at: list[float] = []
    report, _ = session(pki, PROFILES["uncertified"], 2.5, energize_flipper(flipped_at))
    assert report.watch == "polling" and report.ok, report.summary()
    assert_poll_saw_flip(report, flipped_at)


def test_refused_subscription_falls_back_to_polling(pki: Path) -> None:
    # the server only notifies the subscriber's own address: 127.0.0.1 is not ::1
    flipped_at: list[float] = []
    flip = energize_flipper(flipped_at)
    report, bench = session(pki, CERTIFIED_4Q, 2.5, flip, notify_host="127.0.0.1")
    assert report.watch.startswith("polling (subscription refused: POST"), report.watch
    assert report.ok, report.summary()
    assert not bench.record(report.lfdi or "").subscriptions
    assert_poll_saw_flip(report, flipped_at)


def test_over_limits_puts_a_set_max_w_above_the_site(pki: Path) -> None:
    report, bench = session(pki, PROFILES["over-limits"], 0.5)
    assert report.ok, report.summary()
    settings = bench.record(report.lfdi or "").der_settings
    assert settings is not None and watts(settings.set_max_w) > SITE_MAX_W
    whats = bench.whats()
    assert whats.index("read:site_limits") < whats.index("der_settings")


def test_silent_stops_after_3_heartbeats_but_keeps_watching(pki: Path) -> None:
    silent = PROFILES["silent"]
    assert silent.heartbeats == 3
    report, bench = session(pki, silent, 4.5)
    assert report.ok, report.summary()
    beats = bench.heartbeats()
    assert len(beats) == report.heartbeats_sent == 3
    assert time.monotonic() - beats[-1].monotonic_s > 2.0
    last_beat_s = max(s.at_s for s in report.steps if s.name.startswith("heartbeat"))
    polls_after = [s for s in report.steps if s.routine and s.method == "GET"]
    assert [s for s in polls_after if s.at_s > last_beat_s + 1.0], "it stopped watching"


def test_bad_certificate_fails_at_the_handshake_unseen_by_the_server(pki: Path) -> None:
    report, bench = session(pki, PROFILES["bad-certificate"], 1.0)
    assert report.tls_failure is not None and not report.completed
    assert report.ok and not report.errors, report.summary()
    assert [s.method for s in report.steps] == ["TLS"]
    assert bench.store.records() == [] and bench.seen == []


def test_sleep_then_wake_rereads_controls_and_posts_0(pki: Path) -> None:
    sleepy = replace(CERTIFIED_4Q, subscribe=False, sleep=SleepWake(after_s=0.5, for_s=1.8))
    report, bench = session(pki, sleepy, 3.3)
    assert report.ok, report.summary()
    inverter = [b.value.inverter_status.value for b in bench.heartbeats()]
    assert inverter == [0, 2, 2, 0], inverter  # beats at 0, 1, 2 (asleep 0.5-2.3) and 3 s
    reads = [(s.name, s.at_s) for s in report.steps
             if s.name.startswith("DERControlList") and not s.name.endswith("(poll)")]  # fmt: skip
    beats = [s.at_s for s in report.steps if s.name.startswith("heartbeat")]
    assert [name for name, _ in reads] == ["DERControlList", "DERControlList (wake)"]
    assert beats[2] < reads[1][1] < beats[3]  # re-read on waking, before posting 0


def free_port() -> int:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_cli_exit_codes_and_timeline(
    pki: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "setup_logging", lambda level: None)  # keep pytest's handlers
    codes: dict[str, int] = {}

    def run(url: str, profile: str, *extra: str) -> int:
        return cli.main(
            [
                "run",
                "--server",
                url,
                "--pki",
                str(pki),
                "--profile",
                profile,
                "--duration",
                "1.2",
                *extra,
            ]
        )

    async def scenario() -> None:
        async with evse(pki) as bench:
            codes["ok"] = await asyncio.to_thread(run, bench.url, "certified-4q")
            codes["tls"] = await asyncio.to_thread(run, bench.url, "bad-certificate")
        codes["nobody"] = await asyncio.to_thread(run, f"https://[::1]:{free_port()}", "silent")

    asyncio.run(asyncio.wait_for(scenario(), SCENARIO_TIMEOUT_S))
    assert codes == {"ok": 0, "tls": 0, "nobody": 1}
    out = capsys.readouterr().out
    assert "GET  /dcap" in out and "heartbeat DERStatus" in out and "result OK" in out
    assert "TLS handshake failed" in out and "result FAILED" in out
    for argv in (
        ["run", "--server", "https://[::1]:1", "--pki", str(pki), "--profile", "nope"],
        [
            "run",
            "--server",
            "https://[::1]:1",
            "--pki",
            str(pki / "missing"),
            "--profile",
            "silent",
        ],
        [
            "run",
            "--server",
            "https://[::1]:1",
            "--pki",
            str(pki),
            "--profile",
            "silent",
            "--duration",
            "0",
        ],
        [],
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 2, argv


def record_parsed_bodies(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every body the server parses from now on (what the vehicle sends), in order."""
    import firmware.sep2.base as base

    received: list[bytes] = []
    original = base.parse_document

    def recording(body: bytes, expected_root: str, *args: Any, **kwargs: Any) -> Any:
        received.append(body)
        return original(body, expected_root, *args, **kwargs)

    monkeypatch.setattr(base, "parse_document", recording)
    return received


def test_every_body_the_simulator_sends_validates_against_the_official_schema(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema_path = os.environ.get("SEP2_SCHEMA_PATH")
    if not schema_path:
        pytest.skip(
            "SEP2_SCHEMA_PATH is not set: the IEEE 2030.5 schema is copyrighted and not "
            "shipped; point it at a local sep.xsd to run"
        )
    from lxml import etree

    received = record_parsed_bodies(monkeypatch)
    report, _bench = session(pki, replace(CERTIFIED_4Q, heartbeats=2), duration_s=2.5)
    assert report.ok, report.summary()
    schema = etree.XMLSchema(etree.parse(schema_path))
    roots = set()
    for body in received:
        document = etree.fromstring(body)
        roots.add(etree.QName(document).localname)
        assert schema.validate(document), (body[:200], schema.error_log.last_error)
    assert {"DeviceInformation", "DERSettings", "DERCapability", "DERStatus"} <= roots, roots
