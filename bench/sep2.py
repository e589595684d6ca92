"""``make bench-sep2``: the 2030.5 server over loopback TLS, as a vehicle sees it.

Starts the real daemon (mock board, 2030.5 server on [::1], TEST credentials made for the
run) and measures from this process, one client at a time: the full TLS 1.2 CCM8 handshake
with client certificate (new connections), then GET /dcap and PUT DERSettings on one
kept-alive connection. Prints p50/p99/max per measure and the daemon's resident memory
(VmRSS, before and after). Target: request p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import ssl
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.interlock import percentile
from firmware.sep2.der import DERSettings
from firmware.sep2.pki import init_pki
from firmware.sep2.tls import client_context
from firmware.sep2.values import ActivePower
from firmware.sep2.xml import MEDIA_TYPE
from hil.firmware_process import Daemon, toml_dumps

TARGET_P99_MS = 10.0
PEV = "certified-4q"


def _config(workdir: Path, pki: Path) -> Path:
    config = {
        "hal": {"backend": "mock", "mock": {"rig_link": str(workdir / "rig")}},
        "tls": {
            "ca_file": str(pki / "serca.pem"),
            "cert_file": str(pki / "evse.pem"),
            "key_file": str(pki / "evse.key"),
        },
        "sep2": {"enabled": True, "host": "::1", "port": 0},
        "site": {"functions": [{"mode": "volt-var", "curve": [[92, 44], [108, -44]]}]},
        "paths": {"state_dir": str(workdir / "state")},
        "log": {"level": "info"},
    }
    path = workdir / "bench.toml"
    path.write_text(toml_dumps(config))
    return path


def _rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else -1


async def _handshakes(port: int, context: ssl.SSLContext, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        _reader, writer = await asyncio.open_connection("::1", port, ssl=context)
        times.append((time.perf_counter() - started) * 1000)
        writer.close()
        await writer.wait_closed()
    return times


async def _requests(port: int, context: ssl.SSLContext, count: int) -> dict[str, list[float]]:
    base = f"https://[::1]:{port}"
    settings = DERSettings(set_grad_w=100, set_max_w=ActivePower(multiplier=0, value=6000),
                           updated_time=int(time.time())).to_xml()  # fmt: skip
    results: dict[str, list[float]] = {"GET /dcap": [], "PUT DERSettings": []}
    connector = aiohttp.TCPConnector(ssl=context, limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(base + "/edev") as reply:  # learn our EndDevice
            edev = (await reply.read()).decode()
        n = re.search(r'<EndDevice href="/edev/(\d+)"', edev)
        assert n is not None, edev
        derg = f"{base}/edev/{n.group(1)}/der/0/derg"
        for _ in range(count):
            started = time.perf_counter()
            async with session.get(base + "/dcap") as reply:
                await reply.read()
                assert reply.status == 200
            results["GET /dcap"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            async with session.put(derg, data=settings, headers={"Content-Type": MEDIA_TYPE}) as r:
                await r.read()
                assert r.status == 204, r.status
            results["PUT DERSettings"].append((time.perf_counter() - started) * 1000)
    return results


def _row(name: str, values: list[float]) -> str:
    return (f"  {name:<18} {len(values):>6} {percentile(values, 50):>8.2f} "
            f"{percentile(values, 99):>8.2f} {max(values):>8.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sep2", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="of each kind")
    parser.add_argument("--handshakes", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="evse-bench-sep2-") as tmp:
        workdir = Path(tmp)
        pki = init_pki(workdir / "pki").directory
        daemon = Daemon(_config(workdir, pki))
        try:
            try:
                line = daemon.wait_for("sep2.listening", timeout_s=20)
            except (RuntimeError, TimeoutError):
                print("\n".join(["bench: the daemon's log:", *daemon.lines[-20:]]), file=sys.stderr)
                raise
            port = int(line.rsplit("port=", 1)[1].split()[0])
            rss_before = _rss_kib(daemon.proc.pid)
            context = client_context(pki / "serca.pem", pki / f"pev-{PEV}.pem",
                                     pki / f"pev-{PEV}.key")  # fmt: skip
            shakes = asyncio.run(_handshakes(port, context, args.handshakes))
            results = asyncio.run(_requests(port, context, args.requests))
            rss_after = _rss_kib(daemon.proc.pid)
        finally:
            code = daemon.stop()
    print("2030.5 over loopback TLS 1.2 (ECDHE-ECDSA-AES128-CCM8, P-256, client certificate)")
    print(f"  {'measure':<18} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(_row("TLS handshake", shakes))
    for name, values in results.items():
        print(_row(name, values))
    print(f"  daemon RSS: {rss_before / 1024:.1f} MiB at start, {rss_after / 1024:.1f} MiB after")
    worst = max(percentile(v, 99) for v in results.values())
    ok = worst <= TARGET_P99_MS and code == 0
    print(f"  target request p99 <= {TARGET_P99_MS:g} ms: {'met' if ok else 'MISSED'} "
          f"(worst p99 {worst:.2f} ms; daemon exit {code})")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
