"""The OCPP connection to the CSMS: WebSocket over TLS (security profile 2: basic auth, or 3:
a client certificate), BootNotification, Heartbeat, the outbox drained in order, and the
CSMS's requests answered. Built on the ``ocpp`` package (its ChargePoint validates every
message both ways against the official JSON schemas it bundles) and ``websockets``.

It runs as its own task: the gate and the loop never wait for it. A CSMS that is away, slow
or refuses us is retried with a backoff doubling up to ``reconnect_max_s``; each way a
connection fails is logged once per failure in one line (``ocpp.connect_failed``). An event
leaves the outbox only once the CSMS has answered it, so a connection lost mid-send sends it
again (TransactionEvent's seqNo lets the CSMS see the repeat); an essential one the CSMS
refuses is tried again a few times before it is dropped (``_deliver``).
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

from firmware.journal.outbox import Queued
from firmware.logs import log_event
from firmware.ocpp.config import OcppConfig, read_password, tls_context
from firmware.ocpp.handlers import Requests, charge_point_class
from firmware.ocpp.limits import TokenBucket
from firmware.ocpp.messages import boot_notification
from firmware.ocpp.upstream import Upstream

logger = logging.getLogger(__name__)
RESPONSE_TIMEOUT_S = 30  # OCPP-J: a CALL unanswered this long counts as failed
FIRST_RETRY_S = 1.0
MIN_INTERVAL_S = 1.0  # a CSMS's heartbeat or boot retry interval: no faster than this
MESSAGE_ATTEMPTS = 3  # OCPP 2.0.1 OCPPCommCtrlr.MessageAttempts (for TransactionEvent)
MESSAGE_ATTEMPT_INTERVAL_S = 10.0  # OCPPCommCtrlr.MessageAttemptInterval


Answer = tuple[dict[str, Any] | None, str | None]  # the CSMS's answer, or why there is none


class StationError(Exception):
    """Raised when a connection ends: the CSMS went away, refused a message or timed out."""


class Connected(Protocol):
    async def call(self, payload: Any, suppress: bool = True) -> Any: ...


class Station:
    def __init__(self, config: OcppConfig, upstream: Upstream, requests: Requests,
                 firmware: str) -> None:  # fmt: skip
        self.config, self.upstream, self.requests = config, upstream, requests
        self._firmware = firmware
        self._booted = False
        self._heartbeat_s = float(config.heartbeat_s)
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.attempt_interval_s = MESSAGE_ATTEMPT_INTERVAL_S
        self._attempt = (0, 0)  # the queued event refused, and how often
        self._retry_at = 0.0  # loop time: not before this is it tried again

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ocpp")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = FIRST_RETRY_S
        while True:
            try:  # the files are read again each time: checked at load, they may have changed
                context = self._tls()
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

    def _tls(self) -> ssl.SSLContext:
        try:
            return tls_context(self.config)
        except (ssl.SSLError, OSError, ValueError) as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise StationError(f"TLS: our certificate, key or CA cannot be used: {reason}") from err

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
        """BootNotification until Accepted; its interval (at least ``MIN_INTERVAL_S``)
        becomes the heartbeat's."""
        payload = boot_notification("evse-gatekeeper", "evse-gatekeeper", self._firmware,
                                    "PowerUp")  # fmt: skip
        while True:
            answer, _ = await self._call(cp, "BootNotification", payload)
            answer = answer or {}
            interval = _interval(answer.get("interval"), self._heartbeat_s)
            if answer.get("status") == "Accepted":
                self._heartbeat_s, self._booted = interval, True
                self.upstream.heartbeat_s = interval
                log_event(logger, "ocpp.booted", heartbeat_s=interval)
                return
            log_event(logger, "ocpp.boot_pending", status=answer.get("status"), retry_s=interval)
            await asyncio.sleep(interval)

    async def _send_loop(self, cp: Any, reader: asyncio.Task[None]) -> None:
        upstream, outbox = self.upstream, self.upstream.outbox
        loop = asyncio.get_running_loop()
        beat_at = loop.time() + self._heartbeat_s
        while not reader.done():
            upstream.wake.clear()  # before draining: what is queued from here on wakes us
            queued = outbox.next()
            if queued is not None and loop.time() >= self._retry_at:
                await self._deliver(cp, queued)
                continue
            if loop.time() >= beat_at:
                await self._call(cp, "Heartbeat", {})
                beat_at = loop.time() + self._heartbeat_s
                continue
            until = min(beat_at, self._retry_at) if queued is not None else beat_at
            wake = asyncio.create_task(upstream.wake.wait())
            await asyncio.wait({wake, reader}, timeout=max(0.0, until - loop.time()),
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            wake.cancel()
        ended = reader.exception() if not reader.cancelled() else None
        raise StationError(str(ended) if ended else "the CSMS closed the connection")

    async def _deliver(self, cp: Any, queued: Queued) -> None:
        """One queued event. Refused (a CallError, or it failed our own schema check), an
        essential one is tried again ``MESSAGE_ATTEMPTS`` times, ``attempt_interval_s`` times
        the attempt's number apart, the queue behind it waiting (OCPP 2.0.1
        OCPPCommCtrlr.MessageAttempts, MessageAttemptInterval); then it is dropped, said."""
        outbox = self.upstream.outbox
        _, error = await self._call(cp, queued.message, queued.payload, queued.seq)
        if error is None:
            outbox.sent(queued.seq, "answered")
            self._attempt = (0, 0)
            return
        seq, attempts = self._attempt
        attempts = attempts + 1 if seq == queued.seq else 1
        if queued.essential and attempts < MESSAGE_ATTEMPTS:
            self._attempt = (queued.seq, attempts)
            delay = self.attempt_interval_s * attempts
            self._retry_at = asyncio.get_running_loop().time() + delay
            log_event(logger, "ocpp.message_retry", logging.WARNING, seq=queued.seq,
                      message=queued.message, attempt=attempts, retry_s=delay)  # fmt: skip
            return
        outbox.sent(queued.seq, f"{error} after {attempts} attempts"[:200])
        self._attempt = (0, 0)
        if queued.essential:
            log_event(logger, "ocpp.message_dropped", logging.ERROR, seq=queued.seq,
                      message=queued.message, attempts=attempts, error=error)  # fmt: skip

    async def _call(self, cp: Any, action: str, payload: dict[str, Any],
                    seq: int | None = None) -> Answer:  # fmt: skip
        """One request through the package (validated both ways): its answer as a dict, or
        why it was refused (the CSMS's CallError, or our own schema check), logged."""
        try:
            request = getattr(cp._call, action)(**camel_to_snake_case(payload))
            result = await cp.call(request, suppress=False)
        except OCPPError as err:
            log_event(logger, "ocpp.call_error", logging.WARNING, action=action, seq=seq,
                      error=type(err).__name__, description=err.description)  # fmt: skip
            return None, f"{type(err).__name__}: {err.description}"
        except TypeError as err:  # a payload that is no such request: never sendable
            log_event(logger, "ocpp.call_error", logging.ERROR, action=action, seq=seq,
                      error="TypeError", description=str(err))  # fmt: skip
            return None, f"TypeError: {err}"
        except TimeoutError as err:
            raise StationError(f"{action}: no answer in {RESPONSE_TIMEOUT_S} s") from err
        return {k: v for k, v in vars(result).items() if v is not None}, None


def _interval(given: object, fallback: float) -> float:
    """BootNotification's interval: a number of seconds, at least ``MIN_INTERVAL_S``; none
    (or not a number): ``fallback``."""
    try:
        seconds = float(given)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = 0.0
    return max(seconds if seconds > 0 else fallback, MIN_INTERVAL_S)
