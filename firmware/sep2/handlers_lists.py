"""The program the vehicle follows and what it posts back: FunctionSetAssignments ->
DERProgram -> DefaultDERControl, DERControlList, DERCurveList; the Response list; the
SubscriptionList; the MirrorUsagePointList.

Lists hold one page (the profile's lists are tiny). A Response must carry the caller's own
LFDI; a subscription may only name one of the four subscribable resources and a
notificationURI on the subscriber's own address (the EVSE never POSTs elsewhere).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from firmware.sep2 import paths
from firmware.sep2.base import Resource
from firmware.sep2.control import DERControlList
from firmware.sep2.curve import DERCurveList
from firmware.sep2.metering import MirrorMeterReading, MirrorUsagePoint, MirrorUsagePointList
from firmware.sep2.program import (
    DERProgram,
    DERProgramList,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
)
from firmware.sep2.pubsub import Subscription, SubscriptionList
from firmware.sep2.response import (
    DERControlResponse,
    Response,
    ResponseList,
    ResponseSet,
    ResponseSetList,
)
from firmware.sep2.site import SiteResources, mrid
from firmware.sep2.store import MirrorRecord, PevRecord, Sep2Store, SiteRead
from firmware.sep2.tls import PeerIdentity
from firmware.sep2.values import Link, ListLink
from firmware.sep2.xml import MEDIA_TYPE, Sep2InputError

POLL_RATE_S = 1
IDENTITY = web.RequestKey("identity", PeerIdentity)  # set by the server's TLS middleware
SUBSCRIBABLE = (paths.FSA_LIST, paths.PROGRAM_LIST, paths.DEFAULT_CONTROL, paths.CONTROL_LIST)


def xml(model: Resource, status: int = 200, location: str | None = None) -> web.Response:
    headers = {"Location": location} if location else None
    return web.Response(status=status, body=model.to_xml(), content_type=MEDIA_TYPE,
                        headers=headers)  # fmt: skip


def created(location: str) -> web.Response:
    return web.Response(status=201, headers={"Location": location})


class ListHandlers:
    def __init__(
        self,
        site: SiteResources,
        store: Sep2Store,
        clock_ns: Callable[[], int],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.site = site
        self.store = store
        self.clock_ns = clock_ns
        self.wall_clock = wall_clock

    def register_lists(self, router: web.UrlDispatcher) -> None:
        n = "/edev/{n:\\d+}/"
        router.add_get(n + paths.FSA_LIST, self.fsa_list)
        router.add_get(n + paths.FSA, self.fsa)
        router.add_get(n + paths.PROGRAM_LIST, self.program_list)
        router.add_get(n + paths.PROGRAM, self.program)
        router.add_get(n + paths.DEFAULT_CONTROL, self.default_control)
        router.add_get(n + paths.CONTROL_LIST, self.control_list)
        router.add_get(n + paths.CONTROL_LIST + "/{k:\\d+}", self.control)
        router.add_get(n + paths.CURVE_LIST, self.curve_list)
        router.add_get(n + paths.CURVE_LIST + "/{k:\\d+}", self.curve)
        router.add_get(n + paths.SUBSCRIPTIONS, self.subscriptions)
        router.add_post(n + paths.SUBSCRIPTIONS, self.subscribe)
        router.add_get(n + paths.SUBSCRIPTIONS + "/{k:\\d+}", self.subscription)
        router.add_delete(n + paths.SUBSCRIPTIONS + "/{k:\\d+}", self.unsubscribe)
        router.add_get(paths.RESPONSE_SETS, self.response_sets)
        router.add_get(paths.RESPONSE_SET, self.response_set)
        router.add_get(paths.RESPONSES, self.responses)
        router.add_post(paths.RESPONSES, self.respond)
        router.add_get(paths.RESPONSES + "/{k:\\d+}", self.response)
        router.add_get(paths.MIRRORS, self.mirrors)
        router.add_post(paths.MIRRORS, self.add_mirror)
        router.add_get(paths.MIRRORS + "/{k:\\d+}", self.mirror)
        router.add_post(paths.MIRRORS + "/{k:\\d+}", self.add_reading)

    # --- whose request is this ---------------------------------------------------------

    def record(self, request: web.Request) -> PevRecord:
        return self.store.record_for(request[IDENTITY], int(self.wall_clock()))

    def mine(self, request: web.Request) -> PevRecord:
        """The caller's record, if the ``n`` in the path is the caller's; else 404."""
        record = self.record(request)
        if int(request.match_info["n"]) != record.n:
            raise web.HTTPNotFound(text="no such EndDevice")
        return record

    # --- the program -------------------------------------------------------------------

    async def fsa_list(self, request: web.Request) -> web.Response:
        n = self.mine(request).n
        return xml(FunctionSetAssignmentsList(
            href=paths.under(n, paths.FSA_LIST), subscribable=1, all=1, results=1,
            poll_rate=POLL_RATE_S, function_set_assignments=(self._fsa(n),),
        ))  # fmt: skip

    async def fsa(self, request: web.Request) -> web.Response:
        return xml(self._fsa(self.mine(request).n))

    async def program_list(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        return xml(DERProgramList(
            href=paths.under(record.n, paths.PROGRAM_LIST), subscribable=1, all=1, results=1,
            poll_rate=POLL_RATE_S, der_programs=(self._program(record),),
        ))  # fmt: skip

    async def program(self, request: web.Request) -> web.Response:
        return xml(self._program(self.mine(request)))

    async def default_control(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        self.store.note_read(record, SiteRead.DEFAULT_CONTROL, self.clock_ns())
        return xml(self.site.default_control(record))

    async def control_list(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        self.store.note_read(record, SiteRead.CONTROLS, self.clock_ns())
        controls = self.site.controls(record)
        return xml(DERControlList(
            href=paths.under(record.n, paths.CONTROL_LIST), subscribable=1,
            all=len(controls), results=len(controls), der_controls=controls,
        ))  # fmt: skip

    async def control(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        k = int(request.match_info["k"])
        return xml(_pick(self.site.controls(record), paths.control(record.n, k)))

    async def curve_list(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        curves = self.site.curves(record)
        return xml(DERCurveList(href=paths.under(record.n, paths.CURVE_LIST), all=len(curves),
                                results=len(curves), der_curves=curves))  # fmt: skip

    async def curve(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        k = int(request.match_info["k"])
        return xml(_pick(self.site.curves(record), paths.curve(record.n, k)))

    def _fsa(self, n: int) -> FunctionSetAssignments:
        return FunctionSetAssignments(
            href=paths.under(n, paths.FSA),
            der_program_list_link=ListLink(href=paths.under(n, paths.PROGRAM_LIST), all=1),
            time_link=Link(href=paths.TIME),
            mrid=mrid(self.site.evse_lfdi, "fsa"),
            description="site program",
        )

    def _program(self, record: PevRecord) -> DERProgram:
        n = record.n
        controls = len(self.site.controls(record))
        return DERProgram(
            href=paths.under(n, paths.PROGRAM),
            mrid=mrid(self.site.evse_lfdi, "program"),
            description="site IEEE 1547 functions",
            default_der_control_link=Link(href=paths.under(n, paths.DEFAULT_CONTROL)),
            der_control_list_link=ListLink(href=paths.under(n, paths.CONTROL_LIST), all=controls),
            der_curve_list_link=ListLink(
                href=paths.under(n, paths.CURVE_LIST), all=len(self.site.curves(record))
            ),
            primacy=0,
        )

    # --- subscriptions -----------------------------------------------------------------

    async def subscriptions(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        subs = tuple(record.subscriptions[k] for k in sorted(record.subscriptions))
        return xml(SubscriptionList(href=paths.under(record.n, paths.SUBSCRIPTIONS),
                                    all=len(subs), results=len(subs), poll_rate=POLL_RATE_S,
                                    subscriptions=subs))  # fmt: skip

    async def subscribe(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        sub = Subscription.from_xml(await request.read())
        allowed = [paths.under(record.n, tail) for tail in SUBSCRIBABLE]
        if sub.subscribed_resource not in allowed:
            raise Sep2InputError(f"subscribedResource must be one of {', '.join(allowed)}")
        _check_notification_uri(sub.notification_uri, request.remote)
        k = self.store.subscribe(record, sub)
        href = paths.subscription(record.n, k)
        record.subscriptions[k] = Subscription(
            href=href, subscribed_resource=sub.subscribed_resource, encoding=sub.encoding,
            level=sub.level, limit=sub.limit, notification_uri=sub.notification_uri,
        )  # fmt: skip
        return created(href)

    async def subscription(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        sub = record.subscriptions.get(int(request.match_info["k"]))
        if sub is None:
            raise web.HTTPNotFound(text="no such subscription")
        return xml(sub)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        if record.subscriptions.pop(int(request.match_info["k"]), None) is None:
            raise web.HTTPNotFound(text="no such subscription")
        return web.Response(status=204)

    # --- responses ---------------------------------------------------------------------

    async def response_sets(self, request: web.Request) -> web.Response:
        return xml(ResponseSetList(href=paths.RESPONSE_SETS, all=1, results=1,
                                   response_sets=(self._response_set(),)))  # fmt: skip

    async def response_set(self, request: web.Request) -> web.Response:
        return xml(self._response_set())

    def _response_set(self) -> ResponseSet:
        return ResponseSet(href=paths.RESPONSE_SET, mrid=mrid(self.site.evse_lfdi, "responses"),
                           response_list_link=ListLink(href=paths.RESPONSES))  # fmt: skip

    async def responses(self, request: web.Request) -> web.Response:
        mine = tuple(self.record(request).responses.values())
        return xml(ResponseList(href=paths.RESPONSES, all=len(mine), results=len(mine),
                                responses=mine))  # fmt: skip

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
        found = self.record(request).responses.get(int(request.match_info["k"]))
        if found is None:
            raise web.HTTPNotFound(text="no such Response")
        return xml(found)

    # --- mirrored metering -------------------------------------------------------------

    async def mirrors(self, request: web.Request) -> web.Response:
        lfdi = self.record(request).lfdi
        points = tuple(m.point for m in self.store.mirrors.values() if m.owner_lfdi == lfdi)
        listed = MirrorUsagePointList(
            href=paths.MIRRORS, all=len(points), results=len(points), mirror_usage_points=points
        )
        return xml(listed)

    async def add_mirror(self, request: web.Request) -> web.Response:
        record = self.record(request)
        point = MirrorUsagePoint.from_xml(await request.read()).latest_only()
        if point.device_lfdi.upper() != record.lfdi:
            raise Sep2InputError("deviceLFDI is not the certificate's LFDI")
        return created(paths.mirror(self.store.add_mirror(record, point)))

    async def mirror(self, request: web.Request) -> web.Response:
        return xml(self._own_mirror(request).point)

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


def _pick(items: tuple[Resource, ...], href: str) -> Resource:
    """The listed item at ``href`` (a session's controls and curves keep their numbers when
    others are superseded)."""
    for item in items:
        if item.href == href:
            return item
    raise web.HTTPNotFound(text="no such item")


def _check_notification_uri(uri: str, remote: str | None) -> None:
    """HTTPS to the subscriber itself only: a vehicle must not make the EVSE POST elsewhere."""
    parts = urlsplit(uri)
    if parts.scheme != "https" or not parts.hostname:
        raise Sep2InputError("notificationURI must be an https URI")
    try:
        target = ipaddress.ip_address(parts.hostname.split("%")[0])
        peer = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        raise Sep2InputError("notificationURI must name the subscriber's own address") from None
    if target != peer:
        raise Sep2InputError("notificationURI must name the subscriber's own address")
