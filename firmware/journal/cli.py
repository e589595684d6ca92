"""``evse-gatekeeper sessions``: the journal's recent sessions and their J3072 decisions.

Owns the command's options and its two outputs: readable lines (each session, then each
decision: granted with its limit, or denied with every reason) or, with ``--json``, one JSON
array. It only reads, opening the journal read-only (an operator without write access to the
state directory can run it): no journal yet is "no sessions", not an error, and it creates
nothing. It
does not load the config file (the caller passes it in).

Exit codes: 0 success (also when there is nothing to show); 2 when the journal cannot be read,
with one line on stderr ``evse-gatekeeper: journal: <reason>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from firmware.daemon.cli_args import add_config
from firmware.daemon.config import Config

if TYPE_CHECKING:
    from firmware.journal.store import SessionRow

DEFAULT_LIMIT = 20
MAX_LIMIT = 10_000


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "print the journal's recent sessions and their J3072 decisions, newest first"
    sessions = commands.add_parser("sessions", help=text, description=text)
    sessions.add_argument("--json", action="store_true", help="one JSON array of objects")
    sessions.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N sessions, 1..{MAX_LIMIT} (default: {DEFAULT_LIMIT})",
    )
    add_config(sessions)


def run(args: argparse.Namespace, config: Config) -> int:
    """Run ``sessions``; the exit code."""
    from firmware.journal.store import FILE_NAME, Journal, JournalError  # sqlite3: only here

    path = config.paths.state_dir / FILE_NAME
    try:
        if path.exists():
            with Journal(path, read_only=True) as journal:
                rows = journal.sessions(args.limit)
        else:
            rows = []  # nothing recorded yet; opening would create the file
    except JournalError as err:
        print(f"evse-gatekeeper: journal: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([session_object(row) for row in rows]))
    elif not rows:
        print("no sessions")
    else:
        print("\n\n".join("\n".join(session_lines(row)) for row in rows))
    return 0


def session_object(row: SessionRow) -> dict[str, Any]:
    """One element of the ``--json`` array."""
    return asdict(row)  # the tuples (decisions, reasons) become JSON arrays


def session_lines(row: SessionRow) -> list[str]:
    """A session as readable lines: when, who, then each decision in order."""
    if row.plugged_out_at is None:
        out = "still plugged in"
    elif row.ended_by is None:
        out = f"unplugged {row.plugged_out_at}"
    else:  # the daemon died meanwhile: when the vehicle left is not known
        out = f"ended by {row.ended_by} {row.plugged_out_at}"
    lines = [
        f"session {row.id}: plugged in {row.plugged_in_at}, {out}",
        f"  ev_mac={_text(row.ev_mac)} lfdi={_text(row.lfdi)} ism={_text(row.ism)} "
        f"vin={_text(row.vin)}",
    ]
    if not row.decisions:
        lines.append("  no decision")
    for decision in row.decisions:
        if decision.granted:
            limit = "no limit" if decision.limit_w is None else f"limit {decision.limit_w} W"
            lines.append(f"  {decision.at} granted, {limit} (ism={_text(decision.ism)})")
        else:
            lines.append(f"  {decision.at} denied (ism={_text(decision.ism)}):")
            lines += [f"    - {reason}" for reason in decision.reasons] or ["    - no reason"]
    return lines


def _text(value: str | None) -> str:
    if value is None:
        return "-"
    return json.dumps(value) if not value or any(c.isspace() or c == '"' for c in value) else value


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_LIMIT}, not {value}")
    return value
