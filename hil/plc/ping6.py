"""``python -m hil.plc.ping6 ADDRESS%IFNAME``: one ICMPv6 echo; exit 0 on a reply within 1 s.

A real ping over a raw ICMPv6 socket (the kernel fills in the checksum), for tests on
machines without iputils.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time

ECHO_REQUEST, ECHO_REPLY = 128, 129


def ping(target: str, timeout_s: float = 1.0) -> bool:
    address, _, ifname = target.partition("%")
    scope = socket.if_nametoindex(ifname) if ifname else 0
    ident = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.sendto(struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, 1) + b"evse-gatekeeper",
                    (address, 0, 0, scope))  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], remaining)[0]:
                break
            packet = sock.recv(1500)
            kind, _, _, got_ident, _ = struct.unpack_from("!BBHHH", packet)
            if kind == ECHO_REPLY and got_ident == ident:
                return True
    return False


if __name__ == "__main__":
    sys.exit(0 if ping(sys.argv[1]) else 1)
