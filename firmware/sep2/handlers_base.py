"""What every 2030.5 handler shares: whose request it is, how a resource is answered, and how a
list is paged.

Owns the answer to a GET: a resource always goes out with its ``href`` (2030.5 requires it on
every resource in a response to a GET, list members included: docs/v2g-ac-profile.md, "Response
rules real clients depend on"), and a list is cut to the page its query asks for
(``firmware.sep2.paging``). The resources themselves are in the sibling handler modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from aiohttp import web

from firmware.sep2.base import Resource
from firmware.sep2.paging import page_of
from firmware.sep2.site import SiteResources
from firmware.sep2.store import PevRecord, Sep2Store
from firmware.sep2.tls import PeerIdentity
from firmware.sep2.xml import MEDIA_TYPE

POLL_RATE_S = 1  # the profile's 1 s poll rate (§4.1.4)
IDENTITY = web.RequestKey("identity", PeerIdentity)  # set by the server's TLS middleware
R = TypeVar("R", bound=Resource)


def xml(model: Resource, status: int = 200, location: str | None = None) -> web.Response:
    headers = {"Location": location} if location else None
    return web.Response(status=status, body=model.to_xml(), content_type=MEDIA_TYPE,
                        headers=headers)  # fmt: skip


def created(location: str) -> web.Response:
    return web.Response(status=201, headers={"Location": location})


def at(resource: R, href: str) -> R:
    """``resource`` as served at ``href`` (a PUT or POSTed body carries no href, or its own)."""
    return resource if resource.href == href else replace(resource, href=href)


def page(
    request: web.Request, items: Sequence[R], time_of: Callable[[R], int] | None = None
) -> tuple[tuple[R, ...], int]:
    """The page of ``items`` the request's ``s``, ``a`` and ``l`` ask for, and how many there
    are in all. A bad parameter raises ``Sep2InputError`` (a 400)."""
    return page_of(request.query).cut(items, time_of), len(items)


class HandlerBase:
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

    def record(self, request: web.Request) -> PevRecord:
        return self.store.record_for(request[IDENTITY], int(self.wall_clock()))

    def mine(self, request: web.Request) -> PevRecord:
        """The caller's record, if the ``n`` in the path is the caller's; else 404."""
        record = self.record(request)
        if int(request.match_info["n"]) != record.n:
            raise web.HTTPNotFound(text="no such EndDevice")
        return record
