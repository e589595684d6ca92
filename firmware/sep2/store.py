"""What each vehicle has told the server, by LFDI, and what the server has shown it.

A vehicle gets its EndDevice index on its first request and keeps it until the daemon
stops (URIs stay fixed for the session). The store records the PEV's PUTs (DeviceInformation,
PowerStatus, DERCapability, DERSettings, DERAvailability), its DERStatus heartbeats with their
arrival time, its Responses, subscriptions and mirrored meter readings, and which of the
profile's reads it has made; every change is reported as a typed ``PevEvent`` (a PUT carries
its parsed resource) to whoever decides
(the J3072 session). It holds no policy.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from firmware.sep2.der import DERCapability, DERSettings
from firmware.sep2.der_status import DERAvailability, DERStatus
from firmware.sep2.device import DeviceInformation, PowerStatus
from firmware.sep2.metering import MirrorMeterReading, MirrorUsagePoint
from firmware.sep2.pubsub import Subscription
from firmware.sep2.response import Response

if TYPE_CHECKING:
    from firmware.sep2.site import SessionProgram
    from firmware.sep2.tls import PeerIdentity

MAX_RESPONSES = 256  # per vehicle; the oldest go first
MAX_SUBSCRIPTIONS = 8
MAX_MIRRORS = 8
MAX_READINGS = 64


class SiteRead(enum.StrEnum):
    """The profile's reads of the site's resources that the J3072 exchange waits for."""

    SITE_LIMITS = "site_limits"  # the site's DERSettings (setMaxW ...)
    CONTROLS = "controls"  # the DERControl list
    DEFAULT_CONTROL = "default_control"


@dataclass(frozen=True, slots=True)
class VehicleSeen:
    """A vehicle's first request: it has an EndDevice now."""

    lfdi: str

    @property
    def name(self) -> str:
        """A stable word for logs and tests, as for every event here."""
        return "connected"


@dataclass(frozen=True, slots=True)
class ResourcePut:
    """The vehicle PUT one of its resources (DeviceInformation, PowerStatus, DERCapability,
    DERSettings, DERAvailability) or POSTed a DERStatus heartbeat: the parsed resource."""

    lfdi: str
    resource: PevResource

    @property
    def name(self) -> str:
        return _FIELD_OF[type(self.resource)]


@dataclass(frozen=True, slots=True)
class SiteReadBy:
    lfdi: str
    what: SiteRead

    @property
    def name(self) -> str:
        return f"read:{self.what}"


@dataclass(frozen=True, slots=True)
class ResponsePosted:
    lfdi: str
    response: Response

    @property
    def name(self) -> str:
        return "response"


@dataclass(frozen=True, slots=True)
class MeteringPosted:
    """A mirror usage point or a mirrored reading."""

    lfdi: str

    @property
    def name(self) -> str:
        return "metering"


PevResource = (
    DeviceInformation | PowerStatus | DERCapability | DERSettings | DERAvailability | DERStatus
)
PevEvent = VehicleSeen | ResourcePut | SiteReadBy | ResponsePosted | MeteringPosted
PEV_EVENTS = (VehicleSeen, ResourcePut, SiteReadBy, ResponsePosted, MeteringPosted)
_FIELD_OF: dict[type, str] = {
    DeviceInformation: "device_information",
    PowerStatus: "power_status",
    DERCapability: "der_capability",
    DERSettings: "der_settings",
    DERAvailability: "der_availability",
    DERStatus: "der_status",
}


@dataclass(slots=True)
class PevRecord:
    identity: PeerIdentity
    n: int  # the EndDevice index: /edev/<n>
    device_information: DeviceInformation | None = None
    power_status: PowerStatus | None = None
    der_capability: DERCapability | None = None
    der_settings: DERSettings | None = None
    der_availability: DERAvailability | None = None
    der_status: DERStatus | None = None
    status_at_ns: int | None = None  # when the last DERStatus arrived (monotonic)
    responses: dict[int, Response] = field(default_factory=dict)  # by id, oldest first
    created_at: int = 0  # wall-clock seconds of the first request (EndDevice.changedTime)
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    # scheme://host:port each subscription was made through (its Notifications' absolute URI)
    subscription_bases: dict[int, str] = field(default_factory=dict)
    reads: set[SiteRead] = field(default_factory=set)
    read_at_ns: dict[SiteRead, int] = field(default_factory=dict)  # the latest read of each
    program: SessionProgram | None = None  # this session's controls (SiteResources.program)
    energize: bool = False  # DefaultDERControl.opModEnergize as this vehicle sees it
    _next_sub: itertools.count[int] = field(default_factory=itertools.count)
    _next_response: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def lfdi(self) -> str:
        return self.identity.lfdi


@dataclass(slots=True)
class MirrorRecord:
    owner_lfdi: str
    point: MirrorUsagePoint
    readings: deque[MirrorMeterReading] = field(default_factory=lambda: deque(maxlen=MAX_READINGS))


class StoreFull(Exception):
    """Raised when a vehicle asks for more subscriptions or mirrors than the server keeps."""


class Sep2Store:
    def __init__(self, on_event: Callable[[PevEvent], None] = lambda event: None) -> None:
        self._on_event = on_event
        self._by_lfdi: dict[str, PevRecord] = {}
        self._by_n: dict[int, PevRecord] = {}
        self.mirrors: dict[int, MirrorRecord] = {}
        self._next_mirror = itertools.count()
        self._transports: dict[str, weakref.WeakSet[asyncio.BaseTransport]] = {}

    def saw_connection(self, lfdi: str, transport: asyncio.BaseTransport) -> None:
        """A request of ``lfdi`` arrived on this TLS connection."""
        self._transports.setdefault(lfdi, weakref.WeakSet()).add(transport)

    def peers(self, lfdi: str) -> list[tuple[object, ...]]:
        """The peer addresses of the vehicle's open connections (asyncio's "peername")."""
        found = []
        for transport in self._transports.get(lfdi, ()):
            name = transport.get_extra_info("peername")
            if not transport.is_closing() and isinstance(name, tuple):
                found.append(name)
        return found

    def end_session(self, lfdi: str) -> None:
        """The vehicle left: forget what it said and read (a new plug-in starts the exchange
        again) and its subscriptions; keep its EndDevice index and mirrors."""
        record = self._by_lfdi.get(lfdi)
        if record is None:
            return
        for name in ("device_information", "power_status", "der_capability", "der_settings",
                     "der_availability", "der_status", "status_at_ns"):  # fmt: skip
            setattr(record, name, None)
        record.responses.clear()
        record.subscriptions.clear()
        record.subscription_bases.clear()
        record.reads.clear()
        record.read_at_ns.clear()
        record.program = None  # a new session gets controls of its own
        record.energize = False

    def record_for(self, identity: PeerIdentity, now_s: int = 0) -> PevRecord:
        record = self._by_lfdi.get(identity.lfdi)
        if record is None:
            record = PevRecord(identity, len(self._by_n), created_at=now_s)
            self._by_lfdi[identity.lfdi] = record
            self._by_n[record.n] = record
            self._on_event(VehicleSeen(identity.lfdi))
        return record

    def get(self, lfdi: str) -> PevRecord | None:
        return self._by_lfdi.get(lfdi)

    def records(self) -> list[PevRecord]:
        return list(self._by_n.values())

    def note_read(self, record: PevRecord, what: SiteRead, now_ns: int = 0) -> None:
        """The vehicle read part of the site's program: reported the first time, the time of
        the latest kept (§4.8.3: a vehicle waking re-reads its controls)."""
        record.read_at_ns[what] = now_ns
        if what not in record.reads:
            record.reads.add(what)
            self._on_event(SiteReadBy(record.lfdi, what))

    def put(self, record: PevRecord, what: str, value: PevResource, now_ns: int) -> None:
        """Store one of the PEV's resources (``what`` is the record's field name)."""
        setattr(record, what, value)
        if isinstance(value, DERStatus):
            record.status_at_ns = now_ns
        self._on_event(ResourcePut(record.lfdi, value))

    def add_response(self, record: PevRecord, response: Response) -> int:
        """Keep it under a new id (the oldest go beyond MAX_RESPONSES); returns the id."""
        k = next(record._next_response)
        record.responses[k] = response
        while len(record.responses) > MAX_RESPONSES:
            del record.responses[next(iter(record.responses))]
        self._on_event(ResponsePosted(record.lfdi, response))
        return k

    def subscribe(self, record: PevRecord, subscription: Subscription, server_base: str) -> int:
        """Keep it under a new id; ``server_base`` is the server's ``scheme://host:port`` as the
        vehicle reached it when subscribing."""
        if len(record.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise StoreFull(f"at most {MAX_SUBSCRIPTIONS} subscriptions per vehicle")
        k = next(record._next_sub)
        record.subscriptions[k] = subscription
        record.subscription_bases[k] = server_base
        return k

    def unsubscribe(self, record: PevRecord, k: int) -> bool:
        """Forget subscription ``k``; whether there was one."""
        record.subscription_bases.pop(k, None)
        return record.subscriptions.pop(k, None) is not None

    def add_mirror(self, record: PevRecord, point: MirrorUsagePoint) -> int:
        """A new mirror, or the existing one with the same mRID (2030.5: POST is idempotent
        by mRID)."""
        for k, mirror in self.mirrors.items():
            if mirror.owner_lfdi == record.lfdi and mirror.point.mrid == point.mrid:
                return k
        mine = [m for m in self.mirrors.values() if m.owner_lfdi == record.lfdi]
        if len(mine) >= MAX_MIRRORS:
            raise StoreFull(f"at most {MAX_MIRRORS} mirror usage points per vehicle")
        k = next(self._next_mirror)
        self.mirrors[k] = MirrorRecord(record.lfdi, point)
        self._on_event(MeteringPosted(record.lfdi))
        return k

    def add_reading(self, record: PevRecord, k: int, reading: MirrorMeterReading) -> None:
        self.mirrors[k].readings.append(reading)
        self._on_event(MeteringPosted(record.lfdi))
