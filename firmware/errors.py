"""The firmware's error tree. Only the supervisor (``firmware.daemon.app``) catches broadly."""

from __future__ import annotations


class GatekeeperError(Exception):
    """Base of every error the firmware raises on purpose."""


class ConfigError(GatekeeperError):
    """Raised when the config file is missing, unreadable or invalid; holds every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class SamplerError(GatekeeperError):
    """Raised when the sampler thread has failed; the daemon stops with the relays open."""


class ProtocolError(GatekeeperError):
    """Raised when a frame or message is malformed: wrong length, type, version or fields."""
