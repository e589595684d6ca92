"""The 2030.5 server's connections, accepted and watched here so that whatever arrives on the
port cannot starve the daemon (its control socket, journal and records need file descriptors
too) nor keep a new vehicle waiting.

- **Accepting**: at most ``max_total`` connections at once; the next ones wait in the kernel's
  backlog, holding no descriptor of ours. At most ``max_per_peer`` from one address: more are
  closed as soon as they are accepted.
- **Handshake** within ``handshake_s``; a refused one is logged with its reason and the
  certificate the vehicle sent (``tls_refusals``).
- **Identity** once per connection, right after the handshake (``peer_identity``: LFDI,
  SFDI, hwType; the key and the 2030.5 device-type policy checked): refused, the connection
  is closed before any request is read.
- **Timeouts**: the first request's head must arrive within ``header_s`` of the handshake,
  each next one within ``idle_s`` of the last answer (a client that dribbles its headers is
  closed), and a request is answered within ``request_s``.

``Guard`` sits between the TLS transport and aiohttp's request handler, passing everything
through; the server's middleware tells it when a request starts and ends.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from firmware.logs import log_event
from firmware.sep2.tls import PeerIdentity, TlsError, peer_identity
from firmware.sep2.tls_refusals import (
    RefusalLog,
    TapSocket,
    client_certificates,
    describe_certificate,
    why,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_total: int = 32
    max_per_peer: int = 8
    handshake_s: float = 5.0
    header_s: float = 10.0
    idle_s: float = 30.0
    request_s: float = 10.0
    backlog: int = 64


class Guard(asyncio.Protocol):
    """One TLS connection: its identity, its timers, and aiohttp's handler behind it."""

    def __init__(self, inner: asyncio.Protocol, limits: ConnectionLimits, peer: str,
                 refusals: RefusalLog, closed: Callable[[], None]) -> None:  # fmt: skip
        self.inner, self.limits, self.peer = inner, limits, peer
        self.identity: PeerIdentity | None = None
        self._refusals, self._closed = refusals, closed
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._active = 0
        self._handed = False  # whether the handler has seen connection_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        try:
            self.identity = peer_identity(transport.get_extra_info("ssl_object"))
        except TlsError as err:
            der = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
            certificate = describe_certificate(der) if der else None
            self._refusals.refused(self.peer, str(err), certificate)
            transport.abort()
            return
        self._arm(self.limits.header_s, "no request within")
        self._handed = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._handed:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self._handed else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._closed()
        if self._handed:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._handed:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._handed:
            self.inner.resume_writing()

    def request_started(self) -> None:
        self._active += 1
        self._cancel()

    def request_done(self) -> None:
        self._active = max(0, self._active - 1)
        if self._active == 0:
            self._arm(self.limits.idle_s, "idle for")

    def _arm(self, after_s: float, what: str) -> None:
        self._cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(after_s, self._expired, f"{what} {after_s:g} s")

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, why: str) -> None:
        lfdi = self.identity.lfdi if self.identity is not None else "-"
        log_event(logger, "sep2.connection_closed", peer=self.peer, lfdi=lfdi, reason=why)
        if self._transport is not None:
            self._transport.abort()


class Listener:
    """Accepts on ``sock`` with the limits; ``handler`` makes aiohttp's per-connection protocol."""

    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        handler: Callable[[], asyncio.Protocol],
        limits: ConnectionLimits,
    ) -> None:
        self.sock, self.context, self.handler, self.limits = sock, context, handler, limits
        self.refusals = RefusalLog()
        self.refused_per_peer = 0
        self._per_peer: collections.Counter[str] = collections.Counter()
        self._room = asyncio.Semaphore(limits.max_total)
        self._task: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()

    @property
    def open(self) -> int:
        """Connections held now, handshakes included."""
        return sum(self._per_peer.values())

    def start(self) -> None:
        self.sock.setblocking(False)
        self._task = asyncio.create_task(self._accept())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        self.sock.close()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._room.acquire()
            try:
                conn, address = await loop.sock_accept(self.sock)
            except OSError as err:  # e.g. EMFILE: wait, never spin
                self._room.release()
                log_event(logger, "sep2.accept_failed", logging.WARNING, error=err.strerror)
                await asyncio.sleep(0.1)
                continue
            peer = str(address[0])
            if self._per_peer[peer] >= self.limits.max_per_peer:
                conn.close()
                self._room.release()
                self.refused_per_peer += 1
                continue
            self._per_peer[peer] += 1
            task = asyncio.create_task(self._handshake(conn, peer))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, peer: str) -> None:
        loop = asyncio.get_running_loop()
        tap = TapSocket(conn)
        guard: Guard | None = None

        def make() -> Guard:
            nonlocal guard
            guard = Guard(self.handler(), self.limits, peer, self.refusals,
                          lambda: self._release(peer))  # fmt: skip
            return guard

        try:
            timeout_s = self.limits.handshake_s
            await loop.connect_accepted_socket(make, tap, ssl=self.context,
                                               ssl_handshake_timeout=timeout_s)  # fmt: skip
        except (OSError, ssl.SSLError, TimeoutError, asyncio.CancelledError) as err:
            if guard is None or guard._transport is None:  # never reached the Guard
                self._release(peer)
            try:
                if not isinstance(err, asyncio.CancelledError):
                    self._refused(peer, err, bytes(tap.recorded))
            finally:
                tap.close()
            return
        tap.stop()

    def _refused(self, peer: str, err: BaseException, recorded: bytes) -> None:
        chain = client_certificates(recorded)
        certificate = describe_certificate(chain[0]) if chain else None
        self.refusals.refused(peer, why(err, chain), certificate)

    def _release(self, peer: str) -> None:
        self._per_peer[peer] -= 1
        if self._per_peer[peer] <= 0:
            del self._per_peer[peer]
        self._room.release()


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A bound, listening TCP socket for ``host`` (IPv6 only for an IPv6 host, as the profile
    is); OSError when it cannot listen."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
