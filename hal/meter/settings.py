"""Meter settings: what the composition root reads from ``[meter]`` and hands in (the HAL
does not parse TOML; ``firmware.meter.config`` does)."""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("board", "modbus-rtu", "modbus-tcp")


@dataclass(frozen=True, slots=True)
class MeterSettings:
    backend: str = "board"  # the board's own meter (the mock board's model; none on the HAT)
    map: str = "sdm630"  # a built-in register map, or the path of a map file
    device_id: int = 1  # the meter's Modbus address (unit id)
    # Modbus RTU over RS-485 (pyserial): docs/hardware.md "Energy meter"
    port: str = "/dev/ttyAMA0"
    baudrate: int = 9600
    parity: str = "N"  # N, E or O: as set on the meter
    stopbits: int = 1
    # the transceiver's receiver hears our own request (auto-direction parts keep it enabled
    # while sending; docs/hardware.md): drop that echo before the answer
    local_echo: bool = False
    # Modbus TCP (a meter with Ethernet, or an RS-485 gateway)
    host: str = ""
    tcp_port: int = 502
    timeout_ms: float = 200.0  # one request's answer
    poll_ms: float = 100.0  # power, while the main contactor is closed (the gate needs 10 Hz)
    idle_poll_ms: float = 1000.0  # otherwise
    stale_ms: float = 500.0  # no good reading this long while main is closed: unhealthy
    recover_polls: int = 10  # good readings in a row before an unhealthy meter counts again
    frozen_s: float = 30.0  # the same power, voltage and frequency this long: unhealthy; 0 off
    phases: int = 1  # the circuit's phases (the plausible power is per phase times this)
    nominal_voltage_v: float = 240.0  # line to neutral
    # not from [meter]: the circuit's rating ([charger] max_current_a), for plausibility
    max_current_a: float = 80.0

    @property
    def max_power_w(self) -> float:
        """Beyond this (either sign) a power reading cannot be right: the circuit's rating
        with a quarter of margin (docs/meter.md "Health")."""
        from hal.meter.health import POWER_MARGIN

        return self.max_current_a * self.nominal_voltage_v * self.phases * POWER_MARGIN
