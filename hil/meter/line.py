"""An RS-485 line between two pseudo-terminal pairs: the meter backend opens one end, the
simulated meter's server the other, and a thread carries the bytes across.

A pty has no baud rate: bytes cross at once. The line models the bus's time honestly: a
frame that arrives is passed on only after the time its characters take on the wire at the
configured baud (``bits_per_char`` / baud each: 10 for 8N1) plus the 3.5-character silence
that ends an RTU frame, the two directions sharing one half-duplex line. It can also garble
the next answers (one byte flipped: a CRC error) or drop everything (a meter that stopped
answering, a cut wire). With ``echo`` the backend's end hears its own request as it goes
out, as through a transceiver whose receiver stays enabled while it drives the line.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from pathlib import Path

FRAME_GAP_CHARS = 3.5  # Modbus over serial line: silence that ends an RTU frame


def _pty_pair() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


class SerialLine:
    def __init__(
        self, baudrate: int | None = 9600, bits_per_char: int = 10, echo: bool = False
    ) -> None:
        """``baudrate`` None: no bus timing (bytes cross at once)."""
        self.echo = echo
        self._char_s = bits_per_char / baudrate if baudrate else 0.0
        self._client = _pty_pair()
        self._server = _pty_pair()
        self.client_device = self._client[2]  # the meter backend opens this
        self.server_device = self._server[2]  # the simulated meter serves on this
        self.drop = False
        self.garbled = 0  # answers garbled so far
        self._garble_next = 0
        self._lock = threading.Lock()
        self._line_free_at = 0.0
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._carry, args=(self._client[0], self._server[0], False),
                             name="line-request", daemon=True),
            threading.Thread(target=self._carry, args=(self._server[0], self._client[0], True),
                             name="line-answer", daemon=True),
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def link(self, path: Path) -> Path:
        """A stable name for the backend's end (what ``[meter] port`` names)."""
        path.unlink(missing_ok=True)
        path.symlink_to(self.client_device)
        return path

    def garble(self, answers: int = 1) -> None:
        """Flip one byte in each of the next ``answers`` answers."""
        with self._lock:
            self._garble_next += answers

    def _carry(self, source: int, target: int, answers: bool) -> None:
        while not self._stopping.is_set():
            ready, _, _ = select.select([source], [], [], 0.1)
            if not ready:
                continue
            first_s = time.monotonic()  # the frame started on the wire
            try:
                data = os.read(source, 4096)
            except OSError:
                return
            data = self._rest_of_frame(source, data)
            echo = self.echo and not answers  # our own transceiver hears it, cut line or not
            if self.drop and not echo:
                continue
            if answers:
                data = self._maybe_garble(data)
            self._wait_for_the_wire(len(data), first_s)
            try:
                if echo:
                    os.write(source, data)
                if not self.drop:
                    os.write(target, data)
            except OSError:
                return

    def _rest_of_frame(self, source: int, data: bytes) -> bytes:
        """A frame may come in pieces: gather until the line has been quiet for the frame
        gap (at least 2 ms, the pty's own scheduling)."""
        quiet_s = max(FRAME_GAP_CHARS * self._char_s, 0.002)
        while True:
            ready, _, _ = select.select([source], [], [], quiet_s)
            if not ready:
                return data
            try:
                data += os.read(source, 4096)
            except OSError:
                return data

    def _maybe_garble(self, data: bytes) -> bytes:
        with self._lock:
            if self._garble_next <= 0 or not data:
                return data
            self._garble_next -= 1
            self.garbled += 1
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0x5A]) + data[middle + 1 :]

    def _wait_for_the_wire(self, chars: int, first_s: float) -> None:
        """The frame is passed on once its characters and the frame gap would have crossed
        a half-duplex line that may still be busy with the other direction."""
        if not self._char_s:
            return
        with self._lock:
            start = max(first_s, self._line_free_at)
            done = start + (chars + FRAME_GAP_CHARS) * self._char_s
            self._line_free_at = done
        delay = done - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def close(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for fd in (*self._client[:2], *self._server[:2]):
            with contextlib.suppress(OSError):
                os.close(fd)
