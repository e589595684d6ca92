"""Structured log lines: ``event key=value ...`` on stderr, suitable for journald.

Only the CLI calls ``setup_logging``. Records go through a queue so that a thread that logs
(the sampler never does, but the loop does) never blocks on a slow stderr pipe.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from collections.abc import Iterable

_listener: logging.handlers.QueueListener | None = None


def fmt_value(value: object) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if not text or any(c in text for c in ' "='):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def kv(event: str, fields: Iterable[tuple[str, object]] = ()) -> str:
    """``event k=v k=v`` with values quoted where they would be ambiguous."""
    parts = [event, *(f"{key}={fmt_value(value)}" for key, value in fields)]
    return " ".join(parts)


def log_event(
    logger: logging.Logger, event: str, level: int = logging.INFO, **fields: object
) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, "%s", kv(event, fields.items()))


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        return f"{stamp}.{int(record.msecs):03d} {record.levelname.lower()} {record.getMessage()}"


def setup_logging(level: str = "info") -> None:
    """Send every record to stderr through a background listener thread."""
    global _listener
    if _listener is not None:
        _listener.stop()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(_Formatter())
    _listener = logging.handlers.QueueListener(records, stream)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.setLevel(level.upper())
    atexit.register(flush_logging)


def flush_logging() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
