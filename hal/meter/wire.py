"""How long Modbus RTU reads take on the RS-485 wire at a baud rate: what a poll rate can
ask of a bus (docs/meter.md "Wire time"). Pure arithmetic: no bus, no pymodbus.

Each character is a start bit, 8 data bits, the parity bit if any and the stop bits; each
frame ends with 3.5 characters of silence (Modbus over serial line, RTU framing). A read is
a request of 8 characters (address, function, start, count, CRC) and an answer of 5 plus
2 per register (address, function, byte count, the registers, CRC). A real meter adds its
own turnaround, so these are lower bounds: a rate that cannot fit them cannot work.
"""

from __future__ import annotations

from hal.meter.registers import RegisterMap

FRAME_GAP_CHARS = 3.5
REQUEST_CHARS = 8


def char_bits(parity: str, stopbits: int) -> int:
    return 1 + 8 + (parity != "N") + stopbits


def read_ms(registers: int, baudrate: int, bits: int) -> float:
    """One read of ``registers``: request and answer, each with its frame gap."""
    chars = REQUEST_CHARS + 5 + 2 * registers + 2 * FRAME_GAP_CHARS
    return chars * bits / baudrate * 1000


def poll_ms(register_map: RegisterMap, baudrate: int, bits: int) -> float:
    """The longest poll: the power's read and the largest of the other blocks."""
    power, others = register_map.blocks()
    largest = max((b.count for b in others), default=0)
    extra = read_ms(largest, baudrate, bits) if others else 0.0
    return read_ms(power.count, baudrate, bits) + extra
