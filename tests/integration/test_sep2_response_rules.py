"""The response rules real 2030.5 clients depend on, against the real server over TLS
(docs/v2g-ac-profile.md, "Response rules real clients depend on"): an ``href`` on every resource
of every GET response, list members included; list paging by ``s``, ``a`` and ``l``; bad paging
values answered 400 with a reason."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from lxml import etree

from firmware.sep2.registry import RESOURCE_TYPES
from tests.integration.test_sep2_server import Bench, pev_lfdi, run
from tests.integration.test_sep2_server import pki as pki  # the module's fixture
from tests.unit import sep2_maximal as maximal

pytestmark = pytest.mark.integration

NS = "urn:ieee:std:2030.5:ns"
# the vehicle's own link, echoed in the DeviceInformation it PUT: the EVSE serves no locales
VEHICLE_LINKS = {"SupportedLocaleListLink"}
PUTS = {"di": maximal.device_information, "ps": maximal.power_status,
        "der/0/dercap": maximal.der_capability, "der/0/derg": maximal.der_settings,
        "der/0/dera": maximal.der_availability, "der/0/ders": maximal.der_status}  # fmt: skip
# what the issue found without an href: the vehicle's resources read back, posted ones, lists
ONCE_WITHOUT_HREF = {"/edev/0/di", "/edev/0/ps", "/edev/0/der/0/dercap", "/edev/0/der/0/derg",
                     "/edev/0/der/0/dera", "/edev/0/der/0/ders", "/mup", "/mup/0",
                     "/rsps/0/rsp", "/rsps/0/rsp/0"}  # fmt: skip
LISTS = ["/edev", "/sdev/der", "/edev/0/der", "/edev/0/fsa", "/edev/0/derp",
         "/edev/0/derp/0/derc", "/edev/0/derp/0/dc", "/edev/0/sub", "/rsps", "/rsps/0/rsp",
         "/mup"]  # fmt: skip


async def populate(bench: Bench, pev: aiohttp.ClientSession, owner: str) -> None:
    """Everything a vehicle may put on the server: its data, two Responses, a mirror with a
    reading, a subscription."""
    for tail, make in PUTS.items():
        body = make(owner) if make is maximal.device_information else make()  # type: ignore[call-arg]
        assert (await bench.send(pev, "PUT", f"/edev/0/{tail}", body))[0] == 204, tail
    for created in (1_700_000_000, 1_700_000_100):
        body = maximal.response(owner).replace(b"1700000000", str(created).encode())
        assert (await bench.send(pev, "POST", "/rsps/0/rsp", body))[0] == 201
    status, _, mup = await bench.send(pev, "POST", "/mup", maximal.mirror_usage_point(owner))
    assert status == 201
    assert (await bench.send(pev, "POST", mup, maximal.mirror_meter_reading()))[0] == 204
    sub = maximal.subscription("/edev/0/derp/0/derc", "https://[::1]:1/n")
    assert (await bench.send(pev, "POST", "/edev/0/sub", sub))[0] == 201


async def crawl(bench: Bench, pev: aiohttp.ClientSession) -> dict[str, bytes]:
    """Every body reachable from /dcap by following hrefs, by path."""
    seen: dict[str, bytes] = {}
    pending = ["/dcap"]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        status, body = await bench.get(pev, path)
        assert status == 200, (path, body)
        seen[path] = body
        for element in etree.fromstring(body).iter():
            href = element.get("href")
            if href and etree.QName(element).localname not in VEHICLE_LINKS:
                pending.append(href)
    return seen


def resources_without_href(body: bytes) -> list[str]:
    """Every element of ``body`` that is a 2030.5 resource (the document and each resource in
    it, list members included) and carries no href."""
    root = etree.fromstring(body)
    missing = [] if root.get("href") else [etree.QName(root).localname]
    for element in root.iterdescendants():
        name = etree.QName(element).localname
        if name in RESOURCE_TYPES and not element.get("href"):
            missing.append(name)
    return missing


def test_every_resource_in_every_get_response_has_an_href(pki: Any) -> None:
    owner = pev_lfdi(pki)
    bodies: dict[str, bytes] = {}

    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            await populate(bench, pev, owner)
            bodies.update(await crawl(bench, pev))

    run(pki, scenario)
    assert set(bodies) >= ONCE_WITHOUT_HREF, sorted(bodies)
    assert {"/mup/0/mr/0", "/edev/0/sub/0", "/rsps/0/rsp/1"} <= set(bodies), "members served"
    missing = {path: m for path, body in bodies.items() if (m := resources_without_href(body))}
    assert missing == {}
    mirrors = etree.fromstring(bodies["/mup"])
    assert [e.get("href") for e in mirrors.iter(f"{{{NS}}}MirrorMeterReading")] == ["/mup/0/mr/0"]


def _page(body: bytes) -> tuple[int, int, list[str]]:
    root = etree.fromstring(body)
    members = [e.get("href") or "" for e in root if e.get("href")]
    return int(root.get("all", "-1")), int(root.get("results", "-1")), members


def test_every_list_honours_start_and_limit(pki: Any) -> None:
    owner = pev_lfdi(pki)

    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            await populate(bench, pev, owner)
            for path in LISTS:
                _, whole = await bench.get(pev, path)
                total, results, members = _page(whole)
                assert total == results == len(members) >= 1, (path, "no l: the whole list")
                pages = {"?l=0": [], "?s=1": members[1:], "?s=0&l=1": members[:1],
                         f"?s={total}": []}  # fmt: skip
                for query, expected in pages.items():
                    status, body = await bench.get(pev, path + query)
                    assert status == 200, (path, query, body)
                    assert _page(body) == (total, len(expected), expected), (path, query)

    run(pki, scenario)


def test_a_middle_page_of_the_control_list(pki: Any) -> None:
    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            _, whole = await bench.get(pev, "/edev/0/derp/0/derc")
            _, _, members = _page(whole)
            status, body = await bench.get(pev, "/edev/0/derp/0/derc?s=2&l=2")
            assert status == 200
            assert _page(body) == (9, 2, members[2:4])

    run(pki, scenario)


def test_after_keeps_the_items_at_or_after_a_time(pki: Any) -> None:
    owner = pev_lfdi(pki)

    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            await populate(bench, pev, owner)
            _, body = await bench.get(pev, "/rsps/0/rsp?a=1700000050")
            assert _page(body) == (2, 1, ["/rsps/0/rsp/1"]), "only the later Response"
            _, controls = await bench.get(pev, "/edev/0/derp/0/derc")
            start = int(etree.fromstring(controls).findtext(f".//{{{NS}}}start") or "0")
            _, body = await bench.get(pev, f"/edev/0/derp/0/derc?a={start}")
            assert _page(body)[:2] == (9, 9)
            _, body = await bench.get(pev, f"/edev/0/derp/0/derc?a={start + 1}")
            assert _page(body)[:2] == (9, 0), "every control starts before that"
            _, body = await bench.get(pev, "/edev/0/fsa?a=4000000000")
            assert _page(body)[:2] == (1, 1), "a list without times ignores a"

    run(pki, scenario)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("s=-1", "query parameter s: -1 is outside 0..4294967295"),
        ("l=4294967296", "query parameter l: 4294967296 is outside 0..4294967295"),
        ("l=abc", "query parameter l: not an integer"),
        ("s=", "query parameter s: not an integer"),
        ("a=1.5", "query parameter a: not an integer"),
        ("a=99999999999999999999", "query parameter a: 99999999999999999999 is outside"),
    ],
)
def test_bad_paging_values_are_refused_with_a_reason(pki: Any, query: str, reason: str) -> None:
    async def scenario(bench: Bench) -> None:
        async with bench.client() as pev:
            for path in ("/edev/0/derp/0/derc", "/mup", "/edev"):
                status, body = await bench.get(pev, f"{path}?{query}")
                assert status == 400 and reason in body.decode(), (path, status, body)
            assert (await bench.get(pev, "/dcap"))[0] == 200, "the server is unaffected"

    run(pki, scenario)
