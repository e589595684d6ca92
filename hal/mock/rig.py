"""The virtual rig: the rig protocol served over a pseudo-terminal from the mock board.

It opens a pty, links the slave device at the configured path (so test code opens it with
pyserial exactly like a USB serial rig), and answers one command line at a time in its own
thread. With ``EVENTS ON`` it also reports pilot and relay changes as ``!`` lines, never in
the middle of a reply.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import tty
from pathlib import Path

from hal.contract import Relay
from hal.errors import HalError
from hal.mock.board import MockBoard
from hal.mock.circuit import rig_state_letter
from hal.mock.rig_commands import MAX_LINE, RigInterpreter

logger = logging.getLogger(__name__)

EVENT_POLL_S = 0.002


class VirtualRig:
    def __init__(self, board: MockBoard, link_path: str) -> None:
        self.interpreter = RigInterpreter(board)
        self._board = board
        self._link = Path(link_path)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no newline translation: a plain 8N1 byte pipe
        os.set_blocking(self._master, False)
        self.device = os.ttyname(self._slave)
        self._make_link()
        self._stop = threading.Event()
        self._dropped = 0
        self._last_seen: tuple[str, ...] = ()
        self._thread = threading.Thread(target=self._serve, name="virtual-rig", daemon=True)
        self._thread.start()
        logger.info("rig.ready link=%s device=%s", self._link, self.device)

    def _make_link(self) -> None:
        try:
            self._link.parent.mkdir(parents=True, exist_ok=True)
            if self._link.is_symlink():
                self._link.unlink()  # left over from an earlier run
            elif self._link.exists():
                raise HalError(f"rig link {self._link} exists and is not a symlink")
            self._link.symlink_to(self.device)
        except OSError as err:
            os.close(self._master)
            os.close(self._slave)
            raise HalError(f"cannot link the virtual rig at {self._link}: {err}") from err

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.unlink()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def unlink(self) -> None:
        """Remove the link (if it is still ours): a host that has the device open keeps it,
        a new one finds the next board's rig instead of this one."""
        with contextlib.suppress(OSError):
            if self._link.is_symlink() and os.readlink(self._link) == self.device:
                self._link.unlink()

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], EVENT_POLL_S)
            if ready:
                try:
                    pending += os.read(self._master, 4096)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    continue
                pending = self._run_lines(pending)
            if self.interpreter.events_on:
                self._emit_events()

    def _run_lines(self, pending: bytes) -> bytes:
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            reply = self.interpreter.execute(raw.decode("ascii", errors="replace"))
            self._write(reply)
        if len(pending) > MAX_LINE:
            self._write(f"ERR SYNTAX line longer than {MAX_LINE} characters")
            pending = b""
        return pending

    def _emit_events(self) -> None:
        board = self._board
        high_v, _ = board.pilot_plateaus_v()
        output, _ = board.pilot_output()
        contacts = {relay: board.contacts(relay) for relay in Relay}
        positions = ("CLOSED" if closed else "OPEN" for closed, _ in contacts.values())
        seen = (rig_state_letter(high_v), f"{output.duty_pct:.1f}", *positions)
        if not self._last_seen:
            self._last_seen = seen
            return
        now_us = self.interpreter.rig_us(board.now_ns())
        if seen[:2] != self._last_seen[:2]:
            self._write(f"! t_us={now_us} pilot state={seen[0]} duty_pct={seen[1]}")
        for index, (relay, (_, since_ns)) in enumerate(contacts.items(), start=2):
            if seen[index] != self._last_seen[index]:
                at_us = self.interpreter.rig_us(since_ns)
                self._write(f"! t_us={at_us} relay {relay.value}={seen[index]}")
        self._last_seen = seen

    def _write(self, line: str) -> None:
        data = (line + "\n").encode("ascii", errors="replace")
        try:
            os.write(self._master, data)  # a whole line at once: events never split a reply
        except (BlockingIOError, OSError):
            self._dropped += 1  # nobody is reading; a rig never blocks on its host
