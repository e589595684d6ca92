"""What the station answers to the CSMS's requests, on the ``ocpp`` package's ChargePoint of
the configured version (its route map, and its schema validation of every request and
answer, kept on).

Built: SetChargingProfile and ClearChargingProfile (the dispatch, ``firmware.ocpp.relay``),
GetVariables (the few variables this station has). Answered Rejected with a reason:
RequestStartTransaction, RequestStopTransaction (a session starts and ends with the plug and
the J3072 gate, not remotely), Reset (the site owner restarts the service on the board).
Anything else gets the package's NotImplemented CallError.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from ocpp import routing
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v201 import ChargePoint as ChargePoint201

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


class _Debug(logging.LoggerAdapter[logging.Logger]):
    """The package logs every message at info: here they are debug (the daemon's own
    events say what happened)."""

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


def _info(code: str | None, text: str | None) -> dict[str, str] | None:
    if code is None:
        return None
    info = {"reason_code": code[:20]}
    if text:
        info["additional_info"] = text[:512]
    return info


def charge_point_class(version: str) -> Any:
    """A ChargePoint of ``version`` ("2.0.1" or "2.1") answering with ``requests``."""
    base: Any = ChargePoint21 if version == "2.1" else ChargePoint201

    class StationChargePoint(base):  # type: ignore[misc]
        def __init__(self, station_id: str, connection: Any, requests: Requests,
                     response_timeout: int) -> None:  # fmt: skip
            super().__init__(station_id, connection, response_timeout, logger=_Debug(WIRE, {}))
            self.requests = requests

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
