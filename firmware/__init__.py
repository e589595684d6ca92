"""evse-gatekeeper firmware: the safety process, the charger, PLC, 2030.5, the J3072 gate,
the daemon and its CLI.

The version is looked up only when asked (``importlib.metadata`` costs memory that the safety
process has no use for).
"""

from __future__ import annotations

from typing import Any


def firmware_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evse-gatekeeper")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return firmware_version()
    raise AttributeError(f"module 'firmware' has no attribute {name!r}")
