"""What a simulated session did: its steps with their latencies, the opModEnergize history,
the heartbeats sent, the errors, and whether it went as the profile intends.

``SessionLog`` collects while the session runs (and tells an observer about each step as it
happens, for a live timeline); ``PevReport`` is its frozen result.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Step:
    """One request (or the TLS handshake) and how it went."""

    at_s: float  # since the session started
    name: str  # what the step is for, e.g. "site limits"
    method: str  # GET, PUT, POST, or TLS
    href: str
    status: int | None  # the HTTP status, None when there was no answer
    latency_ms: float
    routine: bool = False  # heartbeats and polls: summarized rather than listed
    error: str | None = None


@dataclass(frozen=True, slots=True)
class EnergizeChange:
    """DefaultDERControl.opModEnergize as the PEV saw it change."""

    monotonic_s: float  # time.monotonic() when the PEV saw it
    at_s: float  # since the session started
    energize: bool | None  # None: the control has no opModEnergize
    via: str  # "read", "poll", "notification" or "wake"


@dataclass(frozen=True, slots=True)
class PevReport:
    profile: str
    server: str
    lfdi: str | None
    evse_lfdi: str | None  # from the EVSE's certificate
    steps: tuple[Step, ...]
    energize_history: tuple[EnergizeChange, ...]
    heartbeats_sent: int
    responses_posted: int
    watch: str  # "notifications", "polling", or "polling (…why…)"
    completed: bool  # the whole sequence ran and the heartbeat phase ended as planned
    tls_failure: str | None
    errors: tuple[str, ...]
    expect_tls_failure: bool = False

    @property
    def ok(self) -> bool:
        """The session went as the profile intends (bad-certificate: the handshake failed)."""
        if self.expect_tls_failure:
            return self.tls_failure is not None and not self.errors
        return self.completed and not self.errors and self.tls_failure is None

    @property
    def energize(self) -> bool | None:
        return self.energize_history[-1].energize if self.energize_history else None

    def latencies_ms(self, routine: bool) -> list[float]:
        return [s.latency_ms for s in self.steps if s.routine is routine and s.status]

    def summary(self) -> list[str]:
        lines = [
            f"profile {self.profile}  server {self.server}  lfdi {self.lfdi or '-'}",
            f"result {'OK' if self.ok else 'FAILED'}  completed={self.completed}  "
            f"heartbeats={self.heartbeats_sent}  responses={self.responses_posted}  "
            f"watch={self.watch}",
        ]
        for routine, what in ((False, "setup"), (True, "routine")):
            values = self.latencies_ms(routine)
            if values:
                lines.append(
                    f"{what} latency ms: n={len(values)} min={min(values):.1f} "
                    f"median={statistics.median(values):.1f} max={max(values):.1f}"
                )
        history = ", ".join(f"{c.energize}@{c.at_s:.2f}s({c.via})" for c in self.energize_history)
        lines.append(f"opModEnergize: {history or 'never read'}")
        if self.tls_failure:
            lines.append(f"TLS handshake failed: {self.tls_failure}")
        lines.extend(f"error: {e}" for e in self.errors)
        return lines


@dataclass(slots=True)
class SessionLog:
    """The mutable record a running session appends to."""

    started_s: float = field(default_factory=time.monotonic)
    on_step: Callable[[Step], None] = lambda step: None
    on_energize: Callable[[EnergizeChange], None] = lambda change: None
    steps: list[Step] = field(default_factory=list)
    energize_history: list[EnergizeChange] = field(default_factory=list)
    heartbeats_sent: int = 0
    responses_posted: int = 0
    connections: int = 0  # TLS connections opened for requests
    on_control: Callable[[str], None] = lambda description: None
    controls_followed: list[str] = field(default_factory=list)  # changes seen mid-session
    watch: str = "polling"
    errors: list[str] = field(default_factory=list)
    tls_failure: str | None = None
    lfdi: str | None = None
    evse_lfdi: str | None = None

    def since_start(self, monotonic_s: float | None = None) -> float:
        return (time.monotonic() if monotonic_s is None else monotonic_s) - self.started_s

    def add_step(self, step: Step) -> None:
        self.steps.append(step)
        self.on_step(step)

    def saw_energize(self, energize: bool | None, via: str) -> bool:
        """Record ``energize`` if it differs from the last value seen; True if it did."""
        if self.energize_history and self.energize_history[-1].energize == energize:
            return False
        now = time.monotonic()
        change = EnergizeChange(now, self.since_start(now), energize, via)
        self.energize_history.append(change)
        self.on_energize(change)
        return True

    def report(self, profile: str, server: str, completed: bool, expect_tls: bool) -> PevReport:
        return PevReport(
            profile=profile,
            server=server,
            lfdi=self.lfdi,
            evse_lfdi=self.evse_lfdi,
            steps=tuple(self.steps),
            energize_history=tuple(self.energize_history),
            heartbeats_sent=self.heartbeats_sent,
            responses_posted=self.responses_posted,
            watch=self.watch,
            completed=completed,
            tls_failure=self.tls_failure,
            errors=tuple(self.errors),
            expect_tls_failure=expect_tls,
        )
