"""The URIs the EVSE serves: fixed for the whole session (docs/v2g-ac-profile.md,
"Resources the EVSE serves": clients follow links, but the links never move).

Everything the vehicle writes or that is per vehicle lives under its EndDevice,
``/edev/<n>``, where ``n`` is given to an LFDI on its first request and kept until the
daemon stops; another LFDI never sees it.
"""

from __future__ import annotations

DCAP = "/dcap"
TIME = "/tm"
SELF_DEVICE = "/sdev"
SELF_DER_LIST = "/sdev/der"
SELF_DER = "/sdev/der/0"
SELF_DER_CAPABILITY = "/sdev/der/0/dercap"
SELF_DER_SETTINGS = "/sdev/der/0/derg"  # the site limits, read-only for the PEV
END_DEVICES = "/edev"
MIRRORS = "/mup"
RESPONSE_SETS = "/rsps"
RESPONSE_SET = "/rsps/0"
RESPONSES = "/rsps/0/rsp"  # the replyTo of every control


def edev(n: int) -> str:
    return f"/edev/{n}"


def under(n: int, tail: str) -> str:
    """A per-vehicle resource: ``under(3, "di")`` is ``/edev/3/di``."""
    return f"/edev/{n}/{tail}"


# the tails under /edev/<n>
DEVICE_INFORMATION = "di"
POWER_STATUS = "ps"
DER_LIST = "der"
DER = "der/0"
DER_CAPABILITY = "der/0/dercap"
DER_SETTINGS = "der/0/derg"
DER_AVAILABILITY = "der/0/dera"
DER_STATUS = "der/0/ders"
FSA_LIST = "fsa"
FSA = "fsa/0"
PROGRAM_LIST = "derp"
PROGRAM = "derp/0"
DEFAULT_CONTROL = "derp/0/dderc"
CONTROL_LIST = "derp/0/derc"
CURVE_LIST = "derp/0/dc"
SUBSCRIPTIONS = "sub"


def control(n: int, k: int) -> str:
    return under(n, f"{CONTROL_LIST}/{k}")


def curve(n: int, k: int) -> str:
    return under(n, f"{CURVE_LIST}/{k}")


def subscription(n: int, k: int) -> str:
    return under(n, f"{SUBSCRIPTIONS}/{k}")


def mirror(k: int) -> str:
    return f"{MIRRORS}/{k}"


def mirror_reading(k: int, j: int) -> str:
    """The ``j``-th MirrorMeterReading of mirror ``k`` (in the order the vehicle posted them)."""
    return f"{MIRRORS}/{k}/mr/{j}"
