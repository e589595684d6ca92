"""Board settings: the facts about the board that the composition root reads from the config.

The HAL does not parse TOML; ``firmware.config`` builds these values and hands them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hal.contract import FeedbackKind


@dataclass(frozen=True, slots=True)
class MockSettings:
    """The mock board's circuit model and its virtual rig."""

    rig_link: str | None = None  # path where the pty slave is linked; None = no virtual rig
    relay_delay_ms: float = 10.0  # mechanical delay of both relays
    deadman_timeout_ms: float = 100.0  # relay drive drops this long after the last toggle
    noise_mv: float = 15.0  # standard deviation of the ADC noise on each plateau
    seed: int | None = None  # fixes the noise for reproducible runs
    supports_rcd_self_test: bool = True


@dataclass(frozen=True, slots=True)
class BoardSettings:
    backend: str = "mock"
    main_feedback: FeedbackKind = FeedbackKind.NORMALLY_OPEN
    discharge_feedback: FeedbackKind = FeedbackKind.NORMALLY_OPEN
    mock: MockSettings = field(default_factory=MockSettings)
