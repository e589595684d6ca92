"""The ``evse-gatekeeper`` command line: the daemon and its tools.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input. Every refusal prints one
line on stderr saying why.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from firmware import firmware_version
from firmware.approvals import cli as approvals_cli
from firmware.daemon.cli_args import add_config
from firmware.daemon.control_socket import (
    LIMIT_DEFAULT,
    ControlError,
    query,
    render,
    render_current,
    set_function,
    set_limit,
)
from firmware.errors import ConfigError
from firmware.journal import cli as journal_cli
from firmware.logs import flush_logging, setup_logging
from firmware.safety.inoperative import FaultStoreError
from hal import HalError


class _Version(argparse.Action):
    """``--version``, looked up only when asked."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"evse-gatekeeper {firmware_version()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evse-gatekeeper",
        description="SAE J3072 gatekeeper firmware for an AC Level 2 EVSE.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="run the firmware daemon",
        description="Run the firmware: open the board, supervise the pilot and the relays. "
        "SIGTERM or SIGINT opens the relays and exits 0.",
    )
    add_config(run)
    run.add_argument(
        "--check", action="store_true", help="validate the config, print a summary and exit"
    )
    faults = commands.add_parser(
        "faults",
        help="show or clear the recorded permanent fault",
        description="A welded or failed-to-close contactor (or a failed RCD self-test) makes "
        "the EVSE inoperative across restarts. After the hardware is repaired, clear the "
        "record; it takes effect at the daemon's next start. Exit 1 when the state directory "
        "or the record cannot be used: show also when the record is unreadable or a save was "
        "interrupted (both count as a fault; clear removes them). Exit 2 for a bad config.",
    )
    action = faults.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("show", "print the recorded fault, if any"),
        ("clear", "remove the record (after repair)"),
    ):
        sub = action.add_parser(name, help=text, description=text)
        add_config(sub)
    status = commands.add_parser(
        "status",
        help="ask the running daemon for its status",
        description="Ask the running daemon, over its control socket ([control] socket), "
        "for the pilot state, relays, PLC link, session, authorization, approval list and "
        "faults. Exit 1 when the daemon does not answer.",
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    add_config(status)
    limit = commands.add_parser(
        "limit",
        help="lower the charging current the running daemon offers (0 pauses)",
        description="Ask the running daemon, over its control socket, to offer at most AMPS "
        "by PWM: 0 pauses charging (a vehicle still charging gets 6 s to stop), 6 A up to "
        "[charger] max_current_a limits it, 'default' restores the configured rating. Held "
        "until changed or the daemon restarts. Exit 1 when refused or not answered.",
    )
    limit.add_argument("amps", metavar="AMPS|default")
    add_config(limit)
    control = commands.add_parser(
        "control",
        help="change an IEEE 1547 function in the running sessions (a superseding DERControl)",
        description="Put one IEEE 1547 function in effect now, as a [[site.functions]] table "
        "would say it: MODE and KEY=VALUE pairs, each VALUE in TOML (percent=50, "
        "curve=[[92,44],[98,0],[102,0],[108,-44]]). The daemon checks it as the config "
        "loader does; every running session gets a superseding DERControl with a new mRID, "
        "and the gate holds the vehicle to it once it is due ([j3072] follow_s). Held until "
        "changed or the daemon restarts. Exit 1 when refused or not answered, 2 on bad usage.",
    )
    control.add_argument("mode", metavar="MODE")
    control.add_argument("settings", metavar="KEY=VALUE", nargs="*")
    add_config(control)
    _add_pki_parser(commands)
    approvals_cli.add_parser(commands)
    journal_cli.add_parser(commands)
    return parser


def _add_pki_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pki = commands.add_parser(
        "pki",
        help="make TEST 2030.5 credentials, show a certificate's identity",
        description="IEEE 2030.5 device certificates: a TEST PKI for the bench, and the "
        "LFDI/SFDI by which a device is known.",
    )
    action = pki.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = action.add_parser(
        "init",
        help="write a TEST PKI into DIR",
        description="Write TEST credentials (SERCA, MCA, MICA, the EVSE, test PEVs and bad "
        "ones) into DIR, keys with mode 0600. Not for production. Refuses a DIR that already "
        "holds a serca.pem.",
    )
    init.add_argument("directory", metavar="DIR", type=Path)
    text = "print the LFDI and SFDI of a certificate (PEM or DER; the first one of a chain)"
    lfdi = action.add_parser("lfdi", help=text, description=text)
    lfdi.add_argument("cert", metavar="CERT", type=Path)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from firmware.daemon.app import Gatekeeper
    from firmware.daemon.config import load_config

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


def _faults(args: argparse.Namespace) -> int:
    """A record that cannot be used is a runtime failure (exit 1), not bad input: the config
    was fine, and for the daemon the same record counts as a fault."""
    from firmware.daemon.config import load_config
    from firmware.safety.inoperative import FaultStore

    store = FaultStore(load_config(args.config).paths.state_dir)
    try:
        if args.action == "show":
            recorded = store.load()
            print(f"{recorded.kind.value} at={recorded.at}" if recorded else "none")
            return 0
        try:
            recorded = store.load()
        except FaultStoreError:
            recorded = None  # a damaged record or a leftover is cleared all the same
        cleared = store.clear()
    except FaultStoreError as err:
        print(f"evse-gatekeeper: faults: {err}", file=sys.stderr)
        return 1
    if cleared:
        print(f"cleared {recorded.kind.value if recorded else 'unreadable record'}")
    else:
        print("no permanent fault recorded")
    return 0


def _status(args: argparse.Namespace) -> int:
    from firmware.daemon.config import load_config

    path = load_config(args.config).control_socket
    try:
        snapshot = query(path)
    except ControlError as err:
        print(f"evse-gatekeeper: status: {err}", file=sys.stderr)
        return 1
    print(json.dumps(snapshot, indent=2, sort_keys=True) if args.json else render(snapshot))
    return 0


def _limit(args: argparse.Namespace) -> int:
    from firmware.daemon.config import load_config

    path = load_config(args.config).control_socket
    try:
        amps = None if args.amps == LIMIT_DEFAULT else float(args.amps)
    except ValueError:
        print(f"evse-gatekeeper: limit: {args.amps!r} is not amps or 'default'", file=sys.stderr)
        return 2
    try:
        answer = set_limit(path, amps)
    except ControlError as err:
        print(f"evse-gatekeeper: limit: {err}", file=sys.stderr)
        return 1
    print(render_current(answer))
    return 0


def _control(args: argparse.Namespace) -> int:
    import tomllib

    from firmware.daemon.config import load_config

    table: dict[str, object] = {"mode": args.mode}
    for setting in args.settings:
        key, equals, value = setting.partition("=")
        try:
            if not equals or not key.strip():
                raise ValueError("expected KEY=VALUE")
            table[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except (ValueError, tomllib.TOMLDecodeError) as err:
            print(f"evse-gatekeeper: control: {setting!r}: {err}", file=sys.stderr)
            return 2
    path = load_config(args.config).control_socket
    try:
        answer = set_function(path, table)
    except ControlError as err:
        print(f"evse-gatekeeper: control: {err}", file=sys.stderr)
        return 1
    replaced = f", superseding {answer['replaced']}" if answer.get("replaced") else ""
    print(f"{answer.get('mode')} in effect{replaced}: {answer.get('sessions')} session(s)")
    return 0


def _pki(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding

    from firmware.sep2.identity import PkiError, lfdi, load_certificate, sfdi
    from firmware.sep2.pki import init_pki

    try:
        if args.action == "init":
            layout = init_pki(args.directory)
            for path in layout.files:
                print(f"wrote {path}")
            print(f"TEST credentials only, not for production: see {args.directory / 'README.txt'}")
            return 0
        value = lfdi(load_certificate(args.cert).public_bytes(Encoding.DER))
    except PkiError as err:
        print(f"evse-gatekeeper: {err}", file=sys.stderr)
        return 2
    print(f"lfdi={value} sfdi={sfdi(value)}")
    return 0


def _sessions(args: argparse.Namespace) -> int:
    from firmware.daemon.config import load_config

    return journal_cli.run(args, load_config(args.config))


def _approvals(args: argparse.Namespace) -> int:
    from firmware.daemon.config import load_config

    return approvals_cli.run(args, load_config(args.config))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = {
        "run": _run,
        "faults": _faults,
        "status": _status,
        "limit": _limit,
        "control": _control,
        "pki": _pki,
        "approvals": _approvals,
        "sessions": _sessions,
    }[args.command]
    try:
        return command(args)
    except FaultStoreError as err:
        print(f"evse-gatekeeper: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        for problem in err.problems:
            print(f"evse-gatekeeper: config: {problem}", file=sys.stderr)
        return 2
    except HalError as err:
        print(f"evse-gatekeeper: board: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
