"""The 2030.5 server: aiohttp over TLS 1.2 CCM8 with client certificates (``tls.py``), its
connections accepted and bounded by ``connections.py``.

Owns the rules every request passes before a handler sees it: the peer's identity (computed
once per connection from its certificate), answers in ``application/sep+xml`` only (406 when
the client accepts no XML: EXI is not offered), the media type on bodies (415 otherwise),
the 64 KiB body cap (413), a path and a query of at most 256 characters (414), an answer
within the connection limits' ``request_s`` (408), and the answer to bad input: 400 with the
parser's one-line reason, logged, nothing changed. The resources are in ``handlers.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from firmware.logs import log_event
from firmware.sep2.clock import TimeQuality
from firmware.sep2.connections import ConnectionLimits, Guard, Listener, listening_socket
from firmware.sep2.handlers import Handlers
from firmware.sep2.handlers_lists import IDENTITY
from firmware.sep2.site import SiteResources
from firmware.sep2.store import Sep2Store, StoreFull
from firmware.sep2.tls import PeerIdentity, server_context
from firmware.sep2.xml import MAX_BODY_BYTES, MEDIA_TYPE, Sep2InputError

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_PATH_CHARS = 256  # the profile's longest path is under 40; a query holds s, a and l
ACCEPTABLE = ("application/sep+xml", "application/*", "*/*")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


STORE = web.AppKey("store", Sep2Store)
LIMITS = web.AppKey("limits", ConnectionLimits)
DEFAULT_LIMITS = ConnectionLimits()


@web.middleware
async def _identity(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request is bound to the LFDI/SFDI its connection's Guard computed from the
    certificate (and the store learns that the vehicle has this connection open), and
    answered in time."""
    transport = request.transport
    guard = transport.get_protocol() if transport is not None else None
    if transport is None or not isinstance(guard, Guard) or guard.identity is None:
        # every connection comes through the Listener, whose Guard refuses one without an
        # identity before any request: this is a connection that did not
        log_event(logger, "sep2.refused", logging.WARNING, status=403, path=request.path[:80],
                  reason="not a verified 2030.5 TLS connection")  # fmt: skip
        if transport is not None:
            transport.close()
        raise web.HTTPForbidden(text="not a verified 2030.5 TLS connection\n")
    request[IDENTITY] = guard.identity
    request.app[STORE].saw_connection(guard.identity.lfdi, transport)
    guard.request_started()
    try:
        async with asyncio.timeout(request.app[LIMITS].request_s):
            return await handler(request)
    except TimeoutError:
        log_event(logger, "sep2.refused", logging.WARNING, status=408, path=request.path[:80],
                  reason="no answer in time")  # fmt: skip
        return web.Response(status=408, text="the request took too long\n")
    finally:
        guard.request_done()


@web.middleware
async def _refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad input gets a 4xx with a one-line reason, is logged, and changes nothing."""
    identity = request.get(IDENTITY)
    lfdi = identity.lfdi if identity is not None else "-"
    status, reason = 0, ""
    try:
        _check_request_line(request)
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
              path=request.path[:80], lfdi=lfdi, reason=reason.strip()[:200])  # fmt: skip
    return web.Response(status=status, text=reason.strip() + "\n")


def _check_request_line(request: web.Request) -> None:
    if len(request.raw_path) > 2 * MAX_PATH_CHARS or len(request.path) > MAX_PATH_CHARS:
        raise web.HTTPRequestURITooLong(text=f"path longer than {MAX_PATH_CHARS} characters")
    if len(request.query_string) > MAX_PATH_CHARS:
        raise web.HTTPRequestURITooLong(text=f"query longer than {MAX_PATH_CHARS} characters")
    if not accepts_xml(request.headers.get("Accept")):
        raise web.HTTPNotAcceptable(text=f"this server answers {MEDIA_TYPE} only (no EXI)")


def accepts_xml(accept: str | None) -> bool:
    """Whether an Accept header admits application/sep+xml (RFC 9110 §12.5.1; q=0 excludes)."""
    if accept is None or not accept.strip():
        return True
    for item in accept.split(",")[:32]:
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() not in ACCEPTABLE:
            continue
        q = next((p.split("=", 1)[1] for p in params if p.lower().startswith("q=")), "1")
        try:
            if float(q) > 0:
                return True
        except ValueError:
            continue
    return False


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
        limits: ConnectionLimits = DEFAULT_LIMITS,
        time_quality: TimeQuality | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.limits = limits
        self.handlers = Handlers(site, store, evse_identity, clock_ns, wall_clock, time_quality)
        self._runner: web.AppRunner | None = None
        self.listener: Listener | None = None
        self.port = settings.port

    def app(self) -> web.Application:
        # _identity is the outer of the two (aiohttp runs the first listed outermost): it
        # binds the identity and the request's timeout; _refusals answers bad input inside it
        app = web.Application(middlewares=[_identity, _refusals], client_max_size=MAX_BODY_BYTES)
        app[STORE] = self.store
        app[LIMITS] = self.limits
        self.handlers.register(app.router)
        return app

    async def start(self) -> None:
        """Raises TlsError for unusable credentials and OSError when the port is taken."""
        s, limits = self.settings, self.limits
        context = server_context(s.ca_file, s.cert_file, s.key_file)
        sock = listening_socket(s.host, s.port, limits.backlog)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     keepalive_timeout=limits.idle_s)  # fmt: skip
        await self._runner.setup()
        handler = self._runner.server
        assert handler is not None  # made by setup()
        self.listener = Listener(sock, context, handler, limits)
        self.listener.start()
        self.port = sock.getsockname()[1]
        # port last: tools read it as the line's end
        log_event(logger, "sep2.listening", host=s.host, max_connections=limits.max_total,
                  per_peer=limits.max_per_peer, port=self.port)  # fmt: skip

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
