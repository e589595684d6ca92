"""The PEV's own HTTPS endpoint for the EVSE's 2030.5 Notifications (pub/sub).

A small aiohttp server on the vehicle's address (the local address of its connection to the
EVSE), mutual TLS with the vehicle's certificate and the SERCA (``server_context``). Only the
EVSE may notify: a client whose certificate's LFDI is not the EVSE's gets a 403. A body must be
an ``application/sep+xml`` Notification; each one accepted is handed to ``on_notification``
(synchronously, no I/O: the watcher decides what to do) and answered 204. What a notification
means to the session is ``hil.pev.client``'s business.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from firmware.logs import log_event
from firmware.sep2.pubsub import Notification
from firmware.sep2.tls import TlsError, peer_identity
from firmware.sep2.xml import MAX_BODY_BYTES, MEDIA_TYPE, Sep2InputError

logger = logging.getLogger(__name__)

NOTIFY_PATH = "/notify"


def uri_host(address: str) -> str:
    """An IP address as a URI host: IPv6 in brackets, a zone's ``%`` escaped (RFC 6874)."""
    return f"[{address.replace('%', '%25')}]" if ":" in address else address


class NotificationListener:
    def __init__(
        self,
        context: ssl.SSLContext,
        host: str,
        evse_lfdi: str,
        on_notification: Callable[[Notification], None],
    ) -> None:
        self.context = context
        self.host = host
        self.evse_lfdi = evse_lfdi.upper()
        self.on_notification = on_notification
        self.received = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def uri(self) -> str:
        return f"https://{uri_host(self.host)}:{self.port}{NOTIFY_PATH}"

    async def start(self) -> str:
        """Listen on a free port of ``host``; returns the notificationURI. Raises OSError."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(NOTIFY_PATH, self._notify)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.context)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else 0
        log_event(logger, "pev.listening", uri=self.uri)
        return self.uri

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _notify(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            status, reason = refusal
            log_event(
                logger, "pev.notification.refused", logging.WARNING, status=status, reason=reason
            )
            return web.Response(status=status, text=reason + "\n")
        try:
            notification = Notification.from_xml(await request.read())
        except Sep2InputError as err:
            return web.Response(status=400, text=err.reason + "\n")
        self.received += 1
        self.on_notification(notification)
        return web.Response(status=204)

    def _refusal(self, request: web.Request) -> tuple[int, str] | None:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        try:
            if ssl_object is None:
                raise TlsError("not a TLS connection")
            identity = peer_identity(ssl_object)
        except TlsError as err:
            return 403, str(err)
        if identity.lfdi != self.evse_lfdi:
            return 403, f"only the EVSE ({self.evse_lfdi}) may notify, not {identity.lfdi}"
        if request.content_type != MEDIA_TYPE:
            return 415, f"media type must be {MEDIA_TYPE}"
        return None
