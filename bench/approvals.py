"""Bench: a 1,000,000-entry approval list installed by the CLI, loaded by the daemon's store,
switched to its next version, and looked up.

The parent builds and signs two versions of the list (TEST key) and installs the first with
``evse-gatekeeper approvals install`` (timed, as an operator would run it). A fresh child
process, standing in for the daemon, then measures with two witnesses that each wake every
1 ms, a thread and an asyncio event loop (the longest gap between their ticks is the longest
time either was kept from running, GIL stalls included; the safety sampler runs in a process
of its own, which no GIL here can hold):

- the start: ``ApprovalStore.load_installed()`` (chunked read and hash, ES256 over the digest,
  the index opened), its time, the longest stall and the VmRSS growth across it;
- 1,000,000 random lookups (90 % listed) on the list in force, timed in batches of 1,000:
  mean, p50 and p99 of the per-lookup batch means;
- the switch: the second version installed by the CLI (timed: it also verifies the installed
  list, the rollback floor), then ``load_installed()`` while a thread polls ``in_force()``
  (it must never see None): time and longest stall;
- the rebuild: the index removed and ``load_installed()`` again, which rebuilds it in a child
  process: time and longest stall;
- for comparison, the former load: the full ``verify_es256`` and ``parse_approval_list`` in
  the daemon's process, and the longest stall it causes;
- the install command's peak RSS, read by a small process that forks it (``PEAK_OF``);
- the confirmation after each switch: the file hashed in chunks against what its index was
  built from (the switch opens the index by the file's identity), its time and longest stall.

Targets
(the utility's, at a million entries): start <= 3 s, switch <= 50 ms, longest stall <=
10 ms, lookup <= 5 us, RSS growth <= 40 MB, install <= 3 s and <= 150 MB at its peak.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.interlock import percentile
from firmware.approvals.approval_list import parse_approval_list
from firmware.approvals.index import PREFIX, SUFFIX
from firmware.approvals.jws import load_utility_key, verify_es256
from firmware.approvals.store import ApprovalStore
from hil.firmware_process import toml_dumps
from hil.utility import keygen, load_key, sign_payload

ENTRIES = 1_000_000
LOOKUPS = 1_000_000
BATCH = 1_000
AREA = "BENCH-UTILITY"
# the utility's operations targets at a million entries: start within 3 s; a switch to a new
# list within 50 ms, no stall over 10 ms; lookups within 5 us; the daemon's RSS growing by at
# most 40 MB; the install command within 3 s and 150 MB at its peak
TARGET_LOAD_S, TARGET_SWITCH_S, TARGET_STALL_MS = 3.0, 0.05, 10.0
TARGET_LOOKUP_US, TARGET_RSS_MB = 5.0, 40.0
TARGET_INSTALL_S, TARGET_INSTALL_RSS_MB = 3.0, 150.0
LIMITS_W = (3_300, 7_200, 9_600, 11_500, 19_200)
TICK_S = 0.001


def ism(n: int) -> str:
    return f"ISM-{n:012d}"


def build(directory: Path, entries: int) -> Path:
    """Write ``list1.jws`` and ``list2.jws`` (versions 1 and 2, same entries), the key pair
    and ``config.toml`` (state in ``directory/state``) into ``directory``; the config."""
    key_path, public = keygen(directory / "keys")
    rows: list[dict[str, Any]] = []
    for n in range(entries):
        if n % 10 == 9:
            rows.append({"ism": ism(n), "status": "revoked"})
        else:
            rows.append({"ism": ism(n), "status": "approved", "max_discharge_w": LIMITS_W[n % 5]})
    now = datetime.now(UTC).replace(microsecond=0)
    for version in (1, 2):
        payload = {
            "type": "j3072-approval-list",
            "version": version,
            "issuer": "TEST utility (bench)",
            "service_area": AREA,
            "issued_at": now.isoformat().replace("+00:00", "Z"),
            "expires_at": (now + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
            "entries": rows,
        }
        token = sign_payload(load_key(key_path), payload)
        (directory / f"list{version}.jws").write_text(token + "\n")
    size = (directory / "list1.jws").stat().st_size
    print(f"built {entries:,} entries: {size / 1e6:.1f} MB of JWS")
    config = directory / "config.toml"
    config.write_text(toml_dumps({
        "paths": {"state_dir": str(directory / "state")},
        "site": {"service_area": AREA},
        "approvals": {"utility_keys": [str(public)]},
    }))  # fmt: skip
    return config


# Runs the command it is given and prints its peak RSS in KiB. Linux counts in a child's peak
# the memory of the process it was forked from (the copy exec replaces), so the bench, which
# holds the lists it built, would inflate the install's figure: this small process forks it.
PEAK_OF = (
    "import resource, subprocess, sys; "
    "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def cli_install(config: Path, jws: Path) -> tuple[float, float]:
    """``evse-gatekeeper approvals install``, in its own process; its wall time in s and its
    peak RSS in MB."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF, sys.executable, "-m", "firmware", "approvals",
         "install", str(jws), "--config", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench: install {jws.name} failed: {done.stderr.strip()}")
    return seconds, int(done.stdout.split()[-1]) / 1024


def _status_kib(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else -1


@dataclass
class Ticker:
    """Two witnesses of stalls, each noting when it ran: a thread that sleeps ``TICK_S`` in a
    loop (as the daemon's threads wait) and an asyncio event loop, on a thread of its own,
    whose task sleeps ``TICK_S`` in a loop (as the gatekeeper's loop turns)."""

    ticks: list[float] = field(default_factory=list)
    loop_ticks: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()
        threading.Thread(target=lambda: asyncio.run(self._turn()), daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            time.sleep(TICK_S)
            self.ticks.append(time.perf_counter())

    async def _turn(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(TICK_S)
            self.loop_ticks.append(time.perf_counter())

    def timed(self, work: Callable[[], Any]) -> tuple[Any, float, float]:
        """Run ``work``; its result, its time in s and the longest gap in ms of either
        witness while it ran."""
        time.sleep(0.05)  # ticks before
        started = time.perf_counter()
        result = work()
        ended = time.perf_counter()
        time.sleep(0.05)  # and after, so a gap that spans the work's end is seen whole
        gaps = [
            b - a
            for ticks in (list(self.ticks), list(self.loop_ticks))
            for a, b in itertools.pairwise(ticks)
            if b >= started and a <= ended
        ]
        return result, ended - started, max(gaps, default=float("nan")) * 1e3


def lookups(store: ApprovalStore, entries: int) -> dict[str, float]:
    loaded = store.in_force()
    assert loaded is not None
    rng = random.Random(3072)
    queries = [ism(rng.randrange(entries * 10 // 9)) for _ in range(LOOKUPS)]  # ~90 % listed
    lookup = loaded.lookup
    batches: list[float] = []
    for start in range(0, LOOKUPS, BATCH):
        batch = queries[start : start + BATCH]
        began = time.perf_counter()
        for query in batch:
            lookup(query)
        batches.append((time.perf_counter() - began) / len(batch) * 1e6)
    return {
        "lookup_mean_us": sum(batches) / len(batches),
        "lookup_p50_us": percentile(batches, 50),
        "lookup_p99_us": percentile(batches, 99),
        "listed": sum(1 for q in queries[:10_000] if lookup(q) is not None) / 10_000,
    }


def switch(store: ApprovalStore, ticker: Ticker) -> tuple[int | None, float, float, int]:
    """``load_installed()`` while a thread polls ``in_force()``; the version loaded, time,
    longest stall and how often the poller saw no list in force."""
    done, gaps = threading.Event(), [0]

    def poll() -> None:
        while not done.is_set():
            gaps[0] += store.in_force() is None
            time.sleep(0.0005)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    loaded, seconds, stall = ticker.timed(store.load_installed)
    done.set()
    poller.join()
    return (None if loaded is None else loaded.version), seconds, stall, gaps[0]


def measure(workdir: Path, entries: int) -> dict[str, Any]:
    """In the child, the daemon's stand-in: every figure as a dict."""
    keys = [load_utility_key(workdir / "keys" / "utility.pem")]
    store = ApprovalStore(workdir / "state", keys, AREA)
    ticker = Ticker()
    ticker.start()
    figures: dict[str, Any] = {"idle_gap_ms": ticker.timed(lambda: time.sleep(1.0))[2]}
    rss_before = _status_kib("VmRSS")
    loaded, figures["start_s"], figures["start_gap_ms"] = ticker.timed(store.load_installed)
    figures["rss_growth_mb"] = (_status_kib("VmRSS") - rss_before) / 1024
    if loaded is None or len(loaded.entries) != entries:
        raise SystemExit(f"bench: the list did not load: {store.problem}")
    figures.update(lookups(store, entries))
    figures["rss_after_lookups_mb"] = (_status_kib("VmRSS") - rss_before) / 1024
    figures["install2_s"], figures["install2_mb"] = cli_install(
        workdir / "config.toml", workdir / "list2.jws"
    )
    version, figures["switch_s"], figures["switch_gap_ms"], figures["none_seen"] = switch(
        store, ticker
    )
    confirmed, figures["confirm_s"], figures["confirm_gap_ms"] = ticker.timed(
        store.confirm_installed
    )
    if not confirmed:
        raise SystemExit("bench: the index of version 2 was not confirmed")
    if version != 2:
        raise SystemExit(f"bench: version 2 did not load: {store.problem}")
    for index in (workdir / "state").glob(f"{PREFIX}*{SUFFIX}"):
        index.unlink()
    version, figures["rebuild_s"], figures["rebuild_gap_ms"], none_seen = switch(store, ticker)
    if version != 2:
        raise SystemExit(f"bench: the rebuilt index did not load: {store.problem}")
    figures["none_seen"] += none_seen
    data = (workdir / "list2.jws").read_bytes()
    _, figures["former_s"], figures["former_gap_ms"] = ticker.timed(
        lambda: parse_approval_list(verify_es256(data, keys).payload)
    )
    return figures


def report(figures: dict[str, Any], entries: int, install_s: float, install_mb: float) -> int:
    f = figures
    # the install's targets are the utility's at a million entries: a larger list is shown
    # against nothing (its time and memory grow with its size)
    scaled = entries <= ENTRIES
    install_target = TARGET_INSTALL_S if scaled else float("inf")
    install_rss_target = TARGET_INSTALL_RSS_MB if scaled else float("inf")
    checks: list[tuple[str, str, float, float, str]] = [
        ("CLI install", f"{install_s:.2f} s into an empty state directory",
         install_s, install_target, "s"),
        ("  over v1", f"{f['install2_s']:.2f} s", f["install2_s"], install_target, "s"),
        ("  peak RSS", f"{install_mb:.0f} MB (over v1: {f['install2_mb']:.0f} MB)",
         max(install_mb, f["install2_mb"]), install_rss_target, "MB"),
        ("start", f"{f['start_s']:.3f} s", f["start_s"], TARGET_LOAD_S, "s"),
        ("  stall", f"{f['start_gap_ms']:.1f} ms", f["start_gap_ms"], TARGET_STALL_MS, "ms"),
        ("switch 1->2", f"{f['switch_s']:.3f} s", f["switch_s"], TARGET_SWITCH_S, "s"),
        ("  stall", f"{f['switch_gap_ms']:.1f} ms", f["switch_gap_ms"], TARGET_STALL_MS, "ms"),
        ("confirm", f"{f['confirm_s']:.3f} s (the file hashed after the switch)",
         f["confirm_s"], float("inf"), "s"),
        ("  stall", f"{f['confirm_gap_ms']:.1f} ms", f["confirm_gap_ms"], TARGET_STALL_MS, "ms"),
        ("rebuild", f"{f['rebuild_s']:.2f} s (index removed: child process)",
         f["rebuild_s"], float("inf"), "s"),
        ("  stall", f"{f['rebuild_gap_ms']:.1f} ms", f["rebuild_gap_ms"], TARGET_STALL_MS, "ms"),
        ("no list seen", f"{f['none_seen']} times by the poller during switch and rebuild",
         f["none_seen"], 0, "times"),
        ("lookup mean", f"{f['lookup_mean_us']:.3f} us (p50 {f['lookup_p50_us']:.3f}, "
         f"p99 {f['lookup_p99_us']:.3f} over batches of {BATCH})",
         f["lookup_mean_us"], TARGET_LOOKUP_US, "us"),
        ("RSS growth", f"{f['rss_growth_mb']:.1f} MB (after the lookups "
         f"+{f['rss_after_lookups_mb']:.1f} MB)", f["rss_growth_mb"], TARGET_RSS_MB, "MB"),
    ]  # fmt: skip
    print(f"approval list bench: {entries:,} entries, {LOOKUPS:,} lookups "
          f"({f['listed']:.0%} listed), witnesses every {TICK_S * 1e3:g} ms "
          f"(idle: longest gap {f['idle_gap_ms']:.1f} ms)")  # fmt: skip
    failed = 0
    for name, shown, value, target, unit in checks:
        verdict = "ok" if value <= target else "MISSED"
        failed += value > target
        aim = f"  target <= {target:g} {unit}: {verdict}" if target != float("inf") else ""
        print(f"  {name:<12} {shown}{aim}")
    print(f"  former load  {f['former_s']:.2f} s in-process verify+parse, "
          f"longest stall {f['former_gap_ms']:.0f} ms (for comparison)")  # fmt: skip
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.approvals", description=__doc__)
    parser.add_argument("--entries", type=int, default=ENTRIES)
    parser.add_argument("--measure", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.entries)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-approvals-") as workdir:
        config = build(Path(workdir), args.entries)
        (Path(workdir) / "state").mkdir()
        install_s, install_mb = cli_install(config, Path(workdir) / "list1.jws")
        child = subprocess.run(
            [sys.executable, "-m", "bench.approvals", "--entries", str(args.entries),
             "--measure", workdir],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return 1
    return report(json.loads(child.stdout), args.entries, install_s, install_mb)


if __name__ == "__main__":
    sys.exit(main())
