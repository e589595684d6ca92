"""A client for the rig protocol (docs/rig-protocol.md) over pyserial.

The same client drives a physical rig on ``/dev/ttyUSB0``, the mock board's virtual rig on
its pseudo-terminal, or any pyserial URL. Every call has a timeout; a refused command raises
``RigError`` with the rig's one-line reason; unsolicited ``!`` event lines are kept aside.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType

import serial

BAUD = 115200
REPLY_MARGIN_S = 2.0  # added to a WAIT's own timeout before we give up on the reply


class RigError(Exception):
    """Raised when the rig answers ``ERR``, or does not answer in time (code ``NOREPLY``)."""

    def __init__(self, code: str, text: str, command: str) -> None:
        super().__init__(f"{command!r}: {code} {text}".rstrip())
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class RigEvent:
    t_us: int
    words: tuple[str, ...]


def parse_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            fields[key] = value
    return fields


class Rig:
    def __init__(self, port: str, timeout_s: float = 2.0) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self._serial = serial.serial_for_url(port, baudrate=BAUD, timeout=0.05)
        self.events: deque[RigEvent] = deque(maxlen=10_000)
        self._serial.reset_input_buffer()

    def close(self) -> None:
        self._serial.close()

    def __enter__(self) -> Rig:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the line protocol -----------------------------------------------------------------

    def command(self, line: str, timeout_s: float | None = None) -> dict[str, str]:
        """Send one command; return the ``OK`` reply's fields or raise RigError."""
        self._serial.write(line.encode("ascii") + b"\n")
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        while True:
            reply = self._readline(deadline)
            if reply is None:
                raise RigError("NOREPLY", "no reply in time", line)
            if reply.startswith("!"):
                self._keep_event(reply)
                continue
            if reply == "OK" or reply.startswith("OK "):
                return parse_fields(reply[2:])
            if reply.startswith("ERR"):
                _, _, rest = reply.partition(" ")
                code, _, text = rest.partition(" ")
                raise RigError(code or "UNKNOWN", text, line)
            raise RigError("GARBLED", reply[:80], line)

    def _readline(self, deadline: float) -> str | None:
        buffer = b""
        while time.monotonic() < deadline:
            buffer += self._serial.readline()
            if buffer.endswith(b"\n"):
                return buffer.decode("ascii", errors="replace").strip()
        return None

    def _keep_event(self, line: str) -> None:
        fields = line[1:].split()
        stamp = parse_fields(fields[0]).get("t_us", "-1") if fields else "-1"
        self.events.append(RigEvent(int(stamp), tuple(fields[1:])))

    def poll_events(self, duration_s: float = 0.0) -> list[RigEvent]:
        """Read unsolicited lines for ``duration_s``; return every event kept so far."""
        deadline = time.monotonic() + duration_s
        while True:
            line = self._readline(max(deadline, time.monotonic() + 0.06))
            if line and line.startswith("!"):
                self._keep_event(line)
            if time.monotonic() >= deadline:
                break
        events = list(self.events)
        self.events.clear()
        return events

    # --- conveniences ---------------------------------------------------------------------

    def identify(self) -> dict[str, str]:
        return self.command("*IDN?")

    def reset(self) -> None:
        self.command("*RST")

    def ev_state(self, letter: str) -> None:
        self.command(f"EV:STATE {letter}")

    def measure_pilot(self) -> dict[str, str]:
        return self.command("MEAS:CP?")

    def relays(self) -> dict[str, str]:
        return self.command("MEAS:RELAY?")

    def wait_relay(self, relay: str, position: str, timeout_ms: int) -> int:
        """Wait for a contact position; return microseconds since the last stimulus."""
        fields = self.command(
            f"WAIT:RELAY {relay},{position},{timeout_ms}", timeout_ms / 1000 + REPLY_MARGIN_S
        )
        return int(fields["elapsed_us"])

    def wait_duty(self, low_pct: float, high_pct: float, timeout_ms: int) -> tuple[float, int]:
        fields = self.command(
            f"WAIT:DUTY {low_pct},{high_pct},{timeout_ms}", timeout_ms / 1000 + REPLY_MARGIN_S
        )
        return float(fields["duty_pct"]), int(fields["elapsed_us"])


def wait_for_rig(port: str, timeout_s: float = 10.0) -> Rig:
    """Open the rig once its device exists and it answers ``*IDN?``."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            rig = Rig(port, timeout_s=1.0)
        except (OSError, serial.SerialException) as err:
            last = err
            time.sleep(0.05)
            continue
        try:
            rig.identify()
            return rig
        except RigError as err:
            last = err
            rig.close()
    raise TimeoutError(f"rig at {port} did not answer within {timeout_s:g} s: {last}")
