"""The OCPP connection to the CSMS: WebSocket over TLS (security profile 2: basic auth, or 3:
a client certificate), BootNotification, Heartbeat, the outbox drained in order, and the
CSMS's requests answered. Built on the ``ocpp`` package (its ChargePoint validates every
message both ways against the official JSON schemas it bundles) and ``websockets``.

It runs as its own task: the gate and the loop never wait for it. A CSMS that is away, slow
or refuses us is retried with a backoff doubling up to ``reconnect_max_s``; each way a
connection fails is logged once per failure in one line (``ocpp.connect_failed``). An event
leaves the outbox only once the CSMS has answered it, so a connection lost mid-send sends it
again (TransactionEvent's seqNo lets the CSMS see the repeat).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from typing import Any, Protocol

import websockets
from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import OCPPError
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from firmware.logs import log_event
from firmware.ocpp.config import OcppConfig, read_password
from firmware.ocpp.handlers import Requests, charge_point_class
from firmware.ocpp.limits import TokenBucket
from firmware.ocpp.messages import boot_notification
from firmware.ocpp.upstream import Upstream

logger = logging.getLogger(__name__)
RESPONSE_TIMEOUT_S = 30  # OCPP-J: a CALL unanswered this long counts as failed
FIRST_RETRY_S = 1.0


class StationError(Exception):
    """Raised when a connection ends: the CSMS went away, refused a message or timed out."""


class Connected(Protocol):
    async def call(self, payload: Any, suppress: bool = True) -> Any: ...


def tls_context(config: OcppConfig) -> ssl.SSLContext:
    """TLS 1.2+, the CSMS's certificate verified against ``ca_file`` and its host name; with
    security profile 3, our certificate offered."""
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.security_profile == 3:
        assert config.cert_file is not None and config.key_file is not None
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


class Station:
    def __init__(self, config: OcppConfig, upstream: Upstream, requests: Requests,
                 firmware: str) -> None:  # fmt: skip
        self.config, self.upstream, self.requests = config, upstream, requests
        self._firmware = firmware
        self._booted = False
        self._heartbeat_s = float(config.heartbeat_s)
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ocpp")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = FIRST_RETRY_S
        context = tls_context(self.config)
        while True:
            try:
                async with connect(self.config.endpoint, ssl=context, **self._options()) as ws:
                    delay = FIRST_RETRY_S
                    await self._session(ws)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # every way a connection ends: retried, said once
                self._failed(err)
            self.upstream.online = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, float(self.config.reconnect_max_s))

    def _options(self) -> dict[str, Any]:
        config = self.config
        options: dict[str, Any] = {
            "subprotocols": [Subprotocol(f"ocpp{config.version}")],
            "open_timeout": 10,
            "proxy": None,
            "max_size": config.max_message_bytes,  # docs/ocpp.md "What a CSMS may send"
            "compression": None,  # inflating a burst of frames would hold the loop
        }
        if config.security_profile == 2:
            assert config.password_file is not None
            secret = f"{config.station_id}:{read_password(config.password_file)}"
            token = base64.b64encode(secret.encode()).decode()
            options["additional_headers"] = {"Authorization": f"Basic {token}"}
        return options

    def _failed(self, err: Exception) -> None:
        if isinstance(err, ssl.SSLCertVerificationError):
            reason = f"TLS: the CSMS's certificate is not trusted: {err.verify_message}"
        elif isinstance(err, websockets.InvalidStatus):
            reason = f"the CSMS refused the connection: HTTP {err.response.status_code}"
        else:
            reason = " ".join(str(err).split()) or type(err).__name__
        if reason != self.last_error:
            self.last_error = reason
            log_event(logger, "ocpp.connect_failed", logging.WARNING, url=self.config.endpoint,
                      reason=reason)  # fmt: skip

    async def _session(self, ws: ClientConnection) -> None:
        rate = float(self.config.max_requests_per_s)
        cp = charge_point_class(self.config.version)(
            self.config.station_id, ws, self.requests, RESPONSE_TIMEOUT_S,
            TokenBucket(rate, 4 * rate),
        )  # fmt: skip
        reader = asyncio.create_task(cp.start(), name="ocpp-reader")
        try:
            if not self._booted:
                await self._boot(cp)
            log_event(logger, "ocpp.connected", url=self.config.endpoint, protocol=ws.subprotocol,
                      security_profile=self.config.security_profile)  # fmt: skip
            self.last_error = None
            self.upstream.online = True
            await self._send_loop(cp, reader)
        finally:
            reader.cancel()
            if reader.done() and not reader.cancelled():
                reader.exception()  # the connection's end, said by the caller

    async def _boot(self, cp: Any) -> None:
        """BootNotification until Accepted; its interval becomes the heartbeat's."""
        payload = boot_notification("evse-gatekeeper", "evse-gatekeeper", self._firmware,
                                    "PowerUp")  # fmt: skip
        while True:
            answer = await self._call(cp, "BootNotification", payload) or {}
            interval = float(answer.get("interval", 0)) or self._heartbeat_s
            if answer.get("status") == "Accepted":
                self._heartbeat_s, self._booted = interval, True
                log_event(logger, "ocpp.booted", heartbeat_s=interval)
                return
            log_event(logger, "ocpp.boot_pending", status=answer.get("status"), retry_s=interval)
            await asyncio.sleep(interval)

    async def _send_loop(self, cp: Any, reader: asyncio.Task[None]) -> None:
        upstream, outbox = self.upstream, self.upstream.outbox
        loop = asyncio.get_running_loop()
        beat_at = loop.time() + self._heartbeat_s
        while not reader.done():
            queued = outbox.next()
            if queued is not None:
                answer = await self._call(cp, queued.message, queued.payload, queued.seq)
                outbox.sent(queued.seq, "answered" if answer is not None else "call error")
                continue
            if loop.time() >= beat_at:
                await self._call(cp, "Heartbeat", {})
                beat_at = loop.time() + self._heartbeat_s
            upstream.wake.clear()
            wake = asyncio.create_task(upstream.wake.wait())
            await asyncio.wait({wake, reader}, timeout=max(0.0, beat_at - loop.time()),
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            wake.cancel()
        ended = reader.exception() if not reader.cancelled() else None
        raise StationError(str(ended) if ended else "the CSMS closed the connection")

    async def _call(self, cp: Any, action: str, payload: dict[str, Any],
                    seq: int | None = None) -> dict[str, Any] | None:  # fmt: skip
        """One request through the package (validated both ways); its answer as a dict. A
        CallError answer is logged and returns None (the event counts as delivered: sending
        it again would be refused again)."""
        request = getattr(cp._call, action)(**camel_to_snake_case(payload))
        try:
            result = await cp.call(request, suppress=False)
        except OCPPError as err:
            log_event(logger, "ocpp.call_error", logging.WARNING, action=action, seq=seq,
                      error=type(err).__name__, description=err.description)  # fmt: skip
            return None
        except TimeoutError as err:
            raise StationError(f"{action}: no answer in {RESPONSE_TIMEOUT_S} s") from err
        return {k: v for k, v in vars(result).items() if v is not None}
