"""The storm: legitimate load from every side at once, for the storm test and the storm bench.

- ``burn``: a CPU-bound process (the test starts two);
- ``flood``: 2030.5 clients with a valid TEST certificate, over TLS 1.2 CCM8, each looping
  GETs as fast as the server answers, plus one sending bodies over the server's size limit
  and bodies just under it that are not 2030.5 (bounded: it stops after ``--seconds``);
- ``big_list``: a signed approval list of millions of entries (installed with the CLI, as an
  operator would), which keeps the vehicle under test approved.

``python -m bench.storm burn SECONDS`` and ``python -m bench.storm flood --url URL --pki DIR
--seconds S`` run the first two in processes of their own, so the load does not share an
interpreter with the test that watches the rig. The flood prints its counts as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from firmware.approvals.jws import jwk_thumbprint, sign_es256
from firmware.sep2.pki import init_pki
from firmware.sep2.tls import client_context
from firmware.sep2.xml import MAX_BODY_BYTES, MEDIA_TYPE
from hil.utility import UtilityAuthority, approval_payload, encode_payload

FLOOD_PROFILE = "unapproved-ism"  # a valid certificate that is not the vehicle's
FLOOD_PATHS = ("/dcap", "/tm", "/edev", "/mup", "/dcap")


def burn(seconds: float) -> None:
    """Spin a CPU until ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += 1


def big_list(utility: UtilityAuthority, entries: int, keep: dict[str, int]) -> str:
    """The utility's next version with ``entries`` generated ISMs plus ``keep`` (approved,
    with their caps), signed. Built as text: millions of dicts would take longer than the
    storm itself."""
    utility.version += 1
    header = approval_payload(service_area=utility.service_area, version=utility.version)
    kept = [json.dumps({"ism": ism, "status": "approved", "max_discharge_w": limit},
                       separators=(",", ":")) for ism, limit in keep.items()]  # fmt: skip
    generated = (f'{{"ism":"STORM-{n:010d}","status":"approved"}}' for n in range(entries))
    rows = ",".join([*kept, *generated])
    text = encode_payload(header).decode().replace('"entries":[]', f'"entries":[{rows}]')
    return sign_es256(text.encode(), utility.key, jwk_thumbprint(utility.key.public_key()))


async def _getter(
    session: aiohttp.ClientSession, base: str, until: float, seen: Counter[str]
) -> None:
    index = 0
    while time.monotonic() < until:
        path = FLOOD_PATHS[index % len(FLOOD_PATHS)]
        index += 1
        try:
            async with session.get(base + path) as reply:
                await reply.read()
                seen[f"GET {reply.status}"] += 1
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            seen[f"error {type(err).__name__}"] += 1
            await asyncio.sleep(0.01)


async def _oversized(
    session: aiohttp.ClientSession, base: str, until: float, seen: Counter[str]
) -> None:
    too_big = b"<DERSettings>" + b"x" * (MAX_BODY_BYTES + 1024) + b"</DERSettings>"
    junk = b"<a>" + b"<b>1</b>" * ((MAX_BODY_BYTES - 64) // 8) + b"</a>"
    headers = {"Content-Type": MEDIA_TYPE}
    async with session.get(base + "/edev") as reply:  # our own EndDevice: bodies get parsed
        found = re.search(r'<EndDevice href="(/edev/\d+)"', (await reply.read()).decode())
    target = base + (found.group(1) if found else "/edev/0") + "/der/0/derg"
    while time.monotonic() < until:
        for body in (too_big, junk):
            try:
                async with session.put(target, data=body, headers=headers) as reply:
                    await reply.read()
                    seen[f"PUT {reply.status}"] += 1
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                seen[f"error {type(err).__name__}"] += 1
                await asyncio.sleep(0.01)


async def _write_counts(path: Path | None, until: float, seen: Counter[str]) -> None:
    """Every second: the counts so far, for a caller that stops the flood early."""
    while path is not None and time.monotonic() < until:
        path.write_text(json.dumps(dict(seen)))
        await asyncio.sleep(1.0)


async def flood(
    url: str, pki: Path, seconds: float, connections: int, counts: Path | None = None
) -> dict[str, int]:
    context = client_context(pki / "serca.pem", pki / f"pev-{FLOOD_PROFILE}.pem",
                             pki / f"pev-{FLOOD_PROFILE}.key")  # fmt: skip
    seen: Counter[str] = Counter()
    until = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(ssl=context, limit=connections + 1)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [_getter(session, url, until, seen) for _ in range(connections)]
        await asyncio.gather(*tasks, _oversized(session, url, until, seen),
                             _write_counts(counts, until, seen))  # fmt: skip
    return dict(seen)


class Storm:
    """The burners and the flood as processes, started together and stopped together."""

    def __init__(
        self, url: str, pki: Path, seconds: float, connections: int = 6, counts: Path | None = None
    ) -> None:
        python = [sys.executable, "-m", "bench.storm"]
        self._burners = [subprocess.Popen([*python, "burn", str(seconds)]) for _ in range(2)]
        extra = ["--counts", str(counts)] if counts is not None else []
        self._flood = subprocess.Popen(
            [*python, "flood", "--url", url, "--pki", str(pki), "--seconds", str(seconds),
             "--connections", str(connections), *extra],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def finish(self, timeout_s: float) -> dict[str, int]:
        """Wait for the flood's end (bounded); its counts."""
        out, _ = self._flood.communicate(timeout=timeout_s)
        for burner in self._burners:
            burner.wait(timeout_s)
        counts: dict[str, int] = json.loads(out.strip().splitlines()[-1])
        return counts

    def kill(self) -> None:
        processes: list[subprocess.Popen[Any]] = [*self._burners, self._flood]
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(5)


class StormSite:
    """The interlock bench's daemon as a 2030.5 site (TEST PKI, utility, service area) and,
    while ``running``, the storm around it: the burners, the flood, and 2,000,000-entry lists
    built and installed with the CLI one after another."""

    AREA = "BENCH-STORM"
    ENTRIES = 2_000_000

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pki = init_pki(workdir / "pki").directory
        self.utility = UtilityAuthority(workdir, self.AREA)
        self.utility.install(workdir / "state", approve={"ISM-BENCH": 5000})
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            self.port = probe.getsockname()[1]
        self.summary: dict[str, object] = {}

    def config(self) -> dict[str, Any]:
        pki = self.pki
        return {
            "tls": {"ca_file": str(pki / "serca.pem"), "cert_file": str(pki / "evse.pem"),
                    "key_file": str(pki / "evse.key")},
            "sep2": {"enabled": True, "host": "::1", "port": self.port},
            "approvals": self.utility.config,
            "site": {"service_area": self.AREA},
        }  # fmt: skip

    @contextlib.contextmanager
    def running(self, config: Path) -> Iterator[None]:
        counts = self.workdir / "flood.json"
        storm = Storm(f"https://[::1]:{self.port}", self.pki, 3600, counts=counts)
        stop = threading.Event()
        installs: list[float] = []
        installer = threading.Thread(target=self._install_until, args=(stop, config, installs))
        installer.start()
        try:
            yield
        finally:
            stop.set()
            installer.join()
            storm.kill()
            flood = json.loads(counts.read_text()) if counts.exists() else {}
            self.summary = {"lists_installed": len(installs),
                            "install_s_max": round(max(installs, default=0.0), 1),
                            "flood": flood}  # fmt: skip

    def _install_until(self, stop: threading.Event, config: Path, took: list[float]) -> None:
        path = self.workdir / "big.jws"
        while not stop.is_set():
            path.write_text(big_list(self.utility, self.ENTRIES, {"ISM-BENCH": 5000}))
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "firmware", "approvals", "install",
                                   str(path), "--config", str(config)],
                                  capture_output=True, text=True, timeout=300)  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"storm: the list install failed: {done.stderr.strip()}")
            took.append(time.monotonic() - started)
            stop.wait(5.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__)
    action = parser.add_subparsers(dest="action", required=True)
    burner = action.add_parser("burn")
    burner.add_argument("seconds", type=float)
    flooder = action.add_parser("flood")
    flooder.add_argument("--url", required=True)
    flooder.add_argument("--pki", type=Path, required=True)
    flooder.add_argument("--seconds", type=float, required=True)
    flooder.add_argument("--connections", type=int, default=6)
    flooder.add_argument("--counts", type=Path, help="write the counts here every second")
    args = parser.parse_args(argv)
    if args.action == "burn":
        burn(args.seconds)
        return 0
    counts = asyncio.run(flood(args.url, args.pki, args.seconds, args.connections, args.counts))
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
