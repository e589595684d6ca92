"""The 2030.5 server over real TLS on loopback: the resources the profile requires, each
vehicle confined to its own EndDevice, hostile input answered 4xx (logged, nothing changed,
the server unaffected), subscriptions and notifications. Every body the server emits is
validated against the official schema when SEP2_SCHEMA_PATH points at a local copy."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from firmware.daemon.config import parse_config
from firmware.sep2.clock import QUALITY_NTP, QUALITY_UNCOORDINATED, kernel_says_synchronized
from firmware.sep2.control import DefaultDERControl
from firmware.sep2.device import DeviceInformation, Time
from firmware.sep2.identity import lfdi, load_certificate, sfdi
from firmware.sep2.pki import PkiLayout, init_pki
from firmware.sep2.pubsub import Notification, Subscription
from firmware.sep2.response import Response
from firmware.sep2.server import Sep2Server, ServerSettings
from firmware.sep2.site import SiteResources
from firmware.sep2.store import PevEvent, Sep2Store, SiteRead
from firmware.sep2.tls import PeerIdentity, client_context, server_context
from firmware.sep2.xml import MEDIA_TYPE
from tests.unit import sep2_maximal as maximal

pytestmark = pytest.mark.integration

SITE = parse_config(
    {
        "site": {
            "max_w": 7200,
            "functions": [
                {"mode": "volt-var", "curve": [[92, 44], [98, 0], [102, 0], [108, -44]]},
                {"mode": "max-lim-w", "percent": 80},
                {"mode": "freq-droop"},
            ],
        }
    }
).site
SEP = {"Content-Type": MEDIA_TYPE}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki") / "pki")


@dataclass
class Bench:
    server: Sep2Server
    store: Sep2Store
    events: list[PevEvent]
    base: str
    pki: PkiLayout
    bodies: list[bytes]

    def client(self, name: str = "certified-4q") -> aiohttp.ClientSession:
        d = self.pki.directory
        context = client_context(d / "serca.pem", d / f"pev-{name}.pem", d / f"pev-{name}.key")
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))

    async def get(self, session: aiohttp.ClientSession, path: str) -> tuple[int, bytes]:
        async with session.get(self.base + path) as reply:
            body = await reply.read()
            if reply.status == 200:
                assert reply.content_type == MEDIA_TYPE
                self.bodies.append(body)
            return reply.status, body

    async def send(
        self, session: aiohttp.ClientSession, method: str, path: str, body: bytes, **kw: Any
    ) -> tuple[int, str, str]:
        headers = kw.pop("headers", SEP)
        async with session.request(method, self.base + path, data=body, headers=headers) as r:
            return r.status, await r.text(), r.headers.get("Location", "")


def run(pki: PkiLayout, scenario: Callable[[Bench], Awaitable[None]]) -> Bench:
    d = pki.directory
    evse_der = load_certificate(d / "evse.pem").public_bytes(Encoding.DER)
    evse = PeerIdentity(lfdi(evse_der), sfdi(lfdi(evse_der)), evse_der, None)
    events: list[PevEvent] = []
    store = Sep2Store(events.append)
    settings = ServerSettings("::1", 0, d / "serca.pem", d / "evse.pem", d / "evse.key")
    server = Sep2Server(settings, SiteResources(SITE, evse.lfdi), store, evse)
    bench = Bench(server, store, events, "", pki, [])

    async def main() -> None:
        await server.start()
        bench.base = f"https://[::1]:{server.port}"
        try:
            await asyncio.wait_for(scenario(bench), 20)
        finally:
            await server.stop()

    asyncio.run(main())
    return bench


def pev_lfdi(pki: PkiLayout, name: str = "certified-4q") -> str:
    der = load_certificate(pki.directory / f"pev-{name}.pem").public_bytes(Encoding.DER)
    return lfdi(der)


def device_information(owner: str, model: str = "ISM-TEST-0001") -> bytes:
    return DeviceInformation(
        lfdi=owner, mf_date=1700000000, mf_hw_ver="1", mf_id=1, mf_info="J3072;date=2025-06-01",
        mf_model=model, mf_ser_num="VIN0000000000001", primary_power=0, secondary_power=0,
        sw_act_time=1700000000, sw_ver="1.0",
    ).to_xml()  # fmt: skip


# --- the resources ----------------------------------------------------------------------


def test_the_profile_tree_from_dcap(pki: PkiLayout) -> None:
    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            status, dcap = await bench.get(pev, "/dcap")
            assert status == 200
            tree = etree.fromstring(dcap)
            children = [etree.QName(e).localname for e in tree]
            assert "DERProgramListLink" not in children, "no public programs (§4.5.1)"
            assert {"TimeLink", "SelfDeviceLink", "EndDeviceListLink"} <= set(children)
            for path in ("/tm", "/sdev", "/sdev/der", "/sdev/der/0", "/sdev/der/0/dercap",
                         "/sdev/der/0/derg", "/edev", "/edev/0", "/edev/0/der", "/edev/0/fsa",
                         "/edev/0/fsa/0", "/edev/0/derp", "/edev/0/derp/0",
                         "/edev/0/derp/0/dderc", "/edev/0/derp/0/derc", "/edev/0/derp/0/derc/0",
                         "/edev/0/derp/0/dc", "/edev/0/derp/0/dc/0", "/edev/0/sub", "/mup",
                         "/rsps", "/rsps/0", "/rsps/0/rsp"):  # fmt: skip
                status, body = await bench.get(pev, path)
                assert status == 200, (path, body)
            _, edev = await bench.get(pev, "/edev/0")
            assert b"RegistrationLink" not in edev, "registration is prohibited (§4.5.3)"
            _, tm = await bench.get(pev, "/tm")
            expected = QUALITY_NTP if kernel_says_synchronized() else QUALITY_UNCOORDINATED
            assert Time.from_xml(tm).quality == expected, "what the kernel says of the clock"
            _, controls = await bench.get(pev, "/edev/0/derp/0/derc")
            count = controls.count(b"<DERControl ")
            assert count == len(SITE.functions) == 9, "one per function, the protective included"
            assert b'responseRequired="03"' in controls and b"<duration>4294967295<" in controls
            _, dderc = await bench.get(pev, "/edev/0/derp/0/dderc")
            assert DefaultDERControl.from_xml(dderc).der_control_base.op_mod_energize is False
            _, limits = await bench.get(pev, "/sdev/der/0/derg")
            assert b"<setMaxW><multiplier>0</multiplier><value>7200</value></setMaxW>" in limits
            assert b"setMaxVA" not in limits and b"setVNom" not in limits

    bench = run(pki, scenario)
    whats = [e.name for e in bench.events]
    assert whats[0] == "connected" and "read:site_limits" in whats and "read:controls" in whats
    _validate_all(bench.bodies)


def test_each_vehicle_sees_only_its_own_end_device(pki: PkiLayout) -> None:
    async def scenario(bench: Bench) -> None:
        async with bench.client("certified-4q") as first, bench.client("uncertified") as second:
            _, mine = await bench.get(first, "/edev")
            _, theirs = await bench.get(second, "/edev")
            assert mine.count(b"<EndDevice ") == theirs.count(b"<EndDevice ") == 1
            assert pev_lfdi(pki).encode() in mine and pev_lfdi(pki).encode() not in theirs
            assert (await bench.get(second, "/edev/0"))[0] == 404
            assert (await bench.get(second, "/edev/0/di"))[0] == 404
            status, _, _ = await bench.send(second, "PUT", "/edev/0/di", device_information(
                pev_lfdi(pki, "uncertified")))  # fmt: skip
            assert status == 404
            assert (await bench.get(second, "/edev/1"))[0] == 200

    run(pki, scenario)


def test_puts_are_stored_and_read_back(pki: PkiLayout) -> None:
    owner = pev_lfdi(pki)

    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            assert (await bench.get(pev, "/edev/0/di"))[0] == 404, "nothing before the PUT"
            status, _, _ = await bench.send(pev, "PUT", "/edev/0/di", device_information(owner))
            assert status == 204
            status, body = await bench.get(pev, "/edev/0/di")
            assert status == 200 and b"<mfModel>ISM-TEST-0001</mfModel>" in body
            status, reason, _ = await bench.send(
                pev, "PUT", "/edev/0/di", device_information("AB" * 20)
            )
            assert status == 400 and "LFDI" in reason, "another LFDI's DeviceInformation"
            assert (await bench.send(pev, "PUT", "/sdev/der/0/derg", b"x"))[0] == 405

    bench = run(pki, scenario)
    record = bench.store.get(owner)
    assert record is not None and record.device_information is not None
    assert record.device_information.mf_model == "ISM-TEST-0001"


PUT_MAXIMAL = {"di": "DeviceInformation", "ps": "PowerStatus", "der/0/dercap": "DERCapability",
               "der/0/derg": "DERSettings", "der/0/dera": "DERAvailability",
               "der/0/ders": "DERStatus"}  # fmt: skip


def test_schema_valid_vehicle_bodies_with_every_optional_element_are_accepted(
    pki: PkiLayout,
) -> None:
    """What real vehicle stacks send (docs/v2g-ac-profile.md, "XML hardening"): every element
    the schema allows, those the profile does not use included."""
    owner = pev_lfdi(pki)

    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            for tail, tag in PUT_MAXIMAL.items():
                body = maximal.device_information(owner) if tag == "DeviceInformation" else (
                    maximal.MAXIMAL[tag]())  # fmt: skip
                status, reason, _ = await bench.send(pev, "PUT", f"/edev/0/{tail}", body)
                assert status == 204, (tag, reason)
            point = maximal.mirror_usage_point(owner)
            status, reason, mup = await bench.send(pev, "POST", "/mup", point)
            assert status == 201, reason
            reading = maximal.mirror_meter_reading()
            assert (await bench.send(pev, "POST", mup, reading))[0] == 204
            status, reason, _ = await bench.send(pev, "POST", "/rsps/0/rsp",
                                                 maximal.response(owner))  # fmt: skip
            assert status == 201, reason
            sub = maximal.subscription("/edev/0/derp/0/derc", "https://[::1]:1/n")
            status, reason, location = await bench.send(pev, "POST", "/edev/0/sub", sub)
            assert status == 201, reason
            _, kept = await bench.get(pev, location)
            assert b"Condition" not in kept, "the server notifies on every change"

    bench = run(pki, scenario)
    record = bench.store.get(owner)
    assert record is not None and record.device_information is not None
    assert record.device_information.gps_location is not None
    assert record.der_settings is not None and record.der_settings.set_v_nom is not None
    (mirror,) = bench.store.mirrors.values()
    assert mirror.readings and not mirror.readings[0].mirror_reading_sets, "interval data dropped"


# --- hostile input ----------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<DeviceInformation xmlns="urn:ieee:std:2030.5:ns"><mfModel>&lol3;</mfModel></DeviceInformation>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<DeviceInformation xmlns="urn:ieee:std:2030.5:ns"><mfModel>&x;</mfModel></DeviceInformation>"""


def _deep(levels: int) -> bytes:
    return b'<DeviceInformation xmlns="urn:ieee:std:2030.5:ns">' + b"<a>" * levels + b"</a>" * (
        levels
    ) + b"</DeviceInformation>"  # fmt: skip


def _odd_hex(owner: str) -> bytes:
    return device_information(owner).replace(f"<lFDI>{owner}".encode(), f"<lFDI>{owner}A".encode())


def _long_string(owner: str) -> bytes:
    """mfModel is a String32: 33 bytes is one too many (our own model would refuse to
    write it, so the bytes are edited)."""
    return device_information(owner).replace(b"ISM-TEST-0001", b"M" * 33)


def _wrong_namespace(owner: str) -> bytes:
    return device_information(owner).replace(b"urn:ieee:std:2030.5:ns", b"urn:example:other")


HOSTILE: dict[str, tuple[Callable[[str], bytes], dict[str, str], int]] = {
    "billion-laughs": (lambda o: BILLION_LAUGHS, SEP, 400),
    "external-entity": (lambda o: EXTERNAL_ENTITY, SEP, 400),
    "ten-megabytes": (lambda o: b"<" * (10 * 1024 * 1024), SEP, 413),
    "deep-nesting": (lambda o: _deep(200), SEP, 400),
    "odd-length-hex": (_odd_hex, SEP, 400),
    "over-long-string": (_long_string, SEP, 400),
    "wrong-namespace": (_wrong_namespace, SEP, 400),
    "wrong-media-type": (device_information, {"Content-Type": "application/xml"}, 415),
    "no-media-type": (device_information, {"Content-Type": ""}, 415),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_is_refused_logged_and_changes_nothing(
    pki: PkiLayout, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    make, headers, expected = HOSTILE[case]
    owner = pev_lfdi(pki)

    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            status, _, _ = await bench.send(pev, "PUT", "/edev/0/di", make(owner), headers=headers)
            assert status == expected
            assert (await bench.get(pev, "/edev/0/di"))[0] == 404, "nothing was stored"
            assert (await bench.get(pev, "/dcap"))[0] == 200, "the server is unaffected"
            good = device_information(owner)
            assert (await bench.send(pev, "PUT", "/edev/0/di", good))[0] == 204

    with caplog.at_level(logging.WARNING, logger="firmware.sep2.server"):
        run(pki, scenario)
    refusals = [r.getMessage() for r in caplog.records if "sep2.refused" in r.getMessage()]
    assert any(f"status={expected}" in line and owner in line for line in refusals), refusals


def test_a_chunked_body_over_the_cap_is_refused_without_a_length(pki: PkiLayout) -> None:
    async def scenario(bench: Bench) -> None:
        async def chunks() -> Any:
            for _ in range(100):
                yield b"x" * 4096

        async with bench.client() as pev:
            async with pev.put(bench.base + "/edev/0/di", data=chunks(), headers=SEP) as reply:
                assert reply.status == 413
            assert (await bench.get(pev, "/dcap"))[0] == 200

    run(pki, scenario)


# --- subscriptions and notifications ----------------------------------------------------


def test_a_subscriber_is_notified_when_its_permission_changes(pki: PkiLayout) -> None:
    received: list[Notification] = []
    d = pki.directory

    async def scenario(bench: Bench) -> None:
        async def notify(request: web.Request) -> web.Response:
            received.append(Notification.from_xml(await request.read()))
            return web.Response(status=201)

        app = web.Application()
        app.router.add_post("/notify", notify)
        runner = web.AppRunner(app)
        await runner.setup()
        listen = server_context(d / "serca.pem", d / "pev-certified-4q.pem",
                                d / "pev-certified-4q.key")  # fmt: skip
        site = web.TCPSite(runner, "::1", 0, ssl_context=listen)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with bench.client() as pev:
                target = "/edev/0/derp/0/dderc"
                elsewhere = _subscription(target, "https://[::2]:1/notify")
                status, reason, _ = await bench.send(pev, "POST", "/edev/0/sub", elsewhere)
                assert status == 400 and "own address" in reason
                status, _, _ = await bench.send(
                    pev, "POST", "/edev/0/sub", _subscription("/tm", f"https://[::1]:{port}/n")
                )
                assert status == 400, "only the four subscribable resources"
                mine = _subscription(target, f"https://[::1]:{port}/notify")
                status, _, location = await bench.send(pev, "POST", "/edev/0/sub", mine)
                assert status == 201 and location == "/edev/0/sub/0"
                await _notify_energize(bench, pki)
                for _ in range(100):
                    if received:
                        break
                    await asyncio.sleep(0.02)
                assert (await bench.send(pev, "DELETE", location, b""))[0] == 204
        finally:
            await runner.cleanup()

    bench = run(pki, scenario)
    (note,) = received
    assert note.subscribed_resource == "/edev/0/derp/0/dderc"
    # absolute (the schema's SHALL): the server as the vehicle reached it, then the path
    assert note.subscription_uri == bench.base + "/edev/0/sub/0"
    assert isinstance(note.resource, DefaultDERControl)
    assert note.resource.der_control_base.op_mod_energize is True


def _subscription(resource: str, uri: str) -> bytes:
    return Subscription(
        subscribed_resource=resource, encoding=0, level="+S1", limit=1, notification_uri=uri
    ).to_xml()


async def _notify_energize(bench: Bench, pki: PkiLayout) -> None:
    """What Sep2Service.set_energize does, on this bench's store and site."""
    from firmware.sep2.notify import SubscriptionNotifier

    d = pki.directory
    notifier = SubscriptionNotifier(client_context(d / "serca.pem", d / "evse.pem", d / "evse.key"))
    record = bench.store.get(pev_lfdi(pki))
    assert record is not None
    record.energize = True
    site = bench.server.handlers.site
    assert notifier.changed(record, "/edev/0/derp/0/dderc", site.default_control(record)) == 1
    for _ in range(100):
        if notifier.delivered:
            break
        await asyncio.sleep(0.02)
    await notifier.close()
    assert notifier.delivered == 1


# --- the official schema, when a copy is at hand ----------------------------------------


def _validate_all(bodies: list[bytes]) -> None:
    path = os.environ.get("SEP2_SCHEMA_PATH")
    if not path:
        return  # the element-order golden tests cover the order (tests/unit/test_sep2_models)
    schema = etree.XMLSchema(etree.parse(path))
    for body in bodies:
        document = etree.fromstring(body)
        assert schema.validate(document), (body[:200], schema.error_log.last_error)


def test_every_emitted_body_validates_against_the_official_schema(pki: PkiLayout) -> None:
    if not os.environ.get("SEP2_SCHEMA_PATH"):
        pytest.skip(
            "SEP2_SCHEMA_PATH is not set: the IEEE 2030.5 schema is copyrighted and not "
            "shipped; point it at a local sep.xsd to run"
        )
    test_the_profile_tree_from_dcap(pki)


def test_responses_are_kept_under_their_location(pki: PkiLayout) -> None:
    owner = pev_lfdi(pki)
    plain = Response(end_device_lfdi=owner, status=1, subject="AB" * 16).to_xml()
    prefixed = (
        b'<sep:DERControlResponse xmlns:sep="urn:ieee:std:2030.5:ns">'
        b"<sep:endDeviceLFDI>" + owner.encode() + b"</sep:endDeviceLFDI>"
        b"<sep:status>2</sep:status><sep:subject>" + b"CD" * 16 + b"</sep:subject>"
        b"</sep:DERControlResponse>"
    )

    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            _, first = await bench.get(pev, "/edev")
            locations = []
            for body in (plain, prefixed):
                status, reason, location = await bench.send(pev, "POST", "/rsps/0/rsp", body)
                assert status == 201, reason
                locations.append(location)
            assert locations == ["/rsps/0/rsp/0", "/rsps/0/rsp/1"]
            status, body = await bench.get(pev, locations[1])
            assert status == 200 and b"CDCD" in body
            await asyncio.sleep(1.1)
            _, again = await bench.get(pev, "/edev")
            assert first == again, "the EndDevice (changedTime included) does not move"
            other = Response(end_device_lfdi="AB" * 20, status=1, subject="AB" * 16).to_xml()
            status, reason, _ = await bench.send(pev, "POST", "/rsps/0/rsp", other)
            assert status == 400 and "endDeviceLFDI" in reason

    run(pki, scenario)


def test_only_the_whole_control_list_counts_as_reading_the_controls(pki: PkiLayout) -> None:
    """§4.8.3: a vehicle waking must re-read every control; an empty page (l=0) or a page
    past the end is not that read."""
    reads: dict[str, bool] = {}

    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            await bench.get(pev, "/dcap")
            record = bench.store.get(pev_lfdi(pki))
            assert record is not None
            for query in ("?l=0", "?s=99"):
                status, _ = await bench.get(pev, "/edev/0/derp/0/derc" + query)
                assert status == 200
                reads[query] = SiteRead.CONTROLS in record.read_at_ns
            await bench.get(pev, "/edev/0/derp/0/derc")
            reads["whole"] = SiteRead.CONTROLS in record.read_at_ns

    run(pki, scenario)
    assert reads == {"?l=0": False, "?s=99": False, "whole": True}
