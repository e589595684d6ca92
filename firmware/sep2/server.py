"""The 2030.5 server: aiohttp over TLS 1.2 CCM8 with client certificates (``tls.py``).

Owns the transport rules every request passes before a handler sees it: the peer's identity
from its certificate (a non-P-256 key is refused and the connection closed), the media type
``application/sep+xml`` on bodies (415 otherwise), the 64 KiB body cap (413), and the answer
to bad input: 400 with the parser's one-line reason, logged, nothing changed. The resources
themselves are in ``handlers.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from firmware.logs import log_event
from firmware.sep2.handlers import Handlers
from firmware.sep2.handlers_lists import IDENTITY
from firmware.sep2.site import SiteResources
from firmware.sep2.store import Sep2Store, StoreFull
from firmware.sep2.tls import PeerIdentity, TlsError, peer_identity, server_context
from firmware.sep2.xml import MAX_BODY_BYTES, MEDIA_TYPE, Sep2InputError

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


STORE = web.AppKey("store", Sep2Store)


@web.middleware
async def _identity(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request is bound to the LFDI/SFDI of the certificate on its connection (and
    the store learns that the vehicle has this connection open)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    try:
        if ssl_object is None:
            raise TlsError("not a TLS connection")
        identity = peer_identity(ssl_object)
    except TlsError as err:
        log_event(logger, "sep2.refused", logging.WARNING, status=403, path=request.path,
                  reason=str(err))  # fmt: skip
        if request.transport is not None:
            request.transport.close()
        raise web.HTTPForbidden(text=f"{err}\n") from None
    request[IDENTITY] = identity
    if request.transport is not None:
        request.app[STORE].saw_connection(identity.lfdi, request.transport)
    return await handler(request)


@web.middleware
async def _refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad input gets a 4xx with a one-line reason, is logged, and changes nothing."""
    identity = request.get(IDENTITY)
    lfdi = identity.lfdi if identity is not None else "-"
    status, reason = 0, ""
    try:
        if request.method in ("PUT", "POST"):
            _check_body_headers(request)
        return await handler(request)
    except Sep2InputError as err:
        status, reason = 400, err.reason
    except StoreFull as err:
        status, reason = 409, str(err)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        status, reason = err.status, err.text or err.reason
        if status >= 500:
            raise
    log_event(logger, "sep2.refused", logging.WARNING, status=status, method=request.method,
              path=request.path, lfdi=lfdi, reason=reason.strip()[:200])  # fmt: skip
    return web.Response(status=status, text=reason.strip() + "\n")


def _check_body_headers(request: web.Request) -> None:
    if request.content_type != MEDIA_TYPE:
        raise web.HTTPUnsupportedMediaType(
            text=f"media type must be {MEDIA_TYPE}, got {request.content_type or 'none'}"
        )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY_BYTES,
            actual_size=request.content_length,
            text=f"body over {MAX_BODY_BYTES} bytes",
        )


class Sep2Server:
    def __init__(
        self,
        settings: ServerSettings,
        site: SiteResources,
        store: Sep2Store,
        evse_identity: PeerIdentity,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.handlers = Handlers(site, store, evse_identity, clock_ns, wall_clock)
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    def app(self) -> web.Application:
        # _refusals outermost of the two so that it also logs the identity refusal's
        # siblings; the identity check itself answers 403 and closes the connection
        app = web.Application(middlewares=[_identity, _refusals], client_max_size=MAX_BODY_BYTES)
        app[STORE] = self.store
        self.handlers.register(app.router)
        return app

    async def start(self) -> None:
        """Raises TlsError for unusable credentials and OSError when the port is taken."""
        s = self.settings
        context = server_context(s.ca_file, s.cert_file, s.key_file)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.host, s.port, ssl_context=context, backlog=16)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log_event(logger, "sep2.listening", host=s.host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
