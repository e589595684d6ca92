"""The program the vehicle follows and its subscriptions: FunctionSetAssignments ->
DERProgram -> DefaultDERControl, DERControlList, DERCurveList; the SubscriptionList.

Every list is paged by ``s``, ``a`` and ``l`` (``firmware.sep2.handlers_base.page``); the
DERControlList's time for ``a`` is each control's start. A subscription may only name one of
the four subscribable resources and a notificationURI on the subscriber's own address (the EVSE
never POSTs elsewhere). What a vehicle POSTs to the EVSE's own collections (Responses, mirrors)
is in ``firmware.sep2.handlers_posted``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from firmware.sep2 import paths
from firmware.sep2.base import Resource
from firmware.sep2.control import DERControl, DERControlList
from firmware.sep2.curve import DERCurveList
from firmware.sep2.handlers_base import IDENTITY, POLL_RATE_S, created, page, xml
from firmware.sep2.handlers_posted import PostedHandlers
from firmware.sep2.program import (
    DERProgram,
    DERProgramList,
    FunctionSetAssignments,
    FunctionSetAssignmentsList,
)
from firmware.sep2.pubsub import Subscription, SubscriptionList
from firmware.sep2.site import mrid
from firmware.sep2.store import PevRecord, SiteRead
from firmware.sep2.values import Link, ListLink
from firmware.sep2.xml import Sep2InputError

__all__ = ["IDENTITY", "ListHandlers", "xml"]  # the server and Handlers import them from here
SUBSCRIBABLE = (paths.FSA_LIST, paths.PROGRAM_LIST, paths.DEFAULT_CONTROL, paths.CONTROL_LIST)


class ListHandlers(PostedHandlers):
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
        self.register_posted(router)

    # --- the program -------------------------------------------------------------------

    async def fsa_list(self, request: web.Request) -> web.Response:
        n = self.mine(request).n
        found, total = page(request, (self._fsa(n),))
        return xml(FunctionSetAssignmentsList(
            href=paths.under(n, paths.FSA_LIST), subscribable=1, all=total, results=len(found),
            poll_rate=POLL_RATE_S, function_set_assignments=found,
        ))  # fmt: skip

    async def fsa(self, request: web.Request) -> web.Response:
        return xml(self._fsa(self.mine(request).n))

    async def program_list(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        found, total = page(request, (self._program(record),))
        return xml(DERProgramList(
            href=paths.under(record.n, paths.PROGRAM_LIST), subscribable=1, all=total,
            results=len(found), poll_rate=POLL_RATE_S, der_programs=found,
        ))  # fmt: skip

    async def program(self, request: web.Request) -> web.Response:
        return xml(self._program(self.mine(request)))

    async def default_control(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        self.store.note_read(record, SiteRead.DEFAULT_CONTROL, self.clock_ns())
        return xml(self.site.default_control(record))

    async def control_list(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        found, total = page(request, self.site.controls(record), _start)
        if len(found) == total:  # a page of it is not a read of every control (§4.8.3)
            self.store.note_read(record, SiteRead.CONTROLS, self.clock_ns())
        return xml(DERControlList(
            href=paths.under(record.n, paths.CONTROL_LIST), subscribable=1,
            all=total, results=len(found), der_controls=found,
        ))  # fmt: skip

    async def control(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        k = int(request.match_info["k"])
        return xml(_pick(self.site.controls(record), paths.control(record.n, k)))

    async def curve_list(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        found, total = page(request, self.site.curves(record))
        return xml(DERCurveList(href=paths.under(record.n, paths.CURVE_LIST), all=total,
                                results=len(found), der_curves=found))  # fmt: skip

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
        subs = [record.subscriptions[k] for k in sorted(record.subscriptions)]
        found, total = page(request, subs)
        return xml(SubscriptionList(href=paths.under(record.n, paths.SUBSCRIPTIONS),
                                    all=total, results=len(found), poll_rate=POLL_RATE_S,
                                    subscriptions=found))  # fmt: skip

    async def subscribe(self, request: web.Request) -> web.Response:
        record = self.mine(request)
        sub = Subscription.from_xml(await request.read())
        allowed = [paths.under(record.n, tail) for tail in SUBSCRIBABLE]
        if sub.subscribed_resource not in allowed:
            raise Sep2InputError(f"subscribedResource must be one of {', '.join(allowed)}")
        _check_notification_uri(sub.notification_uri, request.remote)
        k = self.store.subscribe(record, sub, server_base(request))
        href = paths.subscription(record.n, k)
        record.subscriptions[k] = Subscription(  # without its Condition: every change notifies
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
        if not self.store.unsubscribe(record, int(request.match_info["k"])):
            raise web.HTTPNotFound(text="no such subscription")
        return web.Response(status=204)


def _start(control: DERControl) -> int:
    """A control's time for the ``a`` (after) query parameter: when it starts."""
    return control.interval.start


def server_base(request: web.Request) -> str:
    """``https://host:port`` of the server as this vehicle reached it: the local address of its
    connection, never the Host header it sent (a Notification's subscriptionURI is absolute)."""
    name = request.transport.get_extra_info("sockname") if request.transport else None
    if not isinstance(name, tuple) or len(name) < 2:
        return f"{request.scheme}://{request.host}"
    host, port = str(name[0]), int(name[1])
    if ":" in host:  # IPv6: brackets, and a zone written %25 (RFC 6874)
        host = "[" + host.replace("%", "%25") + "]"
    return f"{request.scheme}://{host}:{port}"


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
