"""The Modbus bus under a polled meter: pymodbus's synchronous clients, RTU over a serial
port (pyserial) or TCP, one request at a time, no retries (the poller decides what a lost
answer means), each failure told apart as the health rules need it.

pymodbus drops a frame whose CRC is wrong and waits on until its timeout; a trace of the
bytes received tells that apart from silence. Every wait is bounded on the monotonic clock,
so a step of the system clock (NTP after boot on a board without an RTC) neither lengthens
nor shortens one. Imported only for a Modbus backend.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from hal.meter.contract import BusError
from hal.meter.poller import BusFault
from hal.meter.settings import MeterSettings

# pymodbus logs every lost answer at ERROR, ten times a second on a bad bus; the poller
# counts them and the meter logs each change of health once instead
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class SerialClient(ModbusSerialClient):
    """pymodbus (3.16) times its wait for a serial answer's bytes on ``time.time()``: a clock
    stepped back during the wait lengthens it by the step (an hour's step, an hour without
    the meter). Here the same wait runs on the monotonic clock. Its transaction layer (the
    deadline across a frame's pieces) and its TCP client's single wait per read are on the
    monotonic clock or bounded by their own timeout already; a test steps the clock under
    each (tests/integration/test_meter_modbus.py)."""

    def _wait_for_data(self) -> int:
        """How many bytes an answer brought: once some came and the line went quiet for a
        poll interval, or at the timeout (0 if nothing came)."""
        deadline = time.monotonic() + self.comm_params.timeout_connect
        seen = 0
        while True:
            waiting: int = self._in_waiting()  # type: ignore[no-untyped-call]
            if seen and waiting == seen:
                return seen
            seen = waiting
            if time.monotonic() >= deadline:
                return seen
            time.sleep(self._recv_interval)


class ModbusBus:
    def __init__(self, settings: MeterSettings) -> None:
        self._device_id = settings.device_id
        self._received = b""
        timeout_s = settings.timeout_ms / 1000
        self.client: ModbusSerialClient | ModbusTcpClient
        if settings.backend == "modbus-rtu":
            self.where = settings.port
            self.client = SerialClient(
                settings.port, baudrate=settings.baudrate, parity=settings.parity,
                stopbits=settings.stopbits, bytesize=8, timeout=timeout_s, retries=0,
                handle_local_echo=settings.local_echo, trace_packet=self._trace,
            )  # fmt: skip
        else:
            self.where = f"{settings.host}:{settings.tcp_port}"
            self.client = ModbusTcpClient(
                settings.host, port=settings.tcp_port, timeout=timeout_s, retries=0,
                trace_packet=self._trace,
            )  # fmt: skip

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """Every request starts a new answer; what has come of it so far is kept."""
        self._received = b"" if sending else data
        return data

    def read(self, function: int, address: int, count: int) -> list[int]:
        reader = (self.client.read_input_registers if function == 4
                  else self.client.read_holding_registers)  # fmt: skip
        what = f"{count} registers at {address:#06x}"
        try:
            answer: Any = reader(address, count=count, device_id=self._device_id)
        except ConnectionException:
            raise BusFault(BusError.CONNECTION, f"cannot open {self.where}") from None
        except ModbusIOException:
            if self._received:
                raise BusFault(BusError.CRC, f"a garbled answer for {what}") from None
            raise BusFault(BusError.TIMEOUT, f"no answer for {what}") from None
        except (ModbusException, OSError, ValueError) as err:
            raise BusFault(BusError.CONNECTION, f"{self.where}: {err}") from None
        if answer.isError():
            code = getattr(answer, "exception_code", 0)
            name = EXCEPTION_NAMES.get(code, "unknown")
            raise BusFault(BusError.EXCEPTION, f"exception {code} ({name}) for {what}")
        registers: list[int] = list(answer.registers)
        if len(registers) != count:
            raise BusFault(BusError.CRC, f"{len(registers)} registers for {what}")
        return registers

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]
