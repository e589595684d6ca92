"""Qualcomm vendor-specific ``VS_*`` messages for the local modem (payload from byte 20)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from firmware.errors import ProtocolError
from firmware.plc.frame import MIN_FRAME, QCA_SOUND_NOTICE
from firmware.plc.messages import Message, message

VERSION_FIELD = 128  # open-plc-utils PLC_VERSION_STRING


@message(0xA000)
@dataclass(frozen=True, slots=True)
class VsSwVerReq(Message):
    LAYOUT: ClassVar = ()


@message(0xA001)
@dataclass(frozen=True, slots=True)
class VsSwVerCnf(Message):
    """20 status, 21 device id, 22 version length, 23.. the version string (NUL-padded)."""

    status: int
    device_id: int
    version: str
    LAYOUT: ClassVar = ("B", "B", "s")  # the string is packed by hand below

    def __post_init__(self) -> None:
        for name in ("status", "device_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must fit in a byte, got {value!r}")
        raw = self.version.encode("ascii")
        if len(raw) >= VERSION_FIELD or b"\x00" in raw:
            raise ValueError(f"version must be < {VERSION_FIELD} ASCII bytes without NUL")

    def pack_body(self) -> bytes:
        raw = self.version.encode("ascii") + b"\x00"  # the length counts the terminator
        return bytes([self.status, self.device_id, len(raw)]) + raw.ljust(VERSION_FIELD, b"\0")

    @classmethod
    def unpack_frame_body(cls, body: bytes, header_len: int) -> VsSwVerCnf:
        """Lenient on what follows the version (firmware generations differ), strict on
        the version itself: its length must fit the field and the frame."""
        if header_len + len(body) < MIN_FRAME or len(body) < 3:
            raise ProtocolError("VsSwVerCnf frame too short")
        status, device_id, length = body[0], body[1], body[2]
        if length > VERSION_FIELD or 3 + length > len(body):
            raise ProtocolError(f"VsSwVerCnf version length {length} overruns the frame")
        text = body[3 : 3 + length].split(b"\x00", 1)[0]
        return cls(status, device_id, text.decode("ascii"))


@message(0xA01C)
@dataclass(frozen=True, slots=True)
class VsRsDevReq(Message):
    LAYOUT: ClassVar = ()


@message(0xA01D)
@dataclass(frozen=True, slots=True)
class VsRsDevCnf(Message):
    status: int  # 20
    LAYOUT: ClassVar = ("B",)


@message(0xA038)
@dataclass(frozen=True, slots=True)
class VsNwInfoReq(Message):
    LAYOUT: ClassVar = ()


@dataclass(frozen=True, slots=True)
class NwStation:
    """One station of a network, as VS_NW_INFO.CNF lists it (15 bytes)."""

    mac: bytes  # 6
    tei: int
    bridged_da: bytes  # 6, the address bridged behind it
    avg_tx_mbps: int
    avg_rx_mbps: int

    SIZE: ClassVar = 15


@dataclass(frozen=True, slots=True)
class NwNetwork:
    """One network the modem belongs to (18 bytes), then its stations."""

    nid: bytes  # 7
    snid: int
    tei: int
    role: int  # 0 station, 1 proxy coordinator, 2 central coordinator
    cco_mac: bytes  # 6
    cco_tei: int
    stations: tuple[NwStation, ...]

    SIZE: ClassVar = 18


MAX_NETWORKS = 8
MAX_STATIONS = 64


@message(0xA039)
@dataclass(frozen=True, slots=True)
class VsNwInfoCnf(Message):
    """20 NUMAVLNS, then per network: 7 NID, SNID, TEI, ROLE, 6 CCo MAC, CCo TEI, NUMSTAS,
    then per station: 6 MAC, TEI, 6 bridged DA, avg TX, avg RX (the MMV 0 layout that
    open-plc-utils' NetInfo1 reads). Variable length: the counts must match the frame."""

    networks: tuple[NwNetwork, ...]
    LAYOUT: ClassVar = ("s",)  # packed by hand below

    def __post_init__(self) -> None:
        if len(self.networks) > MAX_NETWORKS:
            raise ValueError(f"at most {MAX_NETWORKS} networks")
        for net in self.networks:
            _check_bytes("nid", net.nid, 7)
            _check_bytes("cco_mac", net.cco_mac, 6)
            for name in ("snid", "tei", "role", "cco_tei"):
                _check_byte(name, getattr(net, name))
            if len(net.stations) > MAX_STATIONS:
                raise ValueError(f"at most {MAX_STATIONS} stations per network")
            for sta in net.stations:
                _check_bytes("mac", sta.mac, 6)
                _check_bytes("bridged_da", sta.bridged_da, 6)
                for name in ("tei", "avg_tx_mbps", "avg_rx_mbps"):
                    _check_byte(name, getattr(sta, name))

    def pack_body(self) -> bytes:
        out = bytearray([len(self.networks)])
        for net in self.networks:
            out += net.nid + bytes([net.snid, net.tei, net.role]) + net.cco_mac
            out += bytes([net.cco_tei, len(net.stations)])
            for sta in net.stations:
                out += sta.mac + bytes([sta.tei]) + sta.bridged_da
                out += bytes([sta.avg_tx_mbps, sta.avg_rx_mbps])
        return bytes(out)

    @classmethod
    def unpack_frame_body(cls, body: bytes, header_len: int) -> VsNwInfoCnf:
        if not body:
            raise ProtocolError("VsNwInfoCnf frame too short")
        count, at = body[0], 1
        if count > MAX_NETWORKS:
            raise ProtocolError(f"VsNwInfoCnf lists {count} networks (at most {MAX_NETWORKS})")
        networks = []
        for _ in range(count):
            head = body[at : at + NwNetwork.SIZE]
            if len(head) < NwNetwork.SIZE:
                raise ProtocolError("VsNwInfoCnf network entry overruns the frame")
            at += NwNetwork.SIZE
            stations = []
            for _ in range(head[17]):
                raw = body[at : at + NwStation.SIZE]
                if len(raw) < NwStation.SIZE:
                    raise ProtocolError("VsNwInfoCnf station entry overruns the frame")
                at += NwStation.SIZE
                stations.append(NwStation(raw[0:6], raw[6], raw[7:13], raw[13], raw[14]))
            networks.append(
                NwNetwork(
                    head[0:7], head[7], head[8], head[9], head[10:16], head[16], tuple(stations)
                )
            )
        expected = max(MIN_FRAME, header_len + at)
        if header_len + len(body) != expected:
            raise ProtocolError(
                f"VsNwInfoCnf frame is {header_len + len(body)} bytes, expected {expected}"
            )
        return cls(tuple(networks))


def _check_byte(name: str, value: object) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must fit in a byte, got {value!r}")


def _check_bytes(name: str, value: object, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError(f"{name} must be {size} bytes")


@message(0xA0B8)
@dataclass(frozen=True, slots=True)
class VsPlLinkStatusReq(Message):
    LAYOUT: ClassVar = ()


@message(0xA0B9)
@dataclass(frozen=True, slots=True)
class VsPlLinkStatusCnf(Message):
    status: int  # 20
    link: int  # 21, 1 = up
    LAYOUT: ClassVar = ("B", "B")


@message(QCA_SOUND_NOTICE)
@dataclass(frozen=True, slots=True)
class QcaSoundNotice(Message):
    """The indication a real QCA7005 hands its host with every sound it hears (MMTYPE 0xA14E,
    OUI 00:00:00; docs/homeplug-slac.md "Seen in the field"). Its content is not published and
    nothing here reads it: it is recognized so that it is not counted as malformed, then
    ignored. Any length from the 60-byte minimum up is accepted."""

    body: bytes
    LAYOUT: ClassVar = ("s",)  # kept whole, never interpreted

    def __post_init__(self) -> None:
        if not isinstance(self.body, bytes):
            raise ValueError("body must be bytes")

    def pack_body(self) -> bytes:
        return self.body

    @classmethod
    def unpack_frame_body(cls, body: bytes, header_len: int) -> QcaSoundNotice:
        if header_len + len(body) < MIN_FRAME:
            raise ProtocolError("QcaSoundNotice frame too short")
        return cls(body)
