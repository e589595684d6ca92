"""The virtual rig's command set (hal/mock/rig_commands.py), driven directly without a pty.

Checked against docs/rig-protocol.md: one reply line per command, ``OK`` + ``key=value``
fields or ``ERR <CODE> <text>``; case-insensitive keywords; a trailing ``\\r`` ignored;
WAIT:* report ``elapsed_us`` measured from the most recent stimulus (EV:*, PP:*, FB:*, RCD:*,
METER:*). Most tests run the board on a fake clock whose time the interpreter's sleep
advances, so elapsed times are exact; the TIMEOUT tests use the real clock with short waits.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from hal.contract import Contacts, PilotDrive, PilotOutput, RcdState, Relay
from hal.mock.board import MockBoard
from hal.mock.circuit import VehicleSide, VehicleState
from hal.mock.rig_commands import MAX_LINE, RigInterpreter
from hal.settings import BoardSettings, MockSettings
from tests.fakes import FakeClock

MS = 1_000_000  # ns
DELAY_MS = 10
SETTINGS = BoardSettings(
    mock=MockSettings(relay_delay_ms=DELAY_MS, deadman_timeout_ms=100, noise_mv=0)
)

OK_FIELDS = re.compile(r"^OK( [a-z_]+=\S+)*$")
ERR = re.compile(r"^ERR (SYNTAX|RANGE|TIMEOUT|STATE|UNSUPPORTED)( .*)?$")


class Rig:
    """An interpreter on a fake-clock board, with helpers that play the firmware's part."""

    def __init__(self) -> None:
        self.clock = FakeClock(5_000 * MS)
        self.board = MockBoard(SETTINGS, clock=self.clock)
        self.interp = RigInterpreter(self.board, sleep=self.clock.sleep)

    def __call__(self, line: str) -> str:
        reply = self.interp.execute(line)
        assert "\n" not in reply
        assert OK_FIELDS.match(reply) or ERR.match(reply), reply
        return reply

    def close_relay(self, relay: Relay = Relay.MAIN) -> int:
        """Kick the dead-man and command the relay closed now; returns when it will close."""
        self.board.kick_deadman()
        self.board.set_relay(relay, True)
        return self.clock.t_ns + DELAY_MS * MS


def fields(reply: str) -> dict[str, str]:
    assert reply.startswith("OK"), reply
    return dict(word.split("=", 1) for word in reply.split()[1:])


def code(reply: str) -> str:
    assert reply.startswith("ERR "), reply
    return reply.split()[1]


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.fixture
def real_rig() -> RigInterpreter:
    return RigInterpreter(MockBoard(SETTINGS))


# --- reply shapes, command by command --------------------------------------------------------


def test_idn(rig: Rig) -> None:
    assert re.match(r"^OK vendor=\S+ model=\S+ serial=\S+ fw=\S+$", rig("*IDN?"))


@pytest.mark.parametrize("letter", ["A", "B", "C", "D"])
def test_ev_state(rig: Rig, letter: str) -> None:
    assert rig(f"EV:STATE {letter}") == "OK"
    assert rig.board.vehicle.state is VehicleState(letter)


@pytest.mark.parametrize(
    ("line", "attribute", "value"),
    [
        ("EV:DIODE SHORT", "diode_shorted", True),
        ("EV:DIODE OK", "diode_shorted", False),
        ("EV:SHORT ON", "pilot_shorted", True),
        ("EV:SHORT OFF", "pilot_shorted", False),
        ("EV:PE OFF", "pe_connected", False),
        ("EV:PE ON", "pe_connected", True),
    ],
)
def test_vehicle_faults(rig: Rig, line: str, attribute: str, value: bool) -> None:
    start = dataclasses.replace(VehicleSide(VehicleState.B), **{attribute: not value})
    rig.board.set_vehicle(start)
    assert rig(line) == "OK"
    assert getattr(rig.board.vehicle, attribute) is value
    assert rig.board.vehicle.state is VehicleState.B  # nothing else changed


def test_pp_res(rig: Rig) -> None:
    assert rig("PP:RES 480") == "OK"
    assert rig.board.read_proximity_ohm() == 480.0
    assert rig("PP:RES OPEN") == "OK"
    assert rig.board.read_proximity_ohm() is None


@pytest.mark.parametrize("relay", ["MAIN", "DISCHARGE"])
def test_feedback_modes(rig: Rig, relay: str) -> None:
    target = Relay(relay.lower())
    assert rig(f"FB:{relay} STUCK_CLOSED") == "OK"
    assert rig.board.read_feedback(target) is Contacts.CLOSED  # contacts are open
    assert rig(f"FB:{relay} FOLLOW") == "OK"
    assert rig.board.read_feedback(target) is Contacts.OPEN
    closes_at = rig.close_relay(target)
    rig.clock.t_ns = closes_at
    assert rig(f"FB:{relay} STUCK_OPEN") == "OK"
    assert rig.board.read_feedback(target) is Contacts.OPEN  # contacts are closed


@pytest.mark.parametrize(
    ("word", "state"), [("DC", RcdState.DC), ("AC", RcdState.AC), ("NONE", RcdState.CLEAR)]
)
def test_rcd_trip(rig: Rig, word: str, state: RcdState) -> None:
    assert rig(f"RCD:TRIP {word}") == "OK"
    assert rig.board.read_rcd() is state


@pytest.mark.parametrize("watts", ["7200", "-3300.5", "0"])
def test_meter(rig: Rig, watts: str) -> None:
    assert rig(f"METER:W {watts}") == "OK"
    assert rig.board.read_meter().power_w == float(watts)


def test_meas_cp_steady_12v_unplugged(rig: Rig) -> None:
    reply = rig("MEAS:CP?")
    assert re.match(
        r"^OK state=[A-F] hi_mv=-?\d+ lo_mv=-?\d+ duty_pct=\d+\.\d freq_hz=\d+\.\d$", reply
    )
    assert fields(reply) == {
        "state": "A",
        "hi_mv": "12000",
        "lo_mv": "12000",  # steady +12 V: both detectors see it
        "duty_pct": "100.0",
        "freq_hz": "0.0",
    }


@pytest.mark.parametrize(("letter", "hi_mv"), [("B", 8980), ("C", 6000), ("D", 2930)])
def test_meas_cp_with_pwm(rig: Rig, letter: str, hi_mv: int) -> None:
    rig.board.set_pilot(PilotOutput(PilotDrive.PWM, 533))
    rig(f"EV:STATE {letter}")
    got = fields(rig("MEAS:CP?"))
    assert got["state"] == letter
    assert abs(int(got["hi_mv"]) - hi_mv) <= 50  # docs/j1772.md "Circuit"
    assert got["lo_mv"] == "-12000"
    assert got["duty_pct"] == "53.3"
    assert float(got["freq_hz"]) == 1000.0


def test_meas_cp_state_f(rig: Rig) -> None:
    rig.board.set_pilot(PilotOutput(PilotDrive.STEADY_NEGATIVE))
    rig("EV:STATE B")
    got = fields(rig("MEAS:CP?"))
    assert got["state"] == "F"
    assert got["hi_mv"] == got["lo_mv"] == "-12000"
    assert got["duty_pct"] == "0.0"


def test_meas_relay(rig: Rig) -> None:
    assert rig("MEAS:RELAY?") == "OK main=OPEN discharge=OPEN"
    rig.clock.t_ns = rig.close_relay(Relay.DISCHARGE)
    assert rig("MEAS:RELAY?") == "OK main=OPEN discharge=CLOSED"


@pytest.mark.parametrize(("word", "on"), [("ON", True), ("OFF", False)])
def test_events(rig: Rig, word: str, on: bool) -> None:
    rig.interp.events_on = not on
    assert rig(f"EVENTS {word}") == "OK"
    assert rig.interp.events_on is on


def test_plc_joins_and_leaves_and_reset_turns_it_off(rig: Rig) -> None:
    assert rig("EV:PLC ON") == "OK"
    assert rig.board.vehicle.plc
    assert rig("EV:PLC OFF") == "OK" and not rig.board.vehicle.plc
    rig("EV:PLC ON")
    assert rig("*RST") == "OK" and not rig.board.vehicle.plc


# --- EV:STATE B|C|D,<ohms>: the vehicle's load off nominal (docs/rig-protocol.md "Our extension")

# docs/j1772.md "Circuit": R2 = 2740 Ohm, S2 adding 1300 Ohm (C) or 270 Ohm (D) in parallel
NOMINAL_LOAD_OHM = {"B": 2740.0, "C": 2740 * 1300 / 4040, "D": 2740 * 270 / 3010}
# nominal -/+3 % on R2 and on S2's resistor, as the a7/a8 scenarios stage them
TOLERANCE_LOADS = [("B", 2658), ("B", 2822), ("C", 855), ("C", 908), ("D", 238), ("D", 253)]


def ohm_law_hi_mv(load_ohm: float) -> float:
    """+12 V through R1 = 1 kOhm, the vehicle's ~0.7 V diode, then the load to PE."""
    return 12_000 - (12.0 - 0.7) / (1000 + load_ohm) * 1000 * 1000


def hi_mv(rig: Rig) -> int:
    return int(fields(rig("MEAS:CP?"))["hi_mv"])


@pytest.mark.parametrize(("letter", "ohms"), TOLERANCE_LOADS)
def test_ev_state_with_a_load_moves_the_high_plateau(rig: Rig, letter: str, ohms: int) -> None:
    rig.board.set_pilot(PilotOutput(PilotDrive.PWM, 533))
    rig(f"EV:STATE {letter}")
    nominal_mv = hi_mv(rig)
    assert rig(f"EV:STATE {letter},{ohms}") == "OK"
    assert rig.board.vehicle.state is VehicleState(letter)
    assert rig.board.vehicle.load_ohm == ohms
    got = fields(rig("MEAS:CP?"))
    assert abs(int(got["hi_mv"]) - ohm_law_hi_mv(ohms)) <= 3
    # a smaller load pulls the plateau down, a larger one lets it rise
    if ohms < NOMINAL_LOAD_OHM[letter]:
        assert int(got["hi_mv"]) < nominal_mv - 20
    else:
        assert int(got["hi_mv"]) > nominal_mv + 20
    assert got["state"] == letter  # within tolerance: still the same letter
    assert got["lo_mv"] == "-12000"  # the diode still blocks the negative half


@pytest.mark.parametrize("letter", ["B", "C", "D"])
def test_plain_ev_state_returns_to_the_nominal_load(rig: Rig, letter: str) -> None:
    rig.board.set_pilot(PilotOutput(PilotDrive.PWM, 533))
    rig(f"EV:STATE {letter},60000")
    assert rig(f"EV:STATE {letter}") == "OK"
    assert rig.board.vehicle.load_ohm is None
    assert abs(hi_mv(rig) - ohm_law_hi_mv(NOMINAL_LOAD_OHM[letter])) <= 3


def test_ev_state_to_a_drops_the_load(rig: Rig) -> None:
    rig("EV:STATE C,855")
    assert rig("EV:STATE A") == "OK"
    assert rig.board.vehicle == VehicleSide()
    assert hi_mv(rig) == 12_000


@pytest.mark.parametrize(
    ("line", "letter", "ohms"),
    [
        ("ev:state c,855", "C", 855.0),
        ("EV:STATE  B , 2822 ", "B", 2822.0),
        ("EV:STATE D,250.5", "D", 250.5),
        ("EV:STATE B,50", "B", 50.0),
        ("EV:STATE B,100000", "B", 100_000.0),
    ],
)
def test_ev_state_load_spelling(rig: Rig, line: str, letter: str, ohms: float) -> None:
    assert rig(line) == "OK"
    assert rig.board.vehicle.state is VehicleState(letter)
    assert rig.board.vehicle.load_ohm == ohms


def test_other_stimuli_keep_the_load(rig: Rig) -> None:
    rig.board.set_pilot(PilotOutput(PilotDrive.PWM, 533))
    rig("EV:STATE C,855")
    assert rig("EV:DIODE SHORT") == "OK"
    assert rig.board.vehicle.load_ohm == 855.0
    got = fields(rig("MEAS:CP?"))
    divider_mv = 12_000 * 855 / (1000 + 855)  # no diode drop: a plain divider over the load
    assert abs(int(got["hi_mv"]) - divider_mv) <= 3
    assert abs(int(got["lo_mv"]) + divider_mv) <= 3


@pytest.mark.parametrize(
    "line", ["EV:STATE A,2740", "EV:STATE B,10", "EV:STATE D,lots", "EV:STATE E,882"]
)
def test_a_refused_load_changes_nothing(rig: Rig, line: str) -> None:
    rig.board.set_pilot(PilotOutput(PilotDrive.PWM, 533))
    rig("EV:STATE C,908")
    before, before_mv = rig.board.vehicle, hi_mv(rig)
    assert rig(line).startswith("ERR ")
    assert rig.board.vehicle == before
    assert hi_mv(rig) == before_mv


def test_reset_clears_the_load(rig: Rig) -> None:
    rig.board.set_pilot(PilotOutput(PilotDrive.PWM, 533))
    rig("EV:STATE B,2822")
    assert rig("*RST") == "OK"
    assert rig.board.vehicle == VehicleSide()
    # plug in behind the interpreter's back: a plain EV:STATE would reset the load by itself
    rig.board.set_vehicle(dataclasses.replace(rig.board.vehicle, state=VehicleState.B))
    assert abs(hi_mv(rig) - ohm_law_hi_mv(NOMINAL_LOAD_OHM["B"])) <= 3


# --- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    ["ev:state c", "Ev:State C", "EV:STATE c", "meas:cp?", "*idn?", "events on", "pp:res open"],
)
def test_keywords_are_case_insensitive(rig: Rig, line: str) -> None:
    assert rig(line).startswith("OK")


def test_lower_case_commands_act(rig: Rig) -> None:
    rig("ev:state d")
    assert rig.board.vehicle.state is VehicleState.D
    assert fields(rig("meas:cp?"))["state"] == "D"


@pytest.mark.parametrize("line", ["EV:STATE C\r", "EV:STATE C\r\n", "EV:STATE C\n"])
def test_line_endings_are_ignored(rig: Rig, line: str) -> None:
    assert rig(line) == "OK"
    assert rig.board.vehicle.state is VehicleState.C


def test_query_with_trailing_cr(rig: Rig) -> None:
    assert rig("MEAS:RELAY?\r") == "OK main=OPEN discharge=OPEN"


@pytest.mark.parametrize("line", ["FOO", "EV:COLOUR RED", "MEAS:CP", "HELLO WORLD", "", "  "])
def test_unknown_command(rig: Rig, line: str) -> None:
    assert code(rig(line)) == "SYNTAX"


@pytest.mark.parametrize(
    "line",
    [
        "EV:STATE",
        "EV:STATE E",
        "EV:STATE BC",
        "EV:STATE A,2740",  # unplugged has no load
        "EV:STATE E,2740",
        "EV:STATE ,2740",
        "EV:STATE B,",
        "EV:STATE B,lots",
        "EV:STATE B,2658,1",
        "EV:STATE B 2658",
        "EV:DIODE MAYBE",
        "EV:SHORT 1",
        "EV:PE",
        "EV:PLC MAYBE",
        "PP:RES lots",
        "PP:RES",
        "FB:MAIN WELDED",
        "FB:DISCHARGE",
        "RCD:TRIP BOTH",
        "METER:W many",
        "EVENTS MAYBE",
        "*IDN? please",
        "*RST now",
        "MEAS:CP? 1",
        "MEAS:RELAY? main",
        "WAIT:RELAY",
        "WAIT:RELAY MAIN,CLOSED",
        "WAIT:RELAY MAIN,CLOSED,10,5",
        "WAIT:RELAY PUMP,CLOSED,10",
        "WAIT:RELAY MAIN,AJAR,10",
        "WAIT:RELAY MAIN,CLOSED,soon",
        "WAIT:DUTY 10,20",
        "WAIT:DUTY ten,20,10",
        "WAIT:DUTY 10,20,30,40",
    ],
)
def test_bad_arguments_are_syntax_errors(rig: Rig, line: str) -> None:
    assert code(rig(line)) == "SYNTAX"


@pytest.mark.parametrize(
    "line",
    [
        "PP:RES -1",
        "PP:RES 2000000",
        "EV:STATE B,49",
        "EV:STATE C,100001",
        "EV:STATE D,0",
        "EV:STATE B,-2740",
        "METER:W 2000000",
        "METER:W -2000000",
        "WAIT:RELAY MAIN,OPEN,-1",
        "WAIT:RELAY MAIN,OPEN,600001",
        "WAIT:DUTY -1,20,10",
        "WAIT:DUTY 10,101,10",
        "WAIT:DUTY 50,40,10",  # max below min
        "WAIT:DUTY 10,20,-5",
    ],
)
def test_out_of_range_arguments(rig: Rig, line: str) -> None:
    assert code(rig(line)) == "RANGE"


def test_a_refused_command_changes_nothing(rig: Rig) -> None:
    rig("PP:RES 150")
    rig("PP:RES -1")
    rig("EV:STATE E")
    assert rig.board.read_proximity_ohm() == 150.0
    assert rig.board.vehicle.state is VehicleState.A


def test_over_long_line(rig: Rig) -> None:
    at_limit = "PP:RES " + "0" * (MAX_LINE - len("PP:RES ") - 1) + "7"
    assert len(at_limit) == MAX_LINE
    assert rig(at_limit) == "OK"
    too_long = "PP:RES " + "0" * (MAX_LINE - len("PP:RES ")) + "9"
    assert code(rig(too_long)) == "SYNTAX"
    assert rig.board.read_proximity_ohm() == 7.0  # the over-long line was not executed


# --- *RST ------------------------------------------------------------------------------------


def test_reset_restores_defaults(rig: Rig) -> None:
    rig.clock.t_ns = rig.close_relay(Relay.DISCHARGE)
    for line in (
        "EV:STATE C",
        "EV:DIODE SHORT",
        "EV:SHORT ON",
        "EV:PE OFF",
        "PP:RES 150",
        "FB:MAIN STUCK_CLOSED",
        "FB:DISCHARGE STUCK_OPEN",
        "RCD:TRIP DC",
        "METER:W 5000",
    ):
        assert rig(line) == "OK"
    assert rig.board.read_feedback(Relay.MAIN) is Contacts.CLOSED  # stuck while open
    assert rig.board.read_feedback(Relay.DISCHARGE) is Contacts.OPEN  # stuck while closed

    assert rig("*RST") == "OK"

    assert rig.board.vehicle == VehicleSide()
    assert rig.board.vehicle.state is VehicleState.A
    assert not rig.board.vehicle.diode_shorted
    assert not rig.board.vehicle.pilot_shorted
    assert rig.board.vehicle.pe_connected
    assert rig.board.read_proximity_ohm() is None
    assert rig.board.read_feedback(Relay.MAIN) is Contacts.OPEN  # FOLLOW again
    assert rig.board.read_feedback(Relay.DISCHARGE) is Contacts.CLOSED  # FOLLOW again
    assert rig.board.read_rcd() is RcdState.CLEAR
    assert rig.board.read_meter().power_w == 0.0
    assert fields(rig("MEAS:CP?"))["state"] == "A"


# --- WAIT:RELAY / WAIT:DUTY ------------------------------------------------------------------


def test_wait_relay_already_there_at_start(rig: Rig) -> None:
    assert rig("WAIT:RELAY MAIN,OPEN,10") == "OK elapsed_us=0"


def test_wait_relay_measures_from_the_last_stimulus(rig: Rig) -> None:
    rig.clock.advance_ms(1)
    rig("EV:STATE B")
    rig.clock.advance_ms(2)
    rig("EV:STATE C")  # the stimulus: t = 3 ms
    rig.clock.advance_ms(4)
    rig.close_relay()  # the firmware reacts at t = 7 ms; contacts close at 17 ms
    reply = rig("WAIT:RELAY MAIN,CLOSED,1000")
    assert reply == f"OK elapsed_us={(4 + DELAY_MS) * 1000}"


@pytest.mark.parametrize(
    "stimulus", ["PP:RES 150", "FB:MAIN FOLLOW", "RCD:TRIP NONE", "METER:W 10", "EV:PE ON"]
)
def test_every_stimulus_family_restarts_the_stopwatch(rig: Rig, stimulus: str) -> None:
    rig("EV:STATE C")
    rig.clock.advance_ms(5)
    rig(stimulus)
    rig.clock.advance_ms(2)
    rig.close_relay()
    assert rig("WAIT:RELAY MAIN,CLOSED,1000") == f"OK elapsed_us={(2 + DELAY_MS) * 1000}"


@pytest.mark.parametrize("query", ["MEAS:CP?", "MEAS:RELAY?", "*IDN?", "EVENTS OFF"])
def test_queries_do_not_restart_the_stopwatch(rig: Rig, query: str) -> None:
    rig("EV:STATE C")
    rig.clock.advance_ms(5)
    rig(query)
    rig.clock.advance_ms(2)
    rig.close_relay()
    assert rig("WAIT:RELAY MAIN,CLOSED,1000") == f"OK elapsed_us={(7 + DELAY_MS) * 1000}"


def test_wait_relay_open_after_a_stimulus(rig: Rig) -> None:
    rig.close_relay()
    rig.clock.advance_ms(50)
    rig.board.kick_deadman()
    rig("EV:STATE B")  # the EV stops requesting at t = 50 ms
    rig.clock.advance_ms(30)
    rig.board.set_relay(Relay.MAIN, False)  # opened 30 ms later; contacts 10 ms after that
    reply = rig("WAIT:RELAY MAIN,OPEN,1000")
    assert reply == f"OK elapsed_us={(30 + DELAY_MS) * 1000}"


def test_wait_relay_already_there_before_the_stimulus(rig: Rig) -> None:
    rig.clock.t_ns = rig.close_relay()
    rig.clock.advance_ms(5)
    rig.board.kick_deadman()
    rig("METER:W 100")
    assert rig("WAIT:RELAY MAIN,CLOSED,10") == "OK elapsed_us=0"


def test_wait_duty_measures_from_the_last_stimulus(rig: Rig) -> None:
    rig("EV:STATE B")
    rig.clock.advance_ms(3)
    rig.board.set_pilot(PilotOutput(PilotDrive.PWM, 533))  # 32 A
    assert rig("WAIT:DUTY 53,54,1000") == "OK duty_pct=53.3 elapsed_us=3000"


def test_wait_duty_already_in_range(rig: Rig) -> None:
    # steady +12 V counts as 100 %
    assert rig("WAIT:DUTY 100,100,10") == "OK duty_pct=100.0 elapsed_us=0"


def test_wait_relay_timeout(real_rig: RigInterpreter) -> None:
    real_rig.board.kick_deadman()  # relay never commanded
    reply = real_rig.execute("WAIT:RELAY MAIN,CLOSED,20")
    assert code(reply) == "TIMEOUT"


def test_wait_duty_timeout(real_rig: RigInterpreter) -> None:
    reply = real_rig.execute("WAIT:DUTY 10,20,20")  # the pilot stays at steady +12 V
    assert code(reply) == "TIMEOUT"


def test_zero_timeout_checks_once(real_rig: RigInterpreter) -> None:
    assert code(real_rig.execute("WAIT:RELAY DISCHARGE,CLOSED,0")) == "TIMEOUT"
    assert real_rig.execute("WAIT:RELAY DISCHARGE,OPEN,0") == "OK elapsed_us=0"
