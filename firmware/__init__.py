"""evse-gatekeeper firmware: the safety process, the charger, PLC, 2030.5, the J3072 gate,
the daemon and its CLI.

The version is read from the installed distribution's METADATA file when asked, by hand:
``importlib.metadata`` (with email, zipfile and csv) would cost about 2 MB of a budget measured
in megabytes, for one line.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

DIST_PREFIX = "evse_gatekeeper-"
UNKNOWN = "0.0.0+unknown"  # running from a source tree that was never installed


@functools.cache
def firmware_version() -> str:
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith(DIST_PREFIX) and name.endswith(".dist-info"):
                version = _metadata_version(os.path.join(entry, name, "METADATA"))
                if version:
                    return version
    return UNKNOWN


def _metadata_version(path: str) -> str | None:
    """The ``Version:`` header of a core metadata file (it comes before the first blank line)."""
    try:
        with open(path, encoding="utf-8") as metadata:
            for line in metadata:
                if not line.strip():
                    break
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    except (OSError, UnicodeDecodeError):
        return None
    return None


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return firmware_version()
    raise AttributeError(f"module 'firmware' has no attribute {name!r}")
