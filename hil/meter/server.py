"""A meter played by pymodbus's own server (its SimDevice datastore), serving the registers
of one register map over Modbus TCP or RTU, on an event loop in a thread of its own.

The test sets the quantities in our units (``set(power_w=...)``); the server encodes them
as the map says on every read, adds a little noise to the voltage as a live meter would,
and can answer every read (or every n-th) with a Modbus exception, or none at all. Given
``words`` it serves those raw register words as written instead, whatever the map says, so
a test of a map does not depend on the map.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from concurrent.futures import Future
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hal.meter.registers import RegisterMap

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # refusals it logs are the point
VOLTAGE_NOISE_V = 0.05


class SimulatedMeter:
    def __init__(
        self,
        register_map: RegisterMap,
        device_id: int = 1,
        seed: int = 0,
        words: dict[int, int] | None = None,
        function: int | None = None,
    ) -> None:
        """``words``: serve these registers (address: raw 16-bit word) and nothing else,
        instead of the map's encoding of ``values``; ``function``: as input registers (4)
        or holding registers (3), the map's by default."""
        self.map = register_map
        self.function = function or register_map.function
        self.words = dict(words) if words is not None else None
        self.device_id = device_id
        self.values: dict[str, float] = {"power_w": 0.0, "voltage_v": 240.0,
                                         "frequency_hz": 60.0, "import_wh": 1_000_000.0,
                                         "export_wh": 250_000.0}  # fmt: skip
        self.exception: ExcCodes | None = None  # answer every read with this exception
        self.silent = False  # answer nothing
        self.fail_every = 0  # answer every n-th read with server device busy (0: none)
        self.reads = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="meter-sim",
                                        daemon=True)  # fmt: skip
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._thread.start()

    def set(self, **values: float) -> None:
        with self._lock:
            unknown = set(values) - set(self.values)
            if unknown:
                raise KeyError(f"no such quantity: {sorted(unknown)}")
            self.values.update(values)

    # --- serving ------------------------------------------------------------------------

    def serve_tcp(self, host: str = "127.0.0.1") -> int:
        """Listen on an ephemeral port of ``host``; returns the port."""

        async def start() -> int:
            server = ModbusTcpServer(self._device(), address=(host, 0))
            await server.serve_forever(background=True)
            self._server = server
            transport: Any = server.transport
            port: int = transport.sockets[0].getsockname()[1]
            return port

        port: int = self._run(start())
        return port

    def serve_rtu(self, device: str, baudrate: int = 9600) -> None:
        async def start() -> None:
            server = ModbusSerialServer(self._device(), port=device, baudrate=baudrate,
                                        timeout=1)  # fmt: skip
            await server.serve_forever(background=True)
            self._server = server

        self._run(start())

    def stop(self) -> None:
        """Stop serving (idempotent): the meter is gone."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            if self._server is not None:
                await self._server.shutdown()  # type: ignore[no-untyped-call]
            for task in asyncio.all_tasks():  # requests left unanswered while silent
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            self._run(shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def _run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=10)

    # --- the device ---------------------------------------------------------------------

    def _device(self) -> SimDevice:
        """Registers where the map has fields (anything else: illegal data address)."""
        if self.words is not None:
            blocks = [SimData(a, values=w, datatype=DataType.REGISTERS)
                      for a, w in sorted(self.words.items())]  # fmt: skip
        else:
            blocks = [SimData(f.address, count=f.count, values=0, datatype=DataType.REGISTERS)
                      for f in self.map.fields]  # fmt: skip
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        unused = [SimData(0, values=0, datatype=DataType.INVALID)]
        holding, inputs = (blocks, unused) if self.function == 3 else (unused, blocks)
        return SimDevice(self.device_id, simdata=(bits, list(bits), holding, inputs),
                         action=self._action)  # fmt: skip

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """On each read: fail as told, or write the current values into the registers."""
        with self._lock:
            self.reads += 1
            silent, exception, values = self.silent, self.exception, dict(self.values)
            flaky = self.fail_every > 0 and self.reads % self.fail_every == 0
        if silent:
            await asyncio.sleep(3600)  # the request is never answered
        if exception is not None:
            return exception
        if flaky:
            return ExcCodes.DEVICE_BUSY
        if function_code != self.function or self.words is not None:
            return None  # raw words: served as the datastore holds them
        values["voltage_v"] += self._rng.uniform(-VOLTAGE_NOISE_V, VOLTAGE_NOISE_V)
        for f in self.map.fields:
            offset = f.address - start_address
            if 0 <= offset < len(registers):
                registers[offset : offset + f.count] = self.map.encode(
                    f.quantity, values[f.quantity]
                )
        return None
