"""2030.5 responses: Response, DERControlResponse, ResponseList, ResponseSet(List).

The PEV posts a DERControlResponse to each control's ``replyTo``: status 1 received, 2 started
(profile §4.7.1), ``subject`` the control's mRID.
"""

# ruff: noqa: RUF009  # opt() and many() return dataclasses.field(...) specifiers

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from firmware.sep2.base import IdentifiedObject, List, Resource
from firmware.sep2.fields import LFDI, MRID, TIME, UINT8, UINT32, many, opt, req
from firmware.sep2.values import ListLink

STATUS_RECEIVED = 1
STATUS_STARTED = 2
STATUS_COMPLETED = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Resource):
    """Response: who (endDeviceLFDI) answered what (subject) with which status, when."""

    TAG: ClassVar[str] = "Response"

    created_date_time: int | None = opt("createdDateTime", TIME)
    end_device_lfdi: str = field(metadata=req("endDeviceLFDI", LFDI))
    status: int | None = opt("status", UINT8)
    subject: str = field(metadata=req("subject", MRID))


@dataclass(frozen=True, slots=True, kw_only=True)
class DERControlResponse(Response):
    """DERControlResponse: a Response to a DERControl (no elements of its own)."""

    TAG: ClassVar[str] = "DERControlResponse"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseList(List):
    """ResponseList."""

    TAG: ClassVar[str] = "ResponseList"

    responses: tuple[Response, ...] = many("Response", Response)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseSet(IdentifiedObject):
    """ResponseSet: a container for one ResponseList."""

    TAG: ClassVar[str] = "ResponseSet"

    response_list_link: ListLink | None = opt("ResponseListLink", ListLink)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseSetList(List):
    """ResponseSetList."""

    TAG: ClassVar[str] = "ResponseSetList"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    response_sets: tuple[ResponseSet, ...] = many("ResponseSet", ResponseSet)
