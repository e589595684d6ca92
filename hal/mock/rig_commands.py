"""The rig protocol's command set, executed against the mock board (docs/rig-protocol.md).

It plays the vehicle side of the connector and measures what the EVSE does, as a physical
HIL rig would; it is test equipment, so unlike the Board contract it does know J1772 letters.
One line in, exactly one reply line out. Times are on the rig's clock (the board's monotonic
clock, reported in us since the rig started). One extension the protocol text lacks:
``EV:STATE B|C|D,<ohms>`` sets the vehicle's load off nominal (docs/rig-protocol.md "Our
extension: EV:STATE with a load").
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

from hal.contract import RcdState, Relay
from hal.mock.board import MockBoard
from hal.mock.circuit import VehicleSide, VehicleState, rig_state_letter
from hal.mock.relays import FeedbackMode

MAX_LINE = 256
MAX_WAIT_MS = 600_000
# EV:STATE B|C|D,<ohms> (our extension, docs/rig-protocol.md): the vehicle's load off
# nominal, for the resistor-tolerance scenarios. Wide enough for any tolerance study (nominal
# D is 246 Ohm, B 2.74 kOhm, docs/j1772.md "Circuit"); a short or an open has its own stimulus.
LOAD_MIN_OHM = 50.0
LOAD_MAX_OHM = 100_000.0
POLL_S = 0.0005
STIMULI = ("EV:", "PP:", "FB:", "RCD:", "METER:", "*RST")


class RigCommandError(Exception):
    """Raised when a command is refused; ``code`` is the protocol's error code."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code


def _choice(arg: str, options: tuple[str, ...]) -> str:
    word = arg.strip().upper()
    if word not in options:
        raise RigCommandError("SYNTAX", f"expected one of {'|'.join(options)}, got {arg.strip()!r}")
    return word


def _number(text: str, low: float, high: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RigCommandError("SYNTAX", f"{what} must be a number, got {text.strip()!r}") from None
    if not low <= value <= high:
        raise RigCommandError("RANGE", f"{what} {value:g} outside {low:g}..{high:g}")
    return value


class RigInterpreter:
    def __init__(self, board: MockBoard, sleep: Callable[[float], None] = time.sleep) -> None:
        self.board = board
        self._sleep = sleep
        self.started_ns = board.now_ns()
        self.stimulus_ns = self.started_ns
        self.events_on = False
        self._handlers: dict[str, Callable[[str], str]] = {
            "*IDN?": self._idn,
            "*RST": self._reset,
            "EV:STATE": self._ev_state,
            "EV:DIODE": self._ev_diode,
            "EV:SHORT": self._ev_short,
            "EV:PE": self._ev_pe,
            "EV:PLC": self._ev_plc,
            "PP:RES": self._pp_res,
            "FB:MAIN": lambda a: self._feedback(Relay.MAIN, a),
            "FB:DISCHARGE": lambda a: self._feedback(Relay.DISCHARGE, a),
            "RCD:TRIP": self._rcd_trip,
            "METER:W": self._meter_w,
            "MEAS:CP?": self._meas_cp,
            "MEAS:RELAY?": self._meas_relay,
            "WAIT:RELAY": self._wait_relay,
            "WAIT:DUTY": self._wait_duty,
            "EVENTS": self._events,
        }

    def execute(self, line: str) -> str:
        """Run one command line and return its one reply line (without the newline)."""
        line = line.rstrip("\r\n").strip()
        if len(line) > MAX_LINE:
            return f"ERR SYNTAX line longer than {MAX_LINE} characters"
        keyword, _, arg = line.partition(" ")
        handler = self._handlers.get(keyword.upper())
        if handler is None:
            return (
                f"ERR SYNTAX unknown command {keyword[:40]!r}" if line else "ERR SYNTAX empty line"
            )
        try:
            reply = handler(arg)
        except RigCommandError as err:
            return f"ERR {err}"
        if keyword.upper().startswith(STIMULI):
            self.stimulus_ns = self.board.now_ns()
        return reply

    def rig_us(self, t_ns: int) -> int:
        return (t_ns - self.started_ns) // 1000

    # --- identity and reset ---------------------------------------------------------------

    def _idn(self, arg: str) -> str:
        self._no_arg(arg)
        serial, version = f"mock-{os.getpid()}", self.board.firmware_version
        return f"OK vendor=evse-gatekeeper model=virtual-rig serial={serial} fw={version}"

    def _reset(self, arg: str) -> str:
        self._no_arg(arg)
        board = self.board
        board.set_vehicle(VehicleSide())
        for relay in Relay:
            board.set_feedback_mode(relay, FeedbackMode.FOLLOW)
        board.set_rcd(RcdState.CLEAR)
        board.set_proximity_ohm(None)
        board.set_meter_w(0.0)
        return "OK"

    # --- stimuli ------------------------------------------------------------------------

    def _vehicle(self, **changes: object) -> str:
        self.board.set_vehicle(dataclasses.replace(self.board.vehicle, **changes))  # type: ignore[arg-type]
        return "OK"

    def _ev_state(self, arg: str) -> str:
        letter, comma, ohms = arg.partition(",")
        if not comma:  # plain EV:STATE: the nominal load again
            return self._vehicle(
                state=VehicleState(_choice(arg, ("A", "B", "C", "D"))), load_ohm=None
            )
        state = VehicleState(_choice(letter, ("B", "C", "D")))  # unplugged (A) has no load
        load = _number(ohms, LOAD_MIN_OHM, LOAD_MAX_OHM, "load_ohm")
        return self._vehicle(state=state, load_ohm=load)

    def _ev_diode(self, arg: str) -> str:
        return self._vehicle(diode_shorted=_choice(arg, ("OK", "SHORT")) == "SHORT")

    def _ev_short(self, arg: str) -> str:
        return self._vehicle(pilot_shorted=_choice(arg, ("ON", "OFF")) == "ON")

    def _ev_pe(self, arg: str) -> str:
        return self._vehicle(pe_connected=_choice(arg, ("ON", "OFF")) == "ON")

    def _ev_plc(self, arg: str) -> str:
        # the vehicle's modem joins or leaves; who answers it is the firmware's business
        return self._vehicle(plc=_choice(arg, ("ON", "OFF")) == "ON")

    def _pp_res(self, arg: str) -> str:
        if arg.strip().upper() == "OPEN":
            self.board.set_proximity_ohm(None)
        else:
            self.board.set_proximity_ohm(_number(arg, 0, 1e6, "resistance"))
        return "OK"

    def _feedback(self, relay: Relay, arg: str) -> str:
        modes = tuple(m.value for m in FeedbackMode)
        self.board.set_feedback_mode(relay, FeedbackMode(_choice(arg, modes)))
        return "OK"

    def _rcd_trip(self, arg: str) -> str:
        word = _choice(arg, ("NONE", "DC", "AC"))
        self.board.set_rcd(RcdState(word.lower()))
        return "OK"

    def _meter_w(self, arg: str) -> str:
        self.board.set_meter_w(_number(arg, -1e6, 1e6, "power"))
        return "OK"

    # --- measurements -------------------------------------------------------------------

    def _meas_cp(self, arg: str) -> str:
        self._no_arg(arg)
        high_v, low_v = self.board.pilot_plateaus_v()
        output, _ = self.board.pilot_output()
        freq = 1000.0 if output.pwm_running else 0.0
        return (
            f"OK state={rig_state_letter(high_v)} hi_mv={round(high_v * 1000)} "
            f"lo_mv={round(low_v * 1000)} duty_pct={output.duty_pct:.1f} freq_hz={freq:.1f}"
        )

    def _meas_relay(self, arg: str) -> str:
        self._no_arg(arg)
        words = [f"{r.value}={self._position(r)}" for r in Relay]
        return "OK " + " ".join(words)

    def _position(self, relay: Relay) -> str:
        return "CLOSED" if self.board.contacts(relay)[0] else "OPEN"

    def _wait_relay(self, arg: str) -> str:
        parts = arg.split(",")
        if len(parts) != 3:
            raise RigCommandError(
                "SYNTAX", "expected WAIT:RELAY MAIN|DISCHARGE,OPEN|CLOSED,<timeout_ms>"
            )
        relay = Relay(_choice(parts[0], ("MAIN", "DISCHARGE")).lower())
        want_closed = _choice(parts[1], ("OPEN", "CLOSED")) == "CLOSED"
        timeout_ms = _number(parts[2], 0, MAX_WAIT_MS, "timeout_ms")

        def reached() -> int | None:
            closed, since_ns = self.board.contacts(relay)
            return since_ns if closed == want_closed else None

        since_ns = self._poll(reached, timeout_ms)
        if since_ns is None:
            raise RigCommandError(
                "TIMEOUT", f"{relay.value} not {parts[1].strip().upper()} within {timeout_ms:g} ms"
            )
        return f"OK elapsed_us={self._elapsed_us(since_ns)}"

    def _wait_duty(self, arg: str) -> str:
        parts = arg.split(",")
        if len(parts) != 3:
            raise RigCommandError("SYNTAX", "expected WAIT:DUTY <min_pct>,<max_pct>,<timeout_ms>")
        low = _number(parts[0], 0, 100, "min_pct")
        high = _number(parts[1], low, 100, "max_pct")
        timeout_ms = _number(parts[2], 0, MAX_WAIT_MS, "timeout_ms")

        def reached() -> int | None:
            output, since_ns = self.board.pilot_output()
            return since_ns if low <= output.duty_pct <= high else None

        since_ns = self._poll(reached, timeout_ms)
        if since_ns is None:
            duty = self.board.pilot_output()[0].duty_pct
            raise RigCommandError(
                "TIMEOUT", f"duty {duty:.1f} % not in {low:g}..{high:g} within {timeout_ms:g} ms"
            )
        duty = self.board.pilot_output()[0].duty_pct
        return f"OK duty_pct={duty:.1f} elapsed_us={self._elapsed_us(since_ns)}"

    def _poll(self, reached: Callable[[], int | None], timeout_ms: float) -> int | None:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            since_ns = reached()
            if since_ns is not None or time.monotonic() >= deadline:
                return since_ns
            self._sleep(POLL_S)

    def _elapsed_us(self, since_ns: int) -> int:
        """From the last stimulus to when the condition first held after it (0 if before)."""
        return max(0, since_ns - self.stimulus_ns) // 1000

    def _events(self, arg: str) -> str:
        self.events_on = _choice(arg, ("ON", "OFF")) == "ON"
        return "OK"

    @staticmethod
    def _no_arg(arg: str) -> None:
        if arg.strip():
            raise RigCommandError("SYNTAX", f"unexpected argument {arg.strip()[:40]!r}")
