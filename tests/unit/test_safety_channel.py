"""The safety channel's messages and the safety settings' JSON: every message round-trips,
anything else is a ChannelError with a one-line reason."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.charger.faults import FaultKind
from firmware.pilot.confirm import PilotChange
from firmware.pilot.levels import PilotState
from firmware.pilot.proximity import Proximity, ProximityMode, ProximityReading
from firmware.safety import channel as ch
from firmware.safety.settings import SafetySettings, from_json, to_json
from hal import Contacts, FeedbackKind, PilotDrive, PilotOutput, RcdState, Relay
from hal.settings import AdcChip, BoardSettings, MockSettings, RpiSettings

EXAMPLES: list[ch.Message] = [
    ch.Setup(b'{"format": 1}'),
    ch.Heartbeat(123_456_789_012),
    ch.SetPilot(PilotOutput(PilotDrive.PWM, 533)),
    ch.SetPilot(PilotOutput(PilotDrive.STEADY_NEGATIVE, 0)),
    ch.RelayWish(7, Relay.DISCHARGE, True),
    ch.Shutdown(),
    ch.Ready(32.0, True, False, FaultKind.MAIN_WELDED, True),
    ch.Ready(80.0, False, True, None, False),
    PilotChange(PilotState.B, PilotState.DIODE_FAULT, 5_000_000, True),
    ch.Trip("pilot_b", 9, None),
    ch.Trip("contactor_mismatch", 10, FaultKind.DISCHARGE_FAILED_TO_CLOSE),
    ch.RelayResult(2**32 - 1, Relay.MAIN, True, False),
    ch.RcdChange(RcdState.DC, 11),
    ch.ProximityChange(ProximityReading(Proximity.CABLE, 32.0), 12),
    ch.ProximityChange(ProximityReading(Proximity.RELEASE_PRESSED, None), 13),
    ch.FaultRecorded(FaultKind.RCD_SELF_TEST, False),
    ch.Status(1, 2, 3, 4, True, False, -3000.5, 240.0, 60.0, ("pilot_e", "rcd_dc")),
    ch.Status(1, 2, 3, 4, False, False, 0.0, 0.0, 0.0, ()),
    ch.SimulatedVehicle(True, False),
    ch.Failed("spi transfer failed"),
    ch.SafeState(Contacts.OPEN, Contacts.UNKNOWN),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: ch.Message) -> None:
    assert ch.decode(ch.encode(message)) == message


@given(
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**64 - 1),
    st.floats(allow_nan=False, width=64),
    st.sets(st.sampled_from(["pilot_e", "pilot_f", "diode_fault", "rcd_ac", "rcd_dc"])),
)
def test_status_round_trips_any_value(
    t_ns: int, ticks: int, watts: float, latched: set[str]
) -> None:
    status = ch.Status(t_ns, ticks, 0, t_ns, True, True, watts, 230.0, 50.0, tuple(sorted(latched)))
    assert ch.decode(ch.encode(status)) == status


def test_messages_of_another_version_are_refused() -> None:
    data = bytearray(ch.encode(ch.Heartbeat(1)))
    data[0] = ch.VERSION + 1
    with pytest.raises(ch.ChannelError, match="version"):
        ch.decode(bytes(data))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no header"),
        (b"\x01", "no header"),
        (bytes([ch.VERSION, 200]), "unknown message type 200"),
        (ch.encode(ch.Heartbeat(1))[:-1], "expected 8"),
        (ch.encode(ch.Heartbeat(1)) + b"\0", "expected 8"),
        (ch.encode(ch.Shutdown()) + b"x", "expected 0"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ch.ChannelError, match=reason):
        ch.decode(data)


def test_a_value_neither_side_defines_is_refused() -> None:
    body = struct.pack("<I32s?", 1, b"heater", True)
    with pytest.raises(ch.ChannelError, match="'heater' is not a Relay"):
        ch.decode(bytes([ch.VERSION, 4]) + body)


@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_channel_error(data: bytes) -> None:
    with contextlib.suppress(ch.ChannelError):  # anything else fails the test
        ch.decode(data)


def test_settings_round_trip_with_every_board_field() -> None:
    settings = SafetySettings(
        board=BoardSettings(
            backend="rpi",
            main_feedback=FeedbackKind.NORMALLY_CLOSED,
            discharge_feedback=FeedbackKind.NONE,
            mock=MockSettings(rig_link="/tmp/rig", seed=4, sabotage="interlock-off"),
            rpi=RpiSettings(pilot_zero_pin=16, pp_channel=None, adc_chip=AdcChip.MCP3202,
                            safe_pilot=PilotDrive.STEADY_NEGATIVE, rcd_fault=RcdState.AC),
        ),
        ventilation=True,
        sample_rate_hz=500,
        proximity=ProximityMode.TYPE2,
        state_dir=Path("/var/lib/evse-gatekeeper"),
        log_level="debug",
        realtime_priority=0,
    )  # fmt: skip
    assert from_json(to_json(settings)) == settings


@pytest.mark.parametrize(
    "raw",
    [b'{"format": 2}', b"[]", b'{"format": 1, "board": {"heater": 1}}'],
)
def test_settings_of_another_shape_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        from_json(raw)
