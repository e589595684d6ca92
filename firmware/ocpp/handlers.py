"""What the station answers to the CSMS's requests, on the ``ocpp`` package's ChargePoint of
the configured version (its route map, and its schema validation of every request and
answer, kept on).

Built: SetChargingProfile and ClearChargingProfile (the dispatch, ``firmware.ocpp.relay``),
GetVariables (the few variables this station has). Answered Rejected with a reason:
RequestStartTransaction, RequestStopTransaction (a session starts and ends with the plug and
the J3072 gate, not remotely), Reset (the site owner restarts the service on the board).
Anything else gets the package's NotImplemented CallError.

What reaches the package is bounded first (``firmware.ocpp.limits``): the connection refuses
a message over ``max_message_bytes`` (websockets closes it); each request takes a token of
a bucket, and one over the rate is answered with a CallError unread (the connection is closed
after ``EXCESS_BEFORE_CLOSE`` in a row); a CallResult or CallError that answers nothing we
asked is dropped, not queued (the package would keep every one until our next call); a
GetVariables of more than ``ITEMS_PER_MESSAGE`` items is refused. Each is logged once per
connection. The reader yields to the loop after each message.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from ocpp import routing
from ocpp.exceptions import OccurrenceConstraintViolationError, OCPPError
from ocpp.messages import Call, CallError, unpack
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201

from firmware.logs import log_event
from firmware.ocpp.limits import (
    EXCESS_BEFORE_CLOSE,
    EXCESS_WINDOW_S,
    ITEMS_PER_MESSAGE,
    MAX_CONTAINERS,
    TokenBucket,
    request_id,
    too_complex,
)

logger = logging.getLogger(__name__)
WIRE = logging.getLogger("firmware.ocpp.wire")
F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    """The package's handler decorator (its schema validation on), typed."""
    return cast(Callable[[F], F], routing.on(action))


class Requests(Protocol):
    """The daemon's side of the CSMS's requests (``firmware.ocpp.relay.DispatchRelay``)."""

    async def set_charging_profile(
        self, evse_id: int, profile: dict[str, Any]
    ) -> tuple[str, str | None, str | None]: ...

    async def clear_charging_profile(self, profile_id: int | None) -> str: ...

    def variable(self, component: str, variable: str) -> str | None: ...


class CsmsMisbehaved(Exception):
    """Raised when a CSMS keeps sending over the rate: the connection is closed."""


class _Debug(logging.LoggerAdapter[logging.Logger]):
    """The package logs every message at info, and a request a handler refused at error with
    the whole message: here they are debug (the daemon's own events say what happened, in
    one line, once; a CSMS cannot fill the log)."""

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


def _info(code: str | None, text: str | None) -> dict[str, str] | None:
    if code is None:
        return None
    info = {"reason_code": code[:20]}
    if text:
        info["additional_info"] = text[:512]
    return info


def _items_per_message(msg: Call) -> None:
    """OCPP 2.0.1 B06.FR.07: more GetVariableData than ItemsPerMessage is refused before
    anything (schema validation, key conversion) reads them."""
    items = msg.payload.get("getVariableData") if isinstance(msg.payload, dict) else None
    if msg.action == "GetVariables" and isinstance(items, list) and len(items) > ITEMS_PER_MESSAGE:
        raise OccurrenceConstraintViolationError(
            description=f"at most {ITEMS_PER_MESSAGE} items per GetVariables "
            "(DeviceDataCtrlr.ItemsPerMessage)"
        )


REFUSALS = {
    "unparsable": "not an OCPP-J message, or nested too deep",
    "complex": f"more than {MAX_CONTAINERS} JSON objects and arrays: refused unparsed",
    "unsolicited": "answers no call of ours: dropped",
    "rate": "more requests than the station handles: answered with a CallError",
}


def charge_point_class(version: str) -> Any:
    """A ChargePoint of ``version`` ("2.0.1" or "2.1") answering with ``requests``."""
    base: Any = ChargePoint21 if version == "2.1" else ChargePoint201

    class StationChargePoint(base):  # type: ignore[misc]
        def __init__(self, station_id: str, connection: Any, requests: Requests,
                     response_timeout: int, bucket: TokenBucket) -> None:  # fmt: skip
            super().__init__(station_id, connection, response_timeout, logger=_Debug(WIRE, {}))
            self.requests, self.bucket = requests, bucket
            self._awaiting: str | None = None  # the unique id of our call in flight
            self._unique_id_generator = self._new_id
            self._over_rate: deque[float] = deque()  # when requests over the rate came
            self._said: set[str] = set()
            self.refused = 0  # messages dropped or refused unread (this connection)

        def _new_id(self) -> str:
            self._awaiting = str(uuid.uuid4())
            return self._awaiting

        async def call(self, payload: Any, suppress: bool = True, unique_id: str | None = None,
                       skip_schema_validation: bool = False) -> Any:  # fmt: skip
            try:
                return await super().call(payload, suppress, unique_id, skip_schema_validation)
            finally:
                self._awaiting = None

        async def start(self) -> None:
            while True:
                await self.route_message(await self._connection.recv())
                await asyncio.sleep(0)  # a flood of small messages cannot hold the loop

        async def route_message(self, raw_msg: str | bytes) -> None:
            # a request's token is taken before anything is parsed: over the rate, only the
            # front of the message is read, for its id
            unique_id = request_id(raw_msg)
            if unique_id is not None and not await self._token(unique_id):
                return
            if too_complex(raw_msg):
                await self._too_complex(raw_msg, unique_id)
                return
            try:
                msg = unpack(raw_msg)
            except (OCPPError, RecursionError, ValueError, TypeError) as err:
                self._refuse("unparsable", f"{type(err).__name__}")
                return
            if isinstance(msg, Call):
                if unique_id is None and not await self._token(msg.unique_id):
                    return  # an id the front could not read: the token is taken now
                await self._request(msg)
            elif msg.unique_id == self._awaiting and self._response_queue.empty():
                self._response_queue.put_nowait(msg)
            else:  # answers nothing we asked (or a second answer): the package would keep it
                self._refuse("unsolicited", f"{type(msg).__name__} {str(msg.unique_id)[:40]}")

        async def _token(self, unique_id: str) -> bool:
            """One request's token; without one it is answered with a CallError (OCPP-J has
            no busy code: GenericError saying so), and ``EXCESS_BEFORE_CLOSE`` of those
            within ``EXCESS_WINDOW_S`` close the connection, however fast the loop reads."""
            now = asyncio.get_running_loop().time()
            if self.bucket.take(now):
                return True
            over = self._over_rate
            over.append(now)
            while over and now - over[0] > EXCESS_WINDOW_S:
                over.popleft()
            self._refuse("rate", f"request {unique_id[:40]} over {self.bucket.rate_per_s:g}/s")
            if len(over) >= EXCESS_BEFORE_CLOSE:
                raise CsmsMisbehaved(
                    f"{len(over)} requests over the rate within {EXCESS_WINDOW_S:g} s"
                )
            error = CallError(unique_id, "GenericError", "rate limit: request not handled", {})
            await self._send(error.to_json())
            return False

        async def _request(self, msg: Call) -> None:
            try:
                _items_per_message(msg)
                await self._handle_call(msg)
            except OCPPError as error:
                await self._send(msg.create_call_error(error).to_json())
            except RecursionError as error:  # nested deeper than the key conversion goes
                self._refuse("unparsable", f"{msg.action}: {type(error).__name__}")
                await self._send(msg.create_call_error(error).to_json())

        async def _too_complex(self, raw_msg: str | bytes, unique_id: str | None) -> None:
            """Refused unparsed: a request is answered (its id read from the front, its token
            taken already), anything else dropped."""
            self._refuse("complex", f"{'request ' + unique_id if unique_id else 'a message'}")
            if unique_id is None:
                return
            why = f"more than {MAX_CONTAINERS} JSON objects and arrays in one message"
            error = CallError(unique_id, "OccurrenceConstraintViolation", why, {})
            await self._send(error.to_json())

        def _refuse(self, kind: str, what: str) -> None:
            self.refused += 1
            if kind not in self._said:
                self._said.add(kind)
                log_event(logger, "ocpp.csms_message_refused", logging.WARNING, kind=kind,
                          message=what, why=REFUSALS[kind])  # fmt: skip

        @on("SetChargingProfile")
        async def _set_profile(self, evse_id: int, charging_profile: dict[str, Any],
                               **_: Any) -> Any:  # fmt: skip
            status, code, text = await self.requests.set_charging_profile(evse_id, charging_profile)
            return self._call_result.SetChargingProfile(
                status=status, status_info=_info(code, text)
            )

        @on("ClearChargingProfile")
        async def _clear_profile(self, charging_profile_id: int | None = None,
                                 **_: Any) -> Any:  # fmt: skip
            status = await self.requests.clear_charging_profile(charging_profile_id)
            return self._call_result.ClearChargingProfile(status=status)

        @on("GetVariables")
        def _get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
            results = []
            for item in get_variable_data:
                component, variable = item["component"], item["variable"]
                value = self.requests.variable(component["name"], variable["name"])
                result: dict[str, Any] = {"component": component, "variable": variable,
                                          "attribute_status": "Accepted"}  # fmt: skip
                if value is None:
                    result["attribute_status"] = "UnknownVariable"
                else:
                    result["attribute_value"] = value
                results.append(result)
            return self._call_result.GetVariables(get_variable_result=results)

        @on("RequestStartTransaction")
        def _remote_start(self, **_: Any) -> Any:
            why = "a session starts when a vehicle plugs in; discharge only on a J3072 grant"
            return self._call_result.RequestStartTransaction(
                status="Rejected", status_info=_info("NotSupported", why)
            )

        @on("RequestStopTransaction")
        def _remote_stop(self, **_: Any) -> Any:
            why = "a session ends when the vehicle unplugs; limit it with a charging profile"
            return self._call_result.RequestStopTransaction(
                status="Rejected", status_info=_info("NotSupported", why)
            )

        @on("Reset")
        def _reset(self, **_: Any) -> Any:
            why = "the site owner restarts the service on the board"
            return self._call_result.Reset(
                status="Rejected", status_info=_info("NotSupported", why)
            )

    return StationChargePoint
