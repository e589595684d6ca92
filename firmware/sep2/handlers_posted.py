"""What the vehicle posts to the EVSE's own collections: Responses to ``/rsps/0/rsp`` (the
``replyTo`` of every control) and mirrored metering to ``/mup``.

A Response must carry the caller's own LFDI, a MirrorUsagePoint the caller's own deviceLFDI;
each vehicle sees only what it posted. What is read back carries the ``href`` it is served at:
the Response's Location, ``/mup/<k>`` for a mirror and ``/mup/<k>/mr/<j>`` for each of its
readings (docs/v2g-ac-profile.md, "Response rules real clients depend on").
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from firmware.sep2 import paths
from firmware.sep2.handlers_base import HandlerBase, at, created, page, xml
from firmware.sep2.metering import MirrorMeterReading, MirrorUsagePoint, MirrorUsagePointList
from firmware.sep2.response import (
    DERControlResponse,
    Response,
    ResponseList,
    ResponseSet,
    ResponseSetList,
)
from firmware.sep2.site import mrid
from firmware.sep2.store import MirrorRecord
from firmware.sep2.values import ListLink
from firmware.sep2.xml import Sep2InputError


class PostedHandlers(HandlerBase):
    def register_posted(self, router: web.UrlDispatcher) -> None:
        router.add_get(paths.RESPONSE_SETS, self.response_sets)
        router.add_get(paths.RESPONSE_SET, self.response_set)
        router.add_get(paths.RESPONSES, self.responses)
        router.add_post(paths.RESPONSES, self.respond)
        router.add_get(paths.RESPONSES + "/{k:\\d+}", self.response)
        router.add_get(paths.MIRRORS, self.mirrors)
        router.add_post(paths.MIRRORS, self.add_mirror)
        router.add_get(paths.MIRRORS + "/{k:\\d+}", self.mirror)
        router.add_post(paths.MIRRORS + "/{k:\\d+}", self.add_reading)
        router.add_get(paths.MIRRORS + "/{k:\\d+}/mr/{j:\\d+}", self.mirror_reading)

    # --- responses ---------------------------------------------------------------------

    async def response_sets(self, request: web.Request) -> web.Response:
        sets, total = page(request, (self._response_set(),))
        return xml(ResponseSetList(href=paths.RESPONSE_SETS, all=total, results=len(sets),
                                   response_sets=sets))  # fmt: skip

    async def response_set(self, request: web.Request) -> web.Response:
        return xml(self._response_set())

    def _response_set(self) -> ResponseSet:
        return ResponseSet(href=paths.RESPONSE_SET, mrid=mrid(self.site.evse_lfdi, "responses"),
                           response_list_link=ListLink(href=paths.RESPONSES))  # fmt: skip

    async def responses(self, request: web.Request) -> web.Response:
        mine = self.record(request).responses
        listed = [at(r, f"{paths.RESPONSES}/{k}") for k, r in mine.items()]
        found, total = page(request, listed, lambda r: r.created_date_time or 0)
        return xml(ResponseList(href=paths.RESPONSES, all=total, results=len(found),
                                responses=found))  # fmt: skip

    async def respond(self, request: web.Request) -> web.Response:
        record = self.record(request)
        body = await request.read()
        response: Response
        try:
            response = Response.from_xml(body)
        except Sep2InputError as err:  # a DERControlResponse is a Response by another name
            if "DERControlResponse" not in err.reason:
                raise
            response = DERControlResponse.from_xml(body)
        if response.end_device_lfdi.upper() != record.lfdi:
            raise Sep2InputError("endDeviceLFDI is not the certificate's LFDI")
        k = self.store.add_response(record, response)
        return created(f"{paths.RESPONSES}/{k}")

    async def response(self, request: web.Request) -> web.Response:
        k = int(request.match_info["k"])
        found = self.record(request).responses.get(k)
        if found is None:
            raise web.HTTPNotFound(text="no such Response")
        return xml(at(found, f"{paths.RESPONSES}/{k}"))

    # --- mirrored metering -------------------------------------------------------------

    async def mirrors(self, request: web.Request) -> web.Response:
        lfdi = self.record(request).lfdi
        mine = [_served(k, m) for k, m in self.store.mirrors.items() if m.owner_lfdi == lfdi]
        points, total = page(request, mine)
        return xml(MirrorUsagePointList(href=paths.MIRRORS, all=total, results=len(points),
                                        mirror_usage_points=points))  # fmt: skip

    async def add_mirror(self, request: web.Request) -> web.Response:
        record = self.record(request)
        point = MirrorUsagePoint.from_xml(await request.read()).latest_only()
        if point.device_lfdi.upper() != record.lfdi:
            raise Sep2InputError("deviceLFDI is not the certificate's LFDI")
        return created(paths.mirror(self.store.add_mirror(record, point)))

    async def mirror(self, request: web.Request) -> web.Response:
        k = int(request.match_info["k"])
        return xml(_served(k, self._own_mirror(request)))

    async def mirror_reading(self, request: web.Request) -> web.Response:
        """One of the mirror's readings, as last posted (or as the mirror declared it)."""
        k, j = int(request.match_info["k"]), int(request.match_info["j"])
        declared = _served(k, self._own_mirror(request)).mirror_meter_readings
        if j >= len(declared):
            raise web.HTTPNotFound(text="no such MirrorMeterReading")
        posted = [r for r in self.store.mirrors[k].readings if r.mrid == declared[j].mrid]
        href = paths.mirror_reading(k, j)
        return xml(_reading_at(posted[-1], href) if posted else declared[j])

    async def add_reading(self, request: web.Request) -> web.Response:
        record = self.record(request)
        self._own_mirror(request)
        reading = MirrorMeterReading.from_xml(await request.read()).latest_only()
        self.store.add_reading(record, int(request.match_info["k"]), reading)
        return web.Response(status=204)

    def _own_mirror(self, request: web.Request) -> MirrorRecord:
        mirror = self.store.mirrors.get(int(request.match_info["k"]))
        if mirror is None or mirror.owner_lfdi != self.record(request).lfdi:
            raise web.HTTPNotFound(text="no such MirrorUsagePoint")
        return mirror


def _served(k: int, mirror: MirrorRecord) -> MirrorUsagePoint:
    """The mirror as served at ``/mup/<k>``: its href, and one on each of its readings."""
    point = mirror.point
    readings = tuple(_reading_at(r, paths.mirror_reading(k, j))
                     for j, r in enumerate(point.mirror_meter_readings))  # fmt: skip
    return replace(point, href=paths.mirror(k), mirror_meter_readings=readings)


def _reading_at(reading: MirrorMeterReading, href: str) -> MirrorMeterReading:
    """A mirrored reading served at ``href``. The hrefs a vehicle gave its Reading and
    ReadingType name its own URIs, which this server does not serve: they are not echoed."""
    value = reading.reading
    kind = reading.reading_type
    return replace(
        reading,
        href=href,
        reading=None if value is None else replace(value, href=None),
        reading_type=None if kind is None else replace(kind, href=None),
    )
