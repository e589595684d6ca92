"""``python -m hil.pev run --server URL --pki DIR --profile NAME [--duration S]``: play one
simulated vehicle against the EVSE's 2030.5 server and print its timeline.

One line per step as it happens (time since start, method, href, status, latency); polls only
with ``--verbose``; every opModEnergize change; then a summary. Exit 0 when the session went as
the profile intends (bad-certificate: the TLS handshake failed), 1 when it did not, 2 for bad
usage. Ctrl-C (or SIGTERM) ends the heartbeat phase and still prints the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from firmware.logs import setup_logging
from hil.pev.client import PevClient
from hil.pev.profiles import PROFILES, Profile, SleepWake
from hil.pev.report import EnergizeChange, PevReport, Step


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m hil.pev", description=__doc__.splitlines()[0])
    verbs = top.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="run one vehicle's J3072 session")
    run.add_argument("--server", required=True, help="the EVSE, e.g. https://[::1]:8443")
    run.add_argument("--pki", required=True, type=Path, help="directory made by `pki init`")
    run.add_argument("--profile", required=True, choices=sorted(PROFILES))
    run.add_argument("--duration", type=float, help="heartbeat phase in s (default: until ^C)")
    run.add_argument("--heartbeats", type=int, help="go silent after N heartbeats")
    run.add_argument("--poll", action="store_true", help="poll even if the profile subscribes")
    run.add_argument("--sleep-after", type=float, help="sleep S into the heartbeat phase")
    run.add_argument("--sleep-for", type=float, default=5.0, help="and for S (default 5)")
    run.add_argument("--notify-host", help="address for our notificationURI (default: ours)")
    run.add_argument("--verbose", action="store_true", help="also list every poll")
    run.add_argument("--log-level", default="warning", choices=("debug", "info", "warning"))
    return top


def profile_from(args: argparse.Namespace, top: argparse.ArgumentParser) -> Profile:
    profile = PROFILES[args.profile]
    if args.duration is not None and args.duration <= 0:
        top.error("--duration must be positive")
    if args.heartbeats is not None:
        if args.heartbeats < 0:
            top.error("--heartbeats must be 0 or more")
        profile = replace(profile, heartbeats=args.heartbeats)
    if args.poll:
        profile = replace(profile, subscribe=False)
    if args.sleep_after is not None:
        if args.sleep_after < 0 or args.sleep_for <= 0:
            top.error("--sleep-after must be >= 0 and --sleep-for > 0")
        profile = replace(profile, sleep=SleepWake(args.sleep_after, args.sleep_for))
    if not (args.pki / "serca.pem").is_file():
        top.error(f"--pki {args.pki}: no serca.pem (make one with `evse-gatekeeper pki init`)")
    for path in (profile.cert_file(args.pki), profile.key_file(args.pki)):
        if not path.is_file():
            top.error(f"--pki {args.pki}: no {path.name} for profile {profile.name}")
    return profile


def print_step(step: Step, verbose: bool) -> None:
    if step.routine and step.method == "GET" and not verbose and step.error is None:
        return
    status = "-" if step.status is None else str(step.status)
    line = f"{step.at_s:8.3f}s  {step.method:<4} {step.href:<32} {status:>3} "
    line += f"{step.latency_ms:7.1f} ms  {step.name}"
    print(line + (f"  ERROR {step.error}" if step.error else ""), flush=True)


def print_energize(change: EnergizeChange) -> None:
    print(f"{change.at_s:8.3f}s  opModEnergize = {change.energize} ({change.via})", flush=True)


async def run(args: argparse.Namespace, profile: Profile) -> PevReport:
    client = PevClient(
        args.server,
        args.pki,
        profile,
        notify_host=args.notify_host,
        on_step=lambda step: print_step(step, args.verbose),
        on_energize=print_energize,
    )
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, client.stop)
    return await client.run(args.duration)


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    profile = profile_from(args, top)
    setup_logging(args.log_level)
    report = asyncio.run(run(args, profile))
    print("--", flush=True)
    for line in report.summary():
        print(line, flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
