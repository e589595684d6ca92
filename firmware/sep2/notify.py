"""Notifications: the EVSE POSTs a changed subscribable resource to each subscriber's
notificationURI, over TLS 1.2 CCM8 with its own device certificate (2030.5 §12 pub/sub).

Polling stays a valid fallback (the profile's 1 s poll rate), so a notification that cannot
be delivered is logged and dropped, never retried in a loop, and never blocks the caller:
each delivery is its own task with a short timeout.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import aiohttp

from firmware.logs import log_event
from firmware.sep2 import paths
from firmware.sep2.base import Resource
from firmware.sep2.pubsub import Notification
from firmware.sep2.store import PevRecord
from firmware.sep2.xml import MEDIA_TYPE

logger = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 2.0
STATUS_DEFAULT = 0  # Notification.status: 0 = the resource changed (default status)


class SubscriptionNotifier:
    def __init__(self, client_context: ssl.SSLContext) -> None:
        self._context = client_context
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    def changed(self, record: PevRecord, href: str, resource: Resource) -> int:
        """``resource`` (served at ``href``) changed for this vehicle: notify its
        subscribers. Returns how many deliveries were started."""
        started = 0
        for k, sub in record.subscriptions.items():
            base = record.subscription_bases.get(k)
            if sub.subscribed_resource != href or base is None:
                continue
            note = Notification(
                subscribed_resource=href,
                resource=resource,
                status=STATUS_DEFAULT,
                # absolute, as the schema requires: where the vehicle reached the server
                subscription_uri=base + (sub.href or paths.subscription(record.n, k)),
            )
            task = asyncio.create_task(self._deliver(sub.notification_uri, note, record.lfdi))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def _deliver(self, uri: str, note: Notification, lfdi: str) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._context, limit=4)
            timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        try:
            async with self._session.post(
                uri, data=note.to_xml(), headers={"Content-Type": MEDIA_TYPE}
            ) as reply:
                ok = 200 <= reply.status < 300
                status = str(reply.status)
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError) as err:
            ok, status = False, type(err).__name__
        if ok:
            self.delivered += 1
        else:
            self.failed += 1
        log_event(logger, "sep2.notify", logging.INFO if ok else logging.WARNING, lfdi=lfdi,
                  resource=note.subscribed_resource, uri=uri, result=status)  # fmt: skip

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()
