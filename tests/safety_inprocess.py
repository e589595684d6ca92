"""A safety process on a thread of the test process, with a board the test holds: for tests
that make a board misbehave (a failing ADC read, a stalled SPI transfer, a dead RCD) and
watch the gatekeeper's answer. It speaks the same channel as the real child process."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import threading
from collections.abc import Callable

from firmware.safety import channel as ch
from firmware.safety.link import SafetyHandle
from firmware.safety.process import SafetyProcess
from firmware.safety.settings import from_json
from hal import Board


class ThreadHandle:
    def __init__(self, board: Board, child_end: socket.socket) -> None:
        self._board = board
        self._sock = socket.socket(fileno=os.dup(child_end.fileno()))
        self.process: SafetyProcess | None = None
        self.code: int | None = None
        self._thread = threading.Thread(target=self._run, name="safety-inprocess", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        message = ch.decode(self._sock.recv(ch.MAX_MESSAGE))
        assert isinstance(message, ch.Setup)
        # no SCHED_FIFO, mlockall or GC changes: they would apply to the whole test process
        settings = dataclasses.replace(from_json(message.settings_json), realtime_priority=0)
        self.process = SafetyProcess(settings, self._sock, lambda _: self._board)
        try:
            self.code = self.process.run()
        finally:
            self._sock.close()

    @property
    def pid(self) -> int:
        return os.getpid()

    def wait(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise subprocess.TimeoutExpired("safety-inprocess", timeout or 0)
        return self.code if self.code is not None else 1

    def kill(self) -> None:
        if self.process is not None:
            self.process.request_stop()


def launcher(board: Board) -> Callable[[socket.socket], SafetyHandle]:
    return lambda child_end: ThreadHandle(board, child_end)
