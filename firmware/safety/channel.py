"""The message channel between the safety process and the gatekeeper process.

One ``SOCK_SEQPACKET`` socketpair: the kernel keeps each message whole, so a message is one
``send`` and one ``recv``. Every message starts with the protocol version and its type; its
body has a fixed layout per type (``struct``, little-endian), enum members travel as their
stable ``value`` text in fixed-width fields, so both sides check lengths and values and a
mismatch is a :class:`ChannelError`, never a guess. Only the one ``Setup`` message carries
JSON (the board's settings, sent once before the first tick).

Down (gatekeeper -> safety): what the gatekeeper wishes. Up (safety -> gatekeeper): what the
board did and saw. The safety process grants or refuses each wish on its own checks
(docs/design.md, "The safety process").
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from firmware.charger.faults import FaultKind
from firmware.errors import GatekeeperError
from firmware.pilot.confirm import PilotChange as PilotChange
from firmware.pilot.levels import PilotState
from firmware.pilot.proximity import Proximity, ProximityReading
from firmware.safety.interlock import Trip as Trip  # these three travel up as they are
from firmware.safety.sampler import ProximityChange as ProximityChange
from firmware.safety.sampler import RcdChange as RcdChange
from hal.contract import Contacts, PilotDrive, PilotOutput, RcdState, Relay

VERSION = 1
MAX_MESSAGE = 65536  # the Setup message is the only large one (a few kB of JSON)
_HEAD = struct.Struct("<BB")
E = TypeVar("E", PilotState, PilotDrive, RcdState, Proximity, Contacts, FaultKind, Relay)
_NAME = 32  # bytes for an enum value, a trip reason or a fault kind


class ChannelError(GatekeeperError):
    """Raised when a message has another version, an unknown type, a wrong length or a
    value neither side defines."""


def _name(text: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > _NAME:
        raise ChannelError(f"{text!r} is longer than {_NAME} bytes")
    return raw


def _text(raw: bytes) -> str:
    try:
        return raw.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError as err:
        raise ChannelError("a name field is not ASCII") from err


def _member(kind: type[E], raw: bytes) -> E:
    text = _text(raw)
    try:
        return kind(text)
    except ValueError as err:
        raise ChannelError(f"{text!r} is not a {kind.__name__}") from err


# --- down: the gatekeeper's wishes -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setup:
    settings_json: bytes


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sent_ns: int


@dataclass(frozen=True, slots=True)
class SetPilot:
    output: PilotOutput


@dataclass(frozen=True, slots=True)
class RelayWish:
    """Open (always granted) or close (granted only if every check holds at that instant)."""

    request: int
    relay: Relay
    closed: bool


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Open both relays, confirm them open, report, exit."""


# --- up: what the board did and saw ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The board is safe, the boot weld check has run, the interlock is armed."""

    max_current_a: float
    supports_state_e: bool
    supports_ventilation: bool
    permanent: FaultKind | None  # recorded before this start, or the RCD self-test
    realtime: bool  # SCHED_FIFO and locked memory were granted


@dataclass(frozen=True, slots=True)
class RelayResult:
    request: int
    relay: Relay
    closed: bool  # what was wished
    granted: bool


@dataclass(frozen=True, slots=True)
class FaultRecorded:
    """A contactor fault latched; ``recorded`` says whether the record reached the disk."""

    kind: FaultKind
    recorded: bool


@dataclass(frozen=True, slots=True)
class Status:
    """Sent every 25 ms: the sampler's health, the meter and what the interlock holds."""

    t_ns: int
    ticks: int
    overruns: int
    max_late_ns: int
    main_closed: bool
    discharge_closed: bool
    meter_w: float
    voltage_v: float
    frequency_hz: float
    latched: tuple[str, ...]  # the interlock's latches, e.g. ("rcd_dc",)


@dataclass(frozen=True, slots=True)
class SimulatedVehicle:
    """Mock board only: the simulated vehicle's plug and PLC modem, for the mock modems."""

    plugged: bool
    plc_on: bool


@dataclass(frozen=True, slots=True)
class Failed:
    error: str


@dataclass(frozen=True, slots=True)
class SafeState:
    """After a shutdown: what the feedback showed once both relays were commanded open."""

    main: Contacts
    discharge: Contacts


Down = Setup | Heartbeat | SetPilot | RelayWish | Shutdown
Up = (
    Ready
    | PilotChange
    | Trip
    | RelayResult
    | RcdChange
    | ProximityChange
    | FaultRecorded
    | Status
    | SimulatedVehicle
    | Failed
    | SafeState
)
Message = Down | Up

_HEARTBEAT = struct.Struct("<q")
_PILOT = struct.Struct(f"<{_NAME}sH")
_RELAY = struct.Struct(f"<I{_NAME}s?")
_READY = struct.Struct(f"<d??{_NAME}s?")
_TRIPPED = struct.Struct(f"<{_NAME}sq{_NAME}s")
_RESULT = struct.Struct(f"<I{_NAME}s??")
_CHANGE = struct.Struct(f"<{_NAME}s{_NAME}sq?")
_RCD = struct.Struct(f"<{_NAME}sq")
_PROXIMITY = struct.Struct(f"<{_NAME}sdq")
_PERMANENT = struct.Struct(f"<{_NAME}s?")
_STATUS = struct.Struct("<qQQq??ddd128s")
_VEHICLE = struct.Struct("<??")
_FAILED = struct.Struct("<256s")
_SAFE = struct.Struct(f"<{_NAME}s{_NAME}s")

_TYPES: dict[type, int] = {
    Setup: 1, Heartbeat: 2, SetPilot: 3, RelayWish: 4, Shutdown: 5,
    Ready: 65, PilotChange: 66, Trip: 67, RelayResult: 68, RcdChange: 69,
    ProximityChange: 70, FaultRecorded: 71, Status: 72, SimulatedVehicle: 73, Failed: 74,
    SafeState: 75,
}  # fmt: skip


def _fault_name(kind: FaultKind | None) -> bytes:
    return b"" if kind is None else _name(kind.value)


def _fault(raw: bytes) -> FaultKind | None:
    return _member(FaultKind, raw) if raw.rstrip(b"\0") else None


def encode(message: Message) -> bytes:
    """The bytes of one message (one ``send``)."""
    head = _HEAD.pack(VERSION, _TYPES[type(message)])
    return head + _body(message)


def _body(message: Message) -> bytes:
    match message:
        case Setup(settings_json):
            return settings_json
        case Heartbeat(sent_ns):
            return _HEARTBEAT.pack(sent_ns)
        case SetPilot(output):
            return _PILOT.pack(_name(output.drive.value), output.duty_permille)
        case RelayWish(request, relay, closed):
            return _RELAY.pack(request, _name(relay.value), closed)
        case Shutdown():
            return b""
        case Ready(amps, state_e, ventilation, permanent, realtime):
            return _READY.pack(amps, state_e, ventilation, _fault_name(permanent), realtime)
        case PilotChange(previous, current, t_ns, own):
            return _CHANGE.pack(_name(previous.value), _name(current.value), t_ns, own)
        case Trip(reason, t_ns, fault):
            return _TRIPPED.pack(_name(reason), t_ns, _fault_name(fault))
        case RelayResult(request, relay, closed, granted):
            return _RESULT.pack(request, _name(relay.value), closed, granted)
        case RcdChange(state, t_ns):
            return _RCD.pack(_name(state.value), t_ns)
        case ProximityChange(reading, t_ns):
            amps = math.nan if reading.cable_a is None else reading.cable_a
            return _PROXIMITY.pack(_name(reading.state.value), amps, t_ns)
        case FaultRecorded(kind, recorded):
            return _PERMANENT.pack(_name(kind.value), recorded)
        case Status():
            return _status_body(message)
        case SimulatedVehicle(plugged, plc_on):
            return _VEHICLE.pack(plugged, plc_on)
        case Failed(error):
            return _FAILED.pack(error.encode("utf-8", "replace")[:256])
        case SafeState(main, discharge):
            return _SAFE.pack(_name(main.value), _name(discharge.value))
    raise ChannelError(f"cannot encode {type(message).__name__}")


def _status_body(s: Status) -> bytes:
    latched = ",".join(s.latched).encode("ascii")[:128]
    fields = (s.t_ns, s.ticks, s.overruns, s.max_late_ns, s.main_closed, s.discharge_closed)
    return _STATUS.pack(*fields, s.meter_w, s.voltage_v, s.frequency_hz, latched)


def decode(data: bytes) -> Message:
    """One received message; ChannelError when it is not one this version defines."""
    if len(data) < _HEAD.size:
        raise ChannelError(f"a message of {len(data)} bytes has no header")
    version, kind = _HEAD.unpack_from(data)
    if version != VERSION:
        raise ChannelError(f"channel version {version}, expected {VERSION}")
    body = data[_HEAD.size :]
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ChannelError(f"unknown message type {kind}")
    layout, build = decoder
    if layout is not None and len(body) != layout.size:
        raise ChannelError(f"message type {kind} has {len(body)} bytes, expected {layout.size}")
    try:
        return build(body if layout is None else layout.unpack(body))
    except (ValueError, TypeError) as err:
        raise ChannelError(f"message type {kind}: {err}") from err


def _decode_status(f: tuple[Any, ...]) -> Status:
    text = _text(f[9])
    latched = tuple(text.split(",")) if text else ()
    return Status(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], latched)


def _decode_proximity(f: tuple[Any, ...]) -> ProximityChange:
    amps = float(f[1])
    cable = None if math.isnan(amps) else amps
    return ProximityChange(ProximityReading(_member(Proximity, f[0]), cable), int(f[2]))


_DECODERS: dict[int, tuple[struct.Struct | None, Callable[[Any], Message]]] = {}


def _register() -> None:
    t = _TYPES
    d: dict[int, tuple[struct.Struct | None, Callable[[Any], Message]]] = {
        t[Setup]: (None, lambda body: Setup(bytes(body))),
        t[Heartbeat]: (_HEARTBEAT, lambda f: Heartbeat(f[0])),
        t[SetPilot]: (_PILOT, lambda f: SetPilot(PilotOutput(_member(PilotDrive, f[0]), f[1]))),
        t[RelayWish]: (_RELAY, lambda f: RelayWish(f[0], _member(Relay, f[1]), f[2])),
        t[Shutdown]: (struct.Struct(""), lambda f: Shutdown()),
        t[Ready]: (_READY, lambda f: Ready(f[0], f[1], f[2], _fault(f[3]), f[4])),
        t[PilotChange]: (_CHANGE, lambda f: PilotChange(
            _member(PilotState, f[0]), _member(PilotState, f[1]), f[2], f[3])),
        t[Trip]: (_TRIPPED, lambda f: Trip(_text(f[0]), f[1], _fault(f[2]))),
        t[RelayResult]: (_RESULT, lambda f: RelayResult(f[0], _member(Relay, f[1]), f[2], f[3])),
        t[RcdChange]: (_RCD, lambda f: RcdChange(_member(RcdState, f[0]), f[1])),
        t[ProximityChange]: (_PROXIMITY, _decode_proximity),
        t[FaultRecorded]: (_PERMANENT, lambda f: FaultRecorded(_member(FaultKind, f[0]), f[1])),
        t[Status]: (_STATUS, _decode_status),
        t[SimulatedVehicle]: (_VEHICLE, lambda f: SimulatedVehicle(f[0], f[1])),
        t[Failed]: (_FAILED, lambda f: Failed(f[0].rstrip(b"\0").decode("utf-8", "replace"))),
        t[SafeState]: (_SAFE, lambda f: SafeState(_member(Contacts, f[0]),
                                                  _member(Contacts, f[1]))),
    }  # fmt: skip
    _DECODERS.update(d)


_register()
