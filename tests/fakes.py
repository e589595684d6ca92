"""Shared test doubles."""

from __future__ import annotations

MS = 1_000_000  # ns


class FakeClock:
    """An injectable monotonic clock in ns that only moves when told to."""

    def __init__(self, start_ns: int = 1_000 * MS) -> None:
        self.t_ns = start_ns

    def __call__(self) -> int:
        return self.t_ns

    def advance_ms(self, ms: float) -> int:
        self.t_ns += int(ms * MS)
        return self.t_ns

    def at(self, t_ns: int) -> None:
        self.t_ns = t_ns

    def sleep(self, seconds: float) -> None:
        """Stands in for time.sleep: time passes, nothing waits."""
        self.t_ns += int(seconds * 1e9)
