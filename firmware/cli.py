"""The ``evse-gatekeeper`` command line: the daemon and its tools.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input. Every refusal prints one
line on stderr saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from firmware import __version__
from firmware.errors import ConfigError
from firmware.logs import flush_logging, setup_logging
from hal import HalError

DEFAULT_CONFIG = "/etc/evse-gatekeeper/config.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evse-gatekeeper",
        description="SAE J3072 gatekeeper firmware for an AC Level 2 EVSE.",
    )
    parser.add_argument("--version", action="version", version=f"evse-gatekeeper {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="run the firmware daemon",
        description="Run the firmware: open the board, supervise the pilot and the relays. "
        "SIGTERM or SIGINT opens the relays and exits 0.",
    )
    run.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="PATH",
        help=f"TOML config file (default: {DEFAULT_CONFIG})",
    )
    run.add_argument(
        "--check", action="store_true", help="validate the config, print a summary and exit"
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    from firmware.app import Gatekeeper
    from firmware.config import load_config

    config = load_config(args.config)
    if args.check:
        print(f"{args.config}: ok (backend={config.board.backend})")
        return 0
    setup_logging(config.log.level)
    app = Gatekeeper(config)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.request_stop)
        return await app.run()

    try:
        return asyncio.run(main())
    finally:
        flush_logging()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as err:
        for problem in err.problems:
            print(f"evse-gatekeeper: config: {problem}", file=sys.stderr)
        return 2
    except HalError as err:
        print(f"evse-gatekeeper: board: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
