"""The PEV's HTTP side: one checked request per step over the session's mutual-TLS client.

Every request is timed and logged as a ``Step``; every answer is checked (the expected status,
``application/sep+xml`` on documents, a body that parses as the expected resource) and any
failure raises ``PevError`` with a one-line reason. Links are resolved against the server URL
and must stay on the EVSE: a vehicle never follows a link elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp

from firmware.logs import log_event
from firmware.sep2.base import Resource
from firmware.sep2.identity import lfdi
from firmware.sep2.xml import MEDIA_TYPE, Sep2InputError
from hil.pev.errors import PevError, TlsHandshakeError
from hil.pev.report import SessionLog, Step

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)
REQUEST_TIMEOUT_S = 5.0
HEADERS = {"Accept": MEDIA_TYPE}


class Sep2Http:
    def __init__(
        self, server_url: str, context: ssl.SSLContext, log: SessionLog, per_request: bool = False
    ) -> None:
        """``per_request``: a new TLS connection for each request, closed after it (some
        vehicle stacks do this; the profile allows it)."""
        parts = urlsplit(server_url)
        if parts.scheme != "https" or not parts.hostname or parts.port is None:
            raise PevError(f"server URL must be https://host:port, got {server_url!r}")
        self.base = f"https://{parts.netloc}"
        self.host, self.port = parts.hostname, parts.port
        self.context = context
        self.log = log
        self.per_request = per_request
        self._session: aiohttp.ClientSession | None = None

    async def handshake(self) -> tuple[str, str]:
        """Mutual TLS on its own first, so that a refusal is told apart from a lost link.

        Returns the EVSE's LFDI (from its certificate) and our local address. Raises
        ``TlsHandshakeError`` when either side refuses, ``PevError`` when nothing answers.
        """
        started = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.context),
                REQUEST_TIMEOUT_S,
            )
        except (ConnectionRefusedError, TimeoutError, OSError) as err:
            reason = _connect_reason(err)
            tls = isinstance(err, ssl.SSLError | ConnectionResetError)
            self._step("TLS handshake", "TLS", self.base, None, started, error=reason)
            raise (TlsHandshakeError if tls else PevError)(f"TLS to {self.base}: {reason}") from err
        ssl_object = writer.get_extra_info("ssl_object")
        local = writer.get_extra_info("sockname")[0]
        writer.close()
        with contextlib.suppress(OSError):  # the server may close first: we had the handshake
            await writer.wait_closed()
        self._step("TLS handshake", "TLS", self.base, None, started)
        return lfdi(ssl_object.getpeercert(binary_form=True)), str(local)

    async def __aenter__(self) -> Sep2Http:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        connector = aiohttp.TCPConnector(ssl=self.context, limit=4, force_close=self.per_request)
        tracing = aiohttp.TraceConfig()
        tracing.on_connection_create_end.append(self._connected)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                              trace_configs=[tracing])  # fmt: skip
        return self

    async def _connected(self, *_: object) -> None:
        self.log.connections += 1

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, href: str) -> str:
        url = urljoin(self.base + "/", href)
        if not url.startswith(self.base + "/"):
            raise PevError(f"link {href!r} leaves the EVSE {self.base}")
        return url

    async def get(self, href: str, model: type[R], name: str, routine: bool = False) -> R:
        body, _ = await self._request("GET", href, None, name, (200,), routine)
        try:
            return model.from_xml(body)
        except Sep2InputError as err:
            raise PevError(f"GET {href}: not a {model.TAG}: {err.reason}") from None

    async def put(self, href: str, resource: Resource, name: str) -> None:
        await self._request("PUT", href, resource.to_xml(), name, (200, 201, 204), False)

    async def post(
        self,
        href: str,
        resource: Resource,
        name: str,
        expect: tuple[int, ...] = (201, 204),
        routine: bool = False,
    ) -> str | None:
        """POST; returns the Location of what was created, if any."""
        _, location = await self._request("POST", href, resource.to_xml(), name, expect, routine)
        return location

    async def _request(
        self,
        method: str,
        href: str,
        body: bytes | None,
        name: str,
        expect: tuple[int, ...],
        routine: bool,
    ) -> tuple[bytes, str | None]:
        if self._session is None:
            raise PevError("the HTTP session is not open")
        url = self.url(href)
        headers = dict(HEADERS, **({"Content-Type": MEDIA_TYPE} if body is not None else {}))
        started = time.perf_counter()
        try:
            async with self._session.request(method, url, data=body, headers=headers) as answer:
                status, data = answer.status, await answer.read()
                content_type = answer.content_type
                location = answer.headers.get("Location")
        except (aiohttp.ClientError, TimeoutError) as err:
            reason = _connect_reason(err)
            self._step(name, method, href, None, started, routine, reason)
            raise PevError(f"{method} {href}: {reason}") from None
        problem = _problem(status, expect, content_type, data, method)
        self._step(name, method, href, status, started, routine, problem)
        if problem is not None:
            raise PevError(f"{method} {href}: {problem}")
        return data, location

    def _step(
        self,
        name: str,
        method: str,
        href: str,
        status: int | None,
        started: float,
        routine: bool = False,
        error: str | None = None,
    ) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        step = Step(self.log.since_start(), name, method, href, status, latency_ms, routine, error)
        self.log.add_step(step)
        level = logging.WARNING if error else logging.DEBUG if routine else logging.INFO
        log_event(
            logger,
            "pev.step",
            level,
            step=name,
            method=method,
            href=href,
            status=status if status is not None else "-",
            ms=f"{latency_ms:.1f}",
            error=error or "-",
        )


def _problem(
    status: int, expect: tuple[int, ...], content_type: str, data: bytes, method: str
) -> str | None:
    if status not in expect:
        reason = data.decode("utf-8", "replace").strip().splitlines()
        return f"{status} {reason[0][:160] if reason else ''}".strip()
    if method == "GET" and content_type != MEDIA_TYPE:
        return f"content type {content_type or 'none'}, not {MEDIA_TYPE}"
    return None


def _connect_reason(err: BaseException) -> str:
    if isinstance(err, aiohttp.ClientConnectorError):
        err = err.os_error
    if isinstance(err, TimeoutError):
        return f"no answer within {REQUEST_TIMEOUT_S:g} s"
    if isinstance(err, ssl.SSLError):
        return f"TLS: {err.reason or err}"
    if isinstance(err, ConnectionResetError):
        return "connection reset during the handshake (our certificate refused?)"
    return f"{type(err).__name__}: {err}".strip().rstrip(":")
