"""evse-gatekeeper firmware: pilot logic, charger machine, interlock, composition root, CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evse-gatekeeper")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
