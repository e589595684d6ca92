"""``python -m firmware.safety --channel-fd N``: the safety process, started by the gatekeeper.

It reads its settings from the first message on the channel, then runs until the gatekeeper
says stop (exit 0), is lost (exit 3), or the board fails (exit 1, reported on the channel).
SIGTERM and SIGINT open the relays and exit 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys

from firmware.logs import flush_logging, setup_logging
from firmware.safety import channel as ch
from firmware.safety.process import EXIT_FAILED, SafetyProcess
from firmware.safety.settings import from_json
from hal import HalError

SETUP_TIMEOUT_S = 10.0
logger = logging.getLogger("firmware.safety")


USAGE = "usage: python -m firmware.safety --channel-fd N"


def _channel_fd(argv: list[str]) -> int | None:
    """The one argument, read by hand: argparse (with gettext and textwrap) would cost this
    process about 1 MB of locked memory for a flag only the gatekeeper ever passes."""
    if len(argv) == 2 and argv[0] == "--channel-fd" and argv[1].isdigit():
        return int(argv[1])
    if len(argv) == 1 and argv[0].startswith("--channel-fd=") and argv[0][13:].isdigit():
        return int(argv[0][13:])
    return None


def main(argv: list[str] | None = None) -> int:
    fd = _channel_fd(sys.argv[1:] if argv is None else argv)
    if fd is None:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        link = socket.socket(fileno=fd)
        link.settimeout(SETUP_TIMEOUT_S)
        message = ch.decode(link.recv(ch.MAX_MESSAGE))
        if not isinstance(message, ch.Setup):
            raise ch.ChannelError(f"expected Setup first, got {type(message).__name__}")
        settings = from_json(message.settings_json)
    except (OSError, ValueError, ch.ChannelError) as err:
        print(f"evse-gatekeeper safety: no usable setup: {err}", file=sys.stderr)
        return EXIT_FAILED
    setup_logging(settings.log_level)
    process = SafetyProcess(settings, link)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: process.request_stop())
    try:
        return process.run()
    except HalError as err:
        _report(link, f"board: {err}")
    except Exception as err:  # the supervisor of this process: the relays are open by now
        logger.exception("safety.crash error=%r", err)
        _report(link, f"safety process crashed: {err!r}")
    finally:
        flush_logging()
    return EXIT_FAILED


def _report(link: socket.socket, error: str) -> None:
    with contextlib.suppress(OSError):
        link.setblocking(True)
        link.send(ch.encode(ch.Failed(error)))


if __name__ == "__main__":
    sys.exit(main())
