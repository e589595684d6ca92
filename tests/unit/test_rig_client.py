"""The rig client (hil/rig.py) on its own, against a scripted fake rig.

The fake serves the line protocol of docs/rig-protocol.md from a thread, over a real
pseudo-terminal (the client opens the slave device by path, as it opens ``/dev/ttyUSB0`` or
the virtual rig's pty) and over TCP (the client opens a ``socket://`` pyserial URL). Each test
scripts the rig's answer to every line and checks what the client makes of it: ``OK`` fields,
``ERR`` as ``RigError`` with a one-line message, ``!`` events kept aside, silence and garbage
as errors within the timeout instead of a hang, WAIT commands allowed their own timeout, and
``wait_for_rig`` giving up with one line. The last tests run a shipped scenario through
``hil.runner`` against the fake: a stimulus the rig refuses as ``UNSUPPORTED`` skips it, any
other refusal fails it.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from hil.rig import Rig, RigError, RigEvent, wait_for_rig
from hil.runner import Runner, ScenarioResult, Target
from hil.scenario import Send, load_all

Reply = Callable[[str], list[str]]
IDN = "OK vendor=acme model=hil-1 serial=0042 fw=1.2.3"
IDN_FIELDS = {"vendor": "acme", "model": "hil-1", "serial": "0042", "fw": "1.2.3"}
TRANSPORTS = ("pty", "socket")


class _PtyLink:
    """A pseudo-terminal: the fake holds the master, the client opens the slave by path."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        # raw: no echo of what the fake writes back as if it were input, no \n -> \r\n
        # (on Linux the master's termios is the pair's, the one the slave's reader sees)
        tty.setraw(self.master)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self.slave)  # the fake keeps the slave open: no hangup
        self.connected = True  # bytes written before the client opens wait in the pty

    def read(self, timeout_s: float) -> bytes:
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            time.sleep(timeout_s)  # EIO while nothing has the slave open: do not spin
            return b""

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class _SocketLink:
    """A TCP listener on 127.0.0.1; one client connection at a time."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        self.conn: socket.socket | None = None

    @property
    def connected(self) -> bool:
        return self.conn is not None

    def read(self, timeout_s: float) -> bytes:
        waiting = [self.listener] + ([self.conn] if self.conn else [])
        ready, _, _ = select.select(waiting, [], [], timeout_s)
        if self.listener in ready:
            self._drop()
            self.conn, _ = self.listener.accept()
        if self.conn is None or self.conn not in ready:
            return b""
        try:
            data = self.conn.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop()  # the client closed its end
        return data

    def write(self, data: bytes) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.sendall(data)

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self._drop()
        self.listener.close()


class FakeRig:
    """Serves the line protocol from a thread: ``reply(line)`` scripts what goes back.

    Every line the host sends is recorded as received (without its ``\\n``); ``reply``
    returns the lines to write back in order, each ended with ``eol``: events and then a
    reply, or nothing (a rig that stays silent). ``push`` writes an unsolicited line later.
    """

    def __init__(self, reply: Reply, transport: str = "pty", eol: str = "\n") -> None:
        self.reply = reply
        self.eol = eol
        self.received: list[str] = []
        self.errors: list[BaseException] = []
        self._link: _PtyLink | _SocketLink = _PtyLink() if transport == "pty" else _SocketLink()
        self.port = self._link.port
        self._pushed: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-rig", daemon=True)
        self._thread.start()

    def push(self, line: str, after_s: float = 0.0) -> None:
        with self._lock:
            self._pushed.append((time.monotonic() + after_s, line))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        alive = self._thread.is_alive()
        self._link.close()
        assert not alive, "the fake rig's thread did not stop"
        assert not self.errors, f"the fake rig failed: {self.errors[0]!r}"

    def _serve(self) -> None:
        pending = b""
        try:
            while not self._stop.is_set():
                self._write_pushed()
                data = self._link.read(0.01)
                if not data and not self._link.connected:
                    pending = b""
                pending += data
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    line = raw.decode("ascii", errors="replace")
                    self.received.append(line)
                    for answer in self.reply(line):
                        self._link.write((answer + self.eol).encode("ascii"))
        except BaseException as err:  # reported by close(), in the test's thread
            self.errors.append(err)

    def _write_pushed(self) -> None:
        if not self._link.connected:
            return
        now = time.monotonic()
        with self._lock:
            due = [line for at, line in self._pushed if at <= now]
            self._pushed = [(at, line) for at, line in self._pushed if at > now]
        for line in due:
            self._link.write((line + self.eol).encode("ascii"))


class Serve(Protocol):
    def __call__(self, reply: Reply, transport: str = "pty", eol: str = "\n") -> FakeRig: ...


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start fake rigs; stop them all afterwards and check nothing was left open."""
    fds_before = _open_fds()
    fakes: list[FakeRig] = []

    def start(reply: Reply, transport: str = "pty", eol: str = "\n") -> FakeRig:
        fake = FakeRig(reply, transport, eol)
        fakes.append(fake)
        return fake

    yield start
    for fake in fakes:
        fake.close()
    assert _open_fds() == fds_before, "a file descriptor was left open (an unclosed Rig?)"


def scripted(answers: dict[str, list[str]], default: str = "ERR SYNTAX unexpected") -> Reply:
    """A rig that answers each known line with its script, anything else with ``default``."""

    def reply(line: str) -> list[str]:
        return answers.get(line, [default])

    return reply


# --- the line protocol over each transport -----------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_identify_and_a_bare_ok_tolerating_crlf(serve: Serve, transport: str) -> None:
    fake = serve(scripted({"*IDN?": [IDN], "EV:STATE B": ["OK"]}), transport, eol="\r\n")
    with Rig(fake.port, timeout_s=1.0) as rig:
        assert rig.identify() == IDN_FIELDS
        assert rig.command("EV:STATE B") == {}
        rig.ev_state("B")
    assert fake.received == ["*IDN?", "EV:STATE B", "EV:STATE B"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_err_is_a_rig_error_with_code_text_and_one_line(serve: Serve, transport: str) -> None:
    command = "WAIT:DUTY 8,200,100"
    answers = {command: ["ERR RANGE value 200 outside 0..100"]}
    fake = serve(scripted(answers), transport, eol="\r\n")
    with Rig(fake.port, timeout_s=1.0) as rig, pytest.raises(RigError) as caught:
        rig.command(command)
    err = caught.value
    assert (err.code, err.text) == ("RANGE", "value 200 outside 0..100")
    message = str(err)
    assert "\n" not in message and "\r" not in message
    assert command in message and "RANGE" in message and "value 200 outside 0..100" in message


def test_events_before_a_reply_are_kept_and_the_reply_returned(serve: Serve) -> None:
    answers = {
        "EV:STATE C": [
            "! t_us=123 pilot state=C duty_pct=53.3",
            "! t_us=150 relay MAIN=CLOSED",
            "OK",
        ],
        "MEAS:RELAY?": ["! t_us=170 relay DISCHARGE=OPEN", "OK main=CLOSED discharge=OPEN"],
    }
    fake = serve(scripted(answers))
    with Rig(fake.port, timeout_s=1.0) as rig:
        assert rig.command("EV:STATE C") == {}
        assert rig.relays() == {"main": "CLOSED", "discharge": "OPEN"}
        assert list(rig.events) == [
            RigEvent(123, ("pilot", "state=C", "duty_pct=53.3")),
            RigEvent(150, ("relay", "MAIN=CLOSED")),
            RigEvent(170, ("relay", "DISCHARGE=OPEN")),
        ]


def test_poll_events_reads_unsolicited_lines_and_clears_them(serve: Serve) -> None:
    fake = serve(scripted({"EVENTS ON": ["! t_us=10 pilot state=A duty_pct=100.0", "OK"]}))
    with Rig(fake.port, timeout_s=1.0) as rig:
        rig.command("EVENTS ON")
        fake.push("! t_us=2000 pilot state=B duty_pct=53.3", after_s=0.05)
        fake.push("! t_us=2500 relay MAIN=CLOSED", after_s=0.08)
        events = rig.poll_events(0.2)
        assert events == [
            RigEvent(10, ("pilot", "state=A", "duty_pct=100.0")),
            RigEvent(2000, ("pilot", "state=B", "duty_pct=53.3")),
            RigEvent(2500, ("relay", "MAIN=CLOSED")),
        ]
        assert not rig.events
        assert rig.poll_events(0.0) == []


# --- no hangs: silence and garbage are errors ----------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_silent_rig_is_noreply_within_the_timeout(serve: Serve, transport: str) -> None:
    fake = serve(lambda line: [], transport)
    with Rig(fake.port, timeout_s=5.0) as rig:
        start = time.monotonic()
        with pytest.raises(RigError) as caught:
            rig.command("MEAS:CP?", timeout_s=0.3)
        elapsed = time.monotonic() - start
    assert caught.value.code == "NOREPLY"
    assert "MEAS:CP?" in str(caught.value) and "\n" not in str(caught.value)
    assert 0.29 <= elapsed < 1.5, elapsed
    assert fake.received == ["MEAS:CP?"]


def test_a_garbled_reply_is_an_error(serve: Serve) -> None:
    fake = serve(scripted({"*IDN?": ["HELLO"]}))
    with Rig(fake.port, timeout_s=1.0) as rig, pytest.raises(RigError) as caught:
        rig.identify()
    assert (caught.value.code, caught.value.text) == ("GARBLED", "HELLO")
    assert "*IDN?" in str(caught.value) and "\n" not in str(caught.value)


# --- WAIT commands ---------------------------------------------------------------------------


def test_wait_relay_and_wait_duty_send_the_exact_commands_and_parse(serve: Serve) -> None:
    answers = {
        "WAIT:RELAY MAIN,OPEN,100": ["OK elapsed_us=12345"],
        "WAIT:DUTY 8,97,1000": ["OK duty_pct=53.3 elapsed_us=67890"],
    }
    fake = serve(scripted(answers))
    with Rig(fake.port, timeout_s=1.0) as rig:
        assert rig.wait_relay("MAIN", "OPEN", 100) == 12345
        assert rig.wait_duty(8, 97, 1000) == (53.3, 67890)
    assert fake.received == ["WAIT:RELAY MAIN,OPEN,100", "WAIT:DUTY 8,97,1000"]


def test_a_wait_is_allowed_longer_than_the_default_timeout(serve: Serve) -> None:
    def slow(line: str) -> list[str]:
        time.sleep(1.2)  # the rig answers a WAIT when the contacts move, or at its timeout
        return ["OK elapsed_us=1200000"]

    fake = serve(slow)
    with Rig(fake.port, timeout_s=0.5) as rig:
        start = time.monotonic()
        assert rig.wait_relay("MAIN", "OPEN", 100) == 1_200_000
        assert time.monotonic() - start >= 1.1
    assert fake.received == ["WAIT:RELAY MAIN,OPEN,100"]


# --- wait_for_rig ----------------------------------------------------------------------------


def test_wait_for_rig_on_a_missing_device_times_out_with_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyRIG0")
    start = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        wait_for_rig(missing, timeout_s=0.5)
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 1.5, elapsed
    message = str(caught.value)
    assert "\n" not in message and missing in message


def test_wait_for_rig_on_a_silent_device_times_out(serve: Serve) -> None:
    fake = serve(lambda line: [])
    start = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        wait_for_rig(fake.port, timeout_s=0.5)
    # one *IDN? attempt may run its own 1 s reply timeout past the deadline, no more
    assert time.monotonic() - start < 2.5
    message = str(caught.value)
    assert "\n" not in message and fake.port in message and "NOREPLY" in message
    assert fake.received and set(fake.received) == {"*IDN?"}


def test_wait_for_rig_returns_an_open_rig_once_it_answers(serve: Serve) -> None:
    fake = serve(scripted({"*IDN?": [IDN], "EV:STATE A": ["OK"]}))
    rig = wait_for_rig(fake.port, timeout_s=2.0)
    try:
        assert rig.port == fake.port
        rig.ev_state("A")  # still open and usable
    finally:
        rig.close()
    assert fake.received == ["*IDN?", "EV:STATE A"]


# --- the runner: UNSUPPORTED skips, other refusals fail --------------------------------------


def runner_rig(refusal: str) -> Reply:
    """The runner's fresh start, sampling and unplug succeed; a loaded EV:STATE is refused."""
    answers = {
        "*RST": ["OK"],
        "EVENTS ON": ["OK"],
        "MEAS:CP?": ["OK state=A hi_mv=12000 lo_mv=12000 duty_pct=100.0 freq_hz=0.0"],
        "MEAS:RELAY?": ["OK main=OPEN discharge=OPEN"],
        "EV:STATE A": ["OK"],
        "EV:STATE B": ["OK"],
        "EV:PLC OFF": ["OK"],
        "METER:W 0": ["OK"],
    }

    def reply(line: str) -> list[str]:
        if line.startswith("WAIT:RELAY "):
            return ["OK elapsed_us=0"]
        if line.startswith("EV:STATE ") and "," in line:
            return [refusal]
        return answers.get(line, ["ERR SYNTAX unexpected"])

    return reply


def run_tolerance_scenario(serve: Serve, refusal: str) -> tuple[ScenarioResult, FakeRig]:
    (scenario,) = [s for s in load_all() if s.name == "a7-pilot-b-c-resistance-tolerance"]
    assert scenario.steps[0].action == Send(("EV:STATE B,2658",))
    fake = serve(runner_rig(refusal), "socket")
    with Rig(fake.port, timeout_s=1.0) as rig:
        result = Runner(Target(rig, frozenset()), echo=lambda _: None).run(scenario)
    return result, fake


def test_an_unsupported_stimulus_skips_the_scenario(serve: Serve) -> None:
    result, fake = run_tolerance_scenario(serve, "ERR UNSUPPORTED no programmable load")
    assert result.verdict == "SKIP"
    assert "the rig lacks EV:STATE B,2658" in result.reason
    sent = fake.received
    assert sent[:2] == ["*RST", "EVENTS ON"]
    assert sent.count("EV:STATE B,2658") == 1
    assert "EV:STATE C,855" not in sent  # nothing after the refused stimulus
    assert sent.index("EV:STATE A") > sent.index("EV:STATE B,2658")  # unplugged at the end


def test_any_other_refusal_fails_the_scenario(serve: Serve) -> None:
    result, fake = run_tolerance_scenario(serve, "ERR RANGE ohms outside 100..10000")
    assert result.verdict == "FAIL"
    assert "EV:STATE B,2658" in result.reason and "RANGE" in result.reason
    assert "lacks" not in result.reason
    assert "EV:STATE C,855" not in fake.received
    assert "EV:STATE A" in fake.received
