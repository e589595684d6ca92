"""The board-support contract: what the firmware may ask of an EVSE board.

It speaks volts, pins and relays and knows nothing of J1772 states: classifying the pilot,
deciding when a relay may close and supervising feedback are the firmware's job. Shaped like
EVerest's evse_board_support interface, plus our second relay (the discharge-authorization
path) and the dead-man watchdog that relay drive depends on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class PilotDrive(enum.Enum):
    """What the EVSE drives onto the control pilot through its 1 kOhm source resistor."""

    STEADY_POSITIVE = "x1"  # +12 V, no PWM
    PWM = "pwm"  # 1 kHz, +12 V / -12 V at a duty cycle
    STEADY_NEGATIVE = "F"  # -12 V
    ZERO = "E"  # 0 V, only where the hardware supports it


@dataclass(frozen=True, slots=True)
class PilotOutput:
    """One pilot command. ``duty_permille`` (0.1 % steps) is used only with PWM."""

    drive: PilotDrive
    duty_permille: int = 1000

    def __post_init__(self) -> None:
        if not 0 <= self.duty_permille <= 1000:
            raise ValueError(f"duty_permille {self.duty_permille} outside 0..1000")

    @property
    def pwm_running(self) -> bool:
        """True when both plateaus exist (PWM strictly between 0 and 100 %)."""
        return self.drive is PilotDrive.PWM and 0 < self.duty_permille < 1000

    @property
    def duty_pct(self) -> float:
        """Duty as the rig reports it: 100 = steady +12 V, 0 = steady -12 V or 0 V."""
        if self.drive is PilotDrive.PWM:
            return self.duty_permille / 10
        return 100.0 if self.drive is PilotDrive.STEADY_POSITIVE else 0.0


SAFE_PILOT = PilotOutput(PilotDrive.STEADY_POSITIVE)


@dataclass(frozen=True, slots=True)
class PilotSample:
    """One read of the pilot peak detectors, in mV at the pilot (divider already undone)."""

    high_mv: int
    low_mv: int
    t_ns: int


class Relay(enum.Enum):
    MAIN = "main"  # the AC contactor
    DISCHARGE = "discharge"  # the discharge-authorization path, in series with export permission


class FeedbackKind(enum.Enum):
    """How a relay's auxiliary (mirror) contact is wired to its feedback input."""

    NONE = "none"
    NORMALLY_OPEN = "normally-open"
    NORMALLY_CLOSED = "normally-closed"


class Contacts(enum.Enum):
    """A relay's main contacts as its feedback reports them."""

    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"  # no feedback wired


class RcdState(enum.Enum):
    CLEAR = "none"
    DC = "dc"  # 6 mA DC residual current
    AC = "ac"  # 30 mA AC residual current


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Positive power flows from the vehicle to the grid (discharge)."""

    power_w: float
    voltage_v: float
    frequency_hz: float


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the board publishes when it is opened."""

    max_current_a: float
    supports_state_e: bool
    supports_ventilation: bool
    supports_rcd_self_test: bool
    main_feedback: FeedbackKind
    discharge_feedback: FeedbackKind
    # the relay supply drops this long after the last dead-man toggle (docs/hardware.md)
    deadman_timeout_ms: float = 100.0

    def feedback(self, relay: Relay) -> FeedbackKind:
        return self.main_feedback if relay is Relay.MAIN else self.discharge_feedback


@runtime_checkable
class Board(Protocol):
    """An open EVSE board. Every method is quick and non-blocking; none may raise on a read.

    Opening a board puts it in its safe state (relays open, pilot +12 V); ``close()`` does it
    again. The relays close only while ``kick_deadman()`` keeps toggling the watchdog output.
    """

    @property
    def capabilities(self) -> Capabilities: ...

    def set_pilot(self, output: PilotOutput) -> None: ...

    def read_pilot(self) -> PilotSample: ...

    def read_proximity_ohm(self) -> float | None:
        """Resistance PP to PE, or None when the circuit is open."""
        ...

    def read_rcd(self) -> RcdState: ...

    def set_rcd_test(self, active: bool) -> None: ...

    def read_meter(self) -> MeterReading: ...

    def set_relay(self, relay: Relay, closed: bool) -> None: ...

    def read_feedback(self, relay: Relay) -> Contacts: ...

    def kick_deadman(self) -> None:
        """Toggle the dead-man output once; relay drive drops if the toggling stops."""
        ...

    def close(self) -> None:
        """Drive the safe state and release the hardware. Idempotent."""
        ...
