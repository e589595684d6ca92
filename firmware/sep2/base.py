"""The 2030.5 base types every resource derives from, with ``to_xml`` and ``from_xml``.

Mirrors the schema's derivation chain so that base-type elements come first by construction:
Resource (href) → SubscribableResource (subscribable), RespondableResource (replyTo,
responseRequired), IdentifiedObject (mRID, description, version), Event (creationTime,
EventStatus, interval), RandomizableEvent (randomizeDuration, randomizeStart), List and
SubscribableList (all, results). A concrete resource sets ``TAG``, its document element name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Self

from firmware.sep2.fields import (
    HEX8,
    MRID,
    ONE_HOUR,
    STR32,
    TIME,
    UINT8,
    UINT16,
    UINT32,
    URI,
    opt,
    req,
)
from firmware.sep2.model import Sep2Model, decode_element, fill_element, uses_xsi
from firmware.sep2.values import DateTimeInterval, EventStatus
from firmware.sep2.xml import NS, XSI_NS, parse_document, qname


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource(Sep2Model):
    """Resource: anything addressable; concrete subclasses name their document element in TAG."""

    TAG: ClassVar[str]

    href: str | None = opt("href", URI, attr=True)

    def to_xml(self) -> bytes:
        """This resource as a UTF-8 2030.5 document (default namespace, schema order)."""
        from lxml import etree  # lxml: only when XML is made

        nsmap = {None: NS, "xsi": XSI_NS} if uses_xsi(type(self)) else {None: NS}
        root = etree.Element(qname(self.TAG), nsmap=nsmap)
        fill_element(root, self)
        data: bytes = etree.tostring(root, encoding="utf-8", xml_declaration=False)
        return data

    @classmethod
    def from_xml(cls, body: bytes) -> Self:
        """Parse a request body; raises ``Sep2InputError`` with a reason fit for a 400."""
        return decode_element(cls, parse_document(body, cls.TAG))


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscribableResource(Resource):
    """SubscribableResource: 0 not subscribable, 1 non-conditional, 2 conditional, 3 both."""

    subscribable: int | None = opt("subscribable", UINT8, attr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class RespondableResource(Resource):
    """RespondableResource: responses go to ``reply_to``; ``response_required`` is a bitmap."""

    reply_to: str | None = opt("replyTo", URI, attr=True)
    response_required: int | None = opt("responseRequired", HEX8, attr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentifiedObject(Resource):
    """IdentifiedObject: mRID (128-bit hex), description, version."""

    mrid: str = field(metadata=req("mRID", MRID))
    description: str | None = opt("description", STR32)
    version: int | None = opt("version", UINT16)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscribableIdentifiedObject(SubscribableResource):
    """SubscribableIdentifiedObject: an IdentifiedObject one can subscribe to."""

    mrid: str = field(metadata=req("mRID", MRID))
    description: str | None = opt("description", STR32)
    version: int | None = opt("version", UINT16)


@dataclass(frozen=True, slots=True, kw_only=True)
class RespondableSubscribableIdentifiedObject(RespondableResource):
    """RespondableSubscribableIdentifiedObject: the base of every Event."""

    subscribable: int | None = opt("subscribable", UINT8, attr=True)
    mrid: str = field(metadata=req("mRID", MRID))
    description: str | None = opt("description", STR32)
    version: int | None = opt("version", UINT16)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(RespondableSubscribableIdentifiedObject):
    """Event: something that applies over ``interval``, with its status."""

    creation_time: int = field(metadata=req("creationTime", TIME))
    event_status: EventStatus = field(metadata=req("EventStatus", EventStatus))
    interval: DateTimeInterval = field(metadata=req("interval", DateTimeInterval))


@dataclass(frozen=True, slots=True, kw_only=True)
class RandomizableEvent(Event):
    """RandomizableEvent: an Event whose start and duration may be randomized (±3600 s)."""

    randomize_duration: int | None = opt("randomizeDuration", ONE_HOUR)
    randomize_start: int | None = opt("randomizeStart", ONE_HOUR)


@dataclass(frozen=True, slots=True, kw_only=True)
class List(Resource):
    """List: ``all`` items exist, ``results`` are in this page."""

    all: int = field(metadata=req("all", UINT32, attr=True))
    results: int = field(metadata=req("results", UINT32, attr=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscribableList(SubscribableResource):
    """SubscribableList: a List one can subscribe to."""

    all: int = field(metadata=req("all", UINT32, attr=True))
    results: int = field(metadata=req("results", UINT32, attr=True))
