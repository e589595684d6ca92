"""Errors raised by the hardware abstraction layer."""


class HalError(Exception):
    """Raised when a board cannot be opened or driven: unknown backend, missing device,
    bad wiring."""
