"""What every ``evse-gatekeeper`` subcommand that reads the config shares: its ``--config``."""

from __future__ import annotations

import argparse

DEFAULT_CONFIG = "/etc/evse-gatekeeper/config.toml"


def add_config(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="PATH",
        help=f"TOML config file (default: {DEFAULT_CONFIG})",
    )
    return parser
