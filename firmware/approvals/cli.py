"""``evse-gatekeeper approvals``: install, show, check and fetch the utility approval list.

Owns the four commands and the HTTPS fetch: aiohttp, the server verified against the system
trust store (or ``--ca``), ``http://`` refused, redirects not followed (so nothing can lead the
fetch off HTTPS), the body capped. Whatever arrives goes through ``ApprovalStore.install``,
the same checks as a file. It does not load the config file: ``firmware.daemon.cli`` adds
these commands (``add_parser``), loads the config and calls ``run``.

Exit codes, as for the rest of the command: 0 success; 1 runtime failure (no list in force,
an ISM not approved, a fetch or a write that failed); 2 refused input, with one line on
stderr ``evse-gatekeeper: approvals: <reason>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from firmware.approvals import ApprovalError
from firmware.approvals.approval_list import Status, rfc3339
from firmware.approvals.config import ApprovalsConfig
from firmware.approvals.jws import load_utility_keys
from firmware.approvals.view import ListView
from firmware.daemon.cli_args import add_config
from firmware.daemon.config import PathsConfig
from firmware.sep2.config import SiteConfig

if TYPE_CHECKING:  # the store (sqlite3) and ssl are imported by the commands that use them
    import ssl

    from firmware.approvals.store import ApprovalStore


class ApprovalsUsageError(ApprovalError):
    """Raised when an approvals command is given what it cannot use: no utility key in the
    config, a file it cannot read, a URL that is not https://, an unusable ``--ca``."""


class FetchError(ApprovalError):
    """Raised when a list cannot be downloaded: connection, TLS or timeout failure, an HTTP
    status other than 200, or a body larger than the store accepts."""


class ApprovalsSettings(Protocol):
    """What the commands need of the config; ``firmware.config.Config`` once it reads
    ``[approvals]``."""

    @property
    def approvals(self) -> ApprovalsConfig: ...
    @property
    def site(self) -> SiteConfig: ...
    @property
    def paths(self) -> PathsConfig: ...


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approvals = commands.add_parser(
        "approvals",
        help="install, show, check or fetch the utility approval list",
        description="The utility's signed list (ES256 JWS) of vehicle ISMs approved or "
        "revoked for discharge, verified against [approvals] utility_keys and [site] "
        "service_area. A refused list changes nothing.",
    )
    action = approvals.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = _action(action, "install", "verify a list from FILE and install it")
    install.add_argument("file", metavar="FILE", type=Path)
    show = _action(action, "show", "print the installed list's version, dates and size")
    show.add_argument("--json", action="store_true", help="one JSON object")
    check = _action(action, "check", "print approved, revoked or not listed (exit 0: approved)")
    check.add_argument("ism", metavar="ISM")
    fetch = _action(action, "fetch", "download a list over HTTPS, verify it and install it")
    fetch.add_argument("url", metavar="URL", help="https:// only")
    fetch.add_argument(
        "--ca",
        metavar="FILE",
        type=Path,
        help="trust this CA file (default: [approvals] ca_file, else the system's)",
    )


def _action(
    action: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse.ArgumentParser:
    parser = action.add_parser(name, help=text, description=text)
    add_config(parser)
    return parser


def run(args: argparse.Namespace, config: ApprovalsSettings) -> int:
    """Run ``approvals <action>``; the exit code."""
    from firmware.approvals.store import ApprovalStoreError

    _quiet_logging()
    command: Callable[[argparse.Namespace, ApprovalsSettings], int] = {
        "install": _install,
        "show": _show,
        "check": _check,
        "fetch": _fetch,
    }[args.action]
    try:
        return command(args, config)
    except (ApprovalStoreError, FetchError) as err:
        _say(str(err))
        return 1
    except ApprovalError as err:
        _say(str(err))
        return 2


def _install(args: argparse.Namespace, config: ApprovalsSettings) -> int:
    store = _store(config)
    try:  # the install reads it in chunks: a file it cannot open is the operator's to fix
        args.file.open("rb").close()
    except OSError as err:
        raise ApprovalsUsageError(f"{args.file}: cannot read: {err.strerror}") from err
    return _install_into(store, args.file, config)


def _fetch(args: argparse.Namespace, config: ApprovalsSettings) -> int:
    import asyncio

    if urlsplit(args.url).scheme.lower() != "https":
        raise ApprovalsUsageError(f"only https:// URLs are fetched, not {args.url!r}")
    store = _store(config)  # a config without keys is refused before going to the network
    ca = args.ca or config.approvals.ca_file  # the daemon's CA for its own fetches
    import tempfile

    with tempfile.TemporaryDirectory(prefix="evse-gatekeeper-fetch-") as scratch:
        into = Path(scratch) / "list.jws"
        asyncio.run(download(args.url, _tls_context(ca), config.approvals, into))
        return _install_into(store, into, config)  # read in chunks, as a file installs


def _install_into(store: ApprovalStore, text: str | bytes | Path, config: ApprovalsSettings) -> int:
    from firmware.journal.store import Journal, JournalError

    config.paths.state_dir.mkdir(parents=True, exist_ok=True)
    installed = store.install(text)
    print(
        f"installed version {installed.version} ({len(installed.entries)} entries, "
        f"service area {installed.service_area}, expires {rfc3339(installed.expires_at)})"
    )
    try:  # the install is done either way; say so if the journal could not record it
        with Journal.in_state_dir(config.paths.state_dir) as journal:
            journal.record_approval_install(
                None, installed.version, installed.issuer, installed.service_area,
                rfc3339(installed.expires_at), len(installed.entries),
            )  # fmt: skip
    except (JournalError, ValueError) as err:
        _say(f"installed, but not journaled: {err}")
    return 0


def _show(args: argparse.Namespace, config: ApprovalsSettings) -> int:
    installed = _load(config)
    if installed is None:
        print("no list installed")
        return 1
    summary = summarize(installed)
    if args.json:
        print(json.dumps(summary))
    else:
        print(" ".join(f"{key}={_plain(value)}" for key, value in summary.items()))
    return 0


def _check(args: argparse.Namespace, config: ApprovalsSettings) -> int:
    installed = _load(config)
    status = Status.NOT_LISTED if installed is None else installed.status_of(args.ism)
    print(status.value)
    return 0 if status is Status.APPROVED else 1


def _plain(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c == '"' for c in text) else text


def summarize(installed: ListView) -> dict[str, Any]:
    """The ``show --json`` object."""
    return {
        "version": installed.version,
        "issuer": installed.issuer,
        "service_area": installed.service_area,
        "issued_at": rfc3339(installed.issued_at),
        "expires_at": rfc3339(installed.expires_at),
        "entry_count": len(installed.entries),
    }


async def download(
    url: str, context: ssl.SSLContext, settings: ApprovalsConfig, into: Path
) -> None:
    """GET ``url`` over verified TLS into ``into``, as the daemon's refresher does but
    unconditionally (anything but a JWS is left for the install to refuse)."""
    from firmware.approvals.conditional_fetch import AnswerRefused, FetchFailed, Validators, fetch

    try:
        got = await fetch(url, context, settings.fetch_timeout_s, Validators(), into)
    except (FetchFailed, AnswerRefused) as err:
        raise FetchError(f"{url}: {err}") from err
    if got is None:  # unreachable: fetch refuses a 304 to a request without validators
        raise FetchError(f"{url}: HTTP 304 Not Modified to a request with no validator")


def _tls_context(ca: Path | None) -> ssl.SSLContext:
    import ssl

    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as err:
        raise ApprovalsUsageError(f"--ca {ca}: cannot use: {err}") from err


def _store(config: ApprovalsSettings) -> ApprovalStore:
    from firmware.approvals.store import ApprovalStore

    if not config.approvals.utility_keys:
        raise ApprovalsUsageError("approvals.utility_keys: not set in the config")
    keys = load_utility_keys(config.approvals.utility_keys)
    return ApprovalStore(config.paths.state_dir, keys, config.site.service_area)


def _load(config: ApprovalsSettings) -> ListView | None:
    """The installed list if it is in force; otherwise None, and the reason on stderr."""
    store = _store(config)
    installed = store.load_confirmed()
    if store.problem:
        _say(store.problem)
    return installed


def _say(reason: str) -> None:
    print(f"evse-gatekeeper: approvals: {reason}", file=sys.stderr)


def _quiet_logging() -> None:
    # the commands speak for themselves on stderr; without a handler, logging's last resort
    # would print the store's warnings a second time
    package = logging.getLogger("firmware.approvals")
    if not package.handlers:
        package.addHandler(logging.NullHandler())
