"""Start the firmware daemon as a real process and watch its log: for demos, tests, benches.

The daemon is ``python -m firmware run --config PATH``, exactly what systemd runs. Its
stderr (the structured log) is read by a thread, kept, and optionally copied to a file.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import tomli_w


def toml_dumps(data: dict[str, Any]) -> str:
    """A config as TOML text (tomli-w, the ``hil`` extra): what the harnesses write."""
    return tomli_w.dumps(data)


class Daemon:
    def __init__(
        self,
        config_path: Path,
        log_file: Path | None = None,
        argv: list[str] | None = None,
        log_on_stdout: bool = False,
    ) -> None:
        """``argv`` replaces the command (default: the firmware daemon on ``config_path``);
        ``log_on_stdout``: the log comes on its stdout (e.g. ``journalctl -f`` on a board)."""
        self.config_path = config_path
        self.lines: list[str] = []
        self._fresh: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._log_file: TextIO | None = log_file.open("w") if log_file else None
        command = argv or [sys.executable, "-m", "firmware", "run", "--config", str(config_path)]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if log_on_stdout else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if log_on_stdout else subprocess.PIPE,
            text=True,
        )
        self._log = self.proc.stdout if log_on_stdout else self.proc.stderr
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._log is not None
        for line in self._log:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._fresh.put(line)
            if self._log_file is not None:
                self._log_file.write(line + "\n")
                self._log_file.flush()

    def wait_for(self, needle: str, timeout_s: float = 10.0) -> str:
        """Block until a new log line contains ``needle``; return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no log line with {needle!r} within {timeout_s:g} s")
            try:
                line = self._fresh.get(timeout=min(remaining, 0.1))
            except queue.Empty:
                if self.proc.poll() is not None and self._fresh.empty():
                    last = "\n".join(self.lines[-15:])
                    raise RuntimeError(
                        f"daemon exited with {self.proc.returncode} while waiting for {needle!r}; "
                        f"its last lines:\n{last}"
                    ) from None
                continue
            if needle in line:
                return line

    def wait_for_all(self, needles: tuple[str, ...], since: int, timeout_s: float = 5.0) -> None:
        """Block until every needle is in some line after line ``since``, in any order (for
        events that race each other); does not consume lines from ``drain``."""
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self.lines[since:]
            missing = [n for n in needles if not any(n in line for line in lines)]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no log line with {missing} within {timeout_s:g} s")
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}")
            time.sleep(0.02)

    def drain(self) -> list[str]:
        """Log lines that arrived since the last drain or wait."""
        lines = []
        while True:
            try:
                lines.append(self._fresh.get_nowait())
            except queue.Empty:
                return lines

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then wait; a daemon that ignores it is killed and reported as -9."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=2)
        if self._log_file is not None:
            self._log_file.close()
        return self.proc.returncode
