"""A flood of malformed MMEs (and non-HomePlug frames) onto a PLC interface, for the
robustness test and the interlock bench: ``python -m hil.plc.flood --if DEV --count N``.

Every HomePlug frame is one our codec must refuse: truncated, an unknown MMTYPE, a
fragment, the wrong MMV for its type, a foreign OUI, or a known message with the wrong
length. Interleaved non-HomePlug frames (IPv4, ARP-sized junk) show that the SLAC socket,
bound to 0x88E1, never even reads them. Prints ``FLOOD DONE mme=<n> other=<m> s=<secs>``.
"""

from __future__ import annotations

import argparse
import itertools
import random
import socket
import sys
import time
from collections.abc import Iterator

from firmware.plc.codec import REGISTRY
from firmware.plc.frame import BROADCAST, build_frame

FLOOD_SRC = bytes.fromhex("02F100D0F100")
ETHERTYPE_IPV4 = 0x0800


def _known_types() -> list[int]:
    return sorted(REGISTRY)


def malformed_mmes(count: int, dst: bytes, seed: int = 7) -> Iterator[bytes]:
    """``count`` HomePlug frames, each malformed in one of six ways, deterministically."""
    rng = random.Random(seed)
    known = _known_types()
    known_set = set(known)
    for n in range(count):
        kind = n % 6
        mmtype = rng.choice(known)
        good = build_frame(dst, FLOOD_SRC, mmtype, bytes(rng.randrange(0, 120)))
        if kind == 0:  # truncated inside the MME header
            frame = good[: rng.randrange(14, 19)]
        elif kind == 1:  # an MMTYPE nobody registered
            unknown = rng.randrange(0x6000, 0x6FFF)
            while unknown in known_set:
                unknown = rng.randrange(0x6000, 0x6FFF)
            frame = build_frame(dst, FLOOD_SRC, unknown, bytes(40))
        elif kind == 2:  # a fragment (FMI != 0) of a CM message
            edited = bytearray(build_frame(dst, FLOOD_SRC, 0x6064, bytes(41)))
            edited[17] = rng.randrange(1, 256)
            frame = bytes(edited)
        elif kind == 3:  # the wrong MMV for the type
            edited = bytearray(good)
            edited[14] = 0x05
            frame = bytes(edited)
        elif kind == 4:  # a vendor message with a foreign OUI
            edited = bytearray(build_frame(dst, FLOOD_SRC, 0xA0B9, bytes(40)))
            edited[17:20] = b"\x12\x34\x56"
            frame = bytes(edited)
        else:  # a known message, random bytes of a length no layout has
            frame = good[:19] + rng.randbytes(rng.randrange(200, 1400))
        yield frame


def other_frame(dst: bytes, n: int) -> bytes:
    """Not HomePlug at all: the SLAC socket must never read it."""
    return dst + FLOOD_SRC + ETHERTYPE_IPV4.to_bytes(2, "big") + bytes([n & 0xFF]) * 60


def flood(
    ifname: str, count: int, rate_per_s: float, other_every: int, forever: bool = False
) -> tuple[int, int, float]:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((ifname, 0))
    started = time.monotonic()
    sent_other = 0
    frames = malformed_mmes(count, BROADCAST)
    if forever:  # the same ``count`` frames again and again, until killed
        batch = list(frames)
        frames = (batch[n % count] for n in itertools.count())
    for n, frame in enumerate(frames):
        sock.send(frame)
        if other_every and n % other_every == 0:
            sock.send(other_frame(BROADCAST, n))
            sent_other += 1
        if rate_per_s:
            lag = started + (n + 1) / rate_per_s - time.monotonic()
            if lag > 0:
                time.sleep(lag)
    sock.close()
    return count, sent_other, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.plc.flood", description=__doc__)
    parser.add_argument("--if", dest="ifname", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=0.0, help="frames/s (0 = as fast as can)")
    parser.add_argument("--other-every", type=int, default=10, help="a non-HomePlug frame per N")
    parser.add_argument("--forever", action="store_true", help="repeat until killed")
    args = parser.parse_args(argv)
    print("FLOOD STARTED", flush=True)
    mme, other, seconds = flood(args.ifname, args.count, args.rate, args.other_every, args.forever)
    print(f"FLOOD DONE mme={mme} other={other} s={seconds:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
