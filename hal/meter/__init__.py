"""The EVSE's energy meter: its contract and backends, chosen by name like the board's.

``open_meter`` returns a ``Meter`` not yet polling (``start()`` begins). The Modbus backends
import pymodbus lazily, so a board that only uses its own meter never loads it.
"""

from __future__ import annotations

from collections.abc import Callable

from hal.meter.board import BoardMeter, Report
from hal.meter.contract import BusError, Health, Meter, Reading
from hal.meter.health import Limits
from hal.meter.registers import MapError, RegisterMap, builtin_maps, load_map
from hal.meter.settings import BACKENDS, MeterSettings

BOARDS_WITH_A_METER = ("mock",)  # the reference HAT has none (docs/hardware.md)


def open_meter(
    settings: MeterSettings,
    board_backend: str,
    board_report: Callable[[], Report | None],
) -> Meter:
    """The meter ``settings.backend`` names. ``board_report``: the board's last reading, for
    the ``board`` backend. Raises ``MapError`` for a register map that cannot be used."""
    if settings.backend == "board":
        return BoardMeter(board_report, board_backend in BOARDS_WITH_A_METER)
    from hal.meter.modbus import ModbusBus
    from hal.meter.poller import PolledMeter

    register_map = load_map(settings.map)
    limits = Limits(
        max_power_w=settings.max_power_w,
        nominal_voltage_v=settings.nominal_voltage_v,
        stale_ms=settings.stale_ms,
        recover_polls=settings.recover_polls,
        frozen_s=settings.frozen_s,
        counter_step_wh=register_map.counter_step_wh,
    )
    bus = ModbusBus(settings)
    describe = {"backend": settings.backend, "map": register_map.name, "where": bus.where,
                "device_id": settings.device_id}  # fmt: skip
    return PolledMeter(bus, register_map, limits, settings.poll_ms, settings.idle_poll_ms,
                       describe)  # fmt: skip


__all__ = [
    "BACKENDS",
    "BusError",
    "Health",
    "Limits",
    "MapError",
    "Meter",
    "MeterSettings",
    "Reading",
    "RegisterMap",
    "builtin_maps",
    "load_map",
    "open_meter",
]
