"""Bench: a 1,000,000-entry approval list, verified and loaded as at every start, then looked up.

The parent builds and signs the list (TEST key) into a temporary state directory; a fresh child
process then measures, so that the parent's building garbage does not hide the load's memory:
``ApprovalStore.load_installed()`` time (ES256 verify + JSON parse + validation), VmRSS growth
across it (and the VmHWM peak above the start), then 1,000,000 random lookups (90 % listed)
timed in batches of 1,000: mean, p50 and p99 of the per-lookup batch means.
Targets (issue #5): verify+load <= 3 s, lookup <= 5 us, RSS growth <= 150 MB.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from firmware.approvals.jws import load_utility_key
from firmware.approvals.store import FILE_NAME, ApprovalStore
from hil.approvals import encode_payload, keygen, load_key, sign_payload
from hil.bench_interlock import percentile

ENTRIES = 1_000_000
LOOKUPS = 1_000_000
BATCH = 1_000
AREA = "BENCH-UTILITY"
TARGET_LOAD_S, TARGET_LOOKUP_US, TARGET_RSS_MB = 3.0, 5.0, 150.0
LIMITS_W = (3_300, 7_200, 9_600, 11_500, 19_200)


def ism(n: int) -> str:
    return f"ISM-{n:012d}"


def build(directory: Path, entries: int) -> Path:
    """Write a signed list of ``entries`` into ``directory/state``; the public key's path."""
    key_path, public = keygen(directory / "keys")
    rows: list[dict[str, Any]] = []
    for n in range(entries):
        if n % 10 == 9:
            rows.append({"ism": ism(n), "status": "revoked"})
        else:
            rows.append({"ism": ism(n), "status": "approved", "max_discharge_w": LIMITS_W[n % 5]})
    now = datetime.now(UTC).replace(microsecond=0)
    payload = {
        "type": "j3072-approval-list",
        "version": 1,
        "issuer": "TEST utility (bench)",
        "service_area": AREA,
        "issued_at": now.isoformat().replace("+00:00", "Z"),
        "expires_at": (now + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        "entries": rows,
    }
    state = directory / "state"
    state.mkdir()
    (state / FILE_NAME).write_text(sign_payload(load_key(key_path), payload) + "\n")
    print(f"built {entries:,} entries: {len(encode_payload(payload)) / 1e6:.1f} MB of JSON")
    return public


def _status_kib(field: str) -> int:
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else -1


def measure(state: Path, public: Path, entries: int) -> dict[str, Any]:
    """In the child: load, then look up; the figures as a dict."""
    store = ApprovalStore(state, [load_utility_key(public)], AREA)
    rss_before = _status_kib("VmRSS")
    started = time.perf_counter()
    loaded = store.load_installed()
    load_s = time.perf_counter() - started
    rss_after = _status_kib("VmRSS")
    if loaded is None or len(loaded.entries) != entries:
        raise SystemExit(f"bench: the list did not load: {store.problem}")
    peak = _status_kib("VmHWM")
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
        "load_s": load_s,
        "rss_growth_mb": (rss_after - rss_before) / 1024,
        "peak_growth_mb": (peak - rss_before) / 1024,
        "lookup_mean_us": sum(batches) / len(batches),
        "lookup_p50_us": percentile(batches, 50),
        "lookup_p99_us": percentile(batches, 99),
        "listed": sum(1 for q in queries[:10_000] if lookup(q) is not None) / 10_000,
    }


def report(figures: dict[str, Any], entries: int) -> int:
    checks = [
        ("verify+load", f"{figures['load_s']:.2f} s", figures["load_s"], TARGET_LOAD_S, "s"),
        (
            "lookup mean",
            f"{figures['lookup_mean_us']:.3f} us (p50 {figures['lookup_p50_us']:.3f}, "
            f"p99 {figures['lookup_p99_us']:.3f} over batches of {BATCH})",
            figures["lookup_mean_us"],
            TARGET_LOOKUP_US,
            "us",
        ),
        (
            "RSS growth",
            f"{figures['rss_growth_mb']:.0f} MB (peak during load "
            f"+{figures['peak_growth_mb']:.0f} MB)",
            figures["rss_growth_mb"],
            TARGET_RSS_MB,
            "MB",
        ),
    ]
    print(f"approval list bench: {entries:,} entries, {LOOKUPS:,} lookups "
          f"({figures['listed']:.0%} listed)")  # fmt: skip
    failed = 0
    for name, shown, value, target, unit in checks:
        verdict = "ok" if value <= target else "MISSED"
        failed += value > target
        print(f"  {name:<12} {shown}  target <= {target:g} {unit}: {verdict}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.bench_approvals", description=__doc__)
    parser.add_argument("--entries", type=int, default=ENTRIES)
    parser.add_argument("--measure", nargs=2, metavar=("STATE", "PEM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]), args.entries)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-approvals-") as workdir:
        public = build(Path(workdir), args.entries)
        child = subprocess.run(
            [sys.executable, "-m", "hil.bench_approvals", "--entries", str(args.entries),
             "--measure", str(Path(workdir) / "state"), str(public)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return 1
    return report(json.loads(child.stdout), args.entries)


if __name__ == "__main__":
    sys.exit(main())
