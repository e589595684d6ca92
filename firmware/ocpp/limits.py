"""What a CSMS may send us: the size of one message and the rate of its requests. Pure: the
caller passes the monotonic time in.

A CSMS is trusted with dispatch, not with the gatekeeper's event loop: a message is read
whole and parsed on the loop, so its size bounds how long one message can hold the loop (the
2030.5 server caps a body at 64 KiB for the same reason), and a token bucket bounds how many
the loop handles per second. docs/ocpp.md "What a CSMS may send".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_MESSAGE_BYTES = 65_536  # the default; OCPP-J leaves it to the station (BytesPerMessage)
ITEMS_PER_MESSAGE = 32  # DeviceDataCtrlr.ItemsPerMessage for GetVariables
MAX_CONTAINERS = 1024  # JSON objects and arrays in one message (a 1-period profile has ~10)
EXCESS_BEFORE_CLOSE = 100  # requests over the rate within EXCESS_WINDOW_S: the connection closes
EXCESS_WINDOW_S = 10.0


REQUEST_ID = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')  # [2, "<uniqueId>", ...


def too_complex(raw: str | bytes) -> bool:
    """More JSON objects and arrays than any request this station follows needs (counted
    without parsing; a bracket inside a string counts too, which only makes it stricter).
    Parsing tens of thousands of small objects is what holds the loop: it also wakes
    Python's full garbage collection, which walks the whole process."""
    if isinstance(raw, bytes):
        return raw.count(b"{") + raw.count(b"[") > MAX_CONTAINERS
    return raw.count("{") + raw.count("[") > MAX_CONTAINERS


def request_id(raw: str | bytes) -> str | None:
    """The uniqueId of a request (a CALL), read without parsing the rest; None otherwise."""
    text = raw[:64].decode("utf-8", "replace") if isinstance(raw, bytes) else raw[:64]
    found = REQUEST_ID.match(text)
    return found.group(1) if found else None


@dataclass(slots=True)
class TokenBucket:
    """``rate_per_s`` requests a second on average, ``burst`` at once."""

    rate_per_s: float
    burst: float
    tokens: float = -1.0
    at_s: float | None = None

    def take(self, now_s: float) -> bool:
        """True if one request may be handled now (and counts it)."""
        if self.at_s is None or self.tokens < 0:
            self.tokens = self.burst
        else:
            self.tokens = min(self.burst, self.tokens + (now_s - self.at_s) * self.rate_per_s)
        self.at_s = now_s
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
