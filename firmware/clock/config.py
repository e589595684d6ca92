"""The ``[clock]`` config section, and the clock watch the daemon builds from the config.

``[clock]`` has one key, for tests only: ``mock_sync_file``, a file whose word
(``synchronized`` or ``unsynchronized``) stands in for the kernel's state. It is refused
unless ``hal.backend = "mock"`` (``clock_problems``), so a board always asks its kernel.
Whether the J3072 gate requires a synchronized clock is ``[j3072]
require_synchronized_clock``: when unset, on for a board and off for the mock board (the
issue's "on by default on the board, off in mock mode").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.config.reader import SectionReader

if TYPE_CHECKING:
    from firmware.clock.steps import Step
    from firmware.clock.watch import ClockWatch
    from firmware.daemon.config import Config


@dataclass(frozen=True, slots=True)
class ClockConfig:
    mock_sync_file: Path | None = None  # tests only, mock board only


def read_clock(section: SectionReader) -> ClockConfig:
    path = section.optional_string("mock_sync_file")
    section.finish()
    return ClockConfig(Path(path) if path else None)


def clock_problems(config: Config) -> list[str]:
    if config.clock.mock_sync_file is not None and config.board.backend != "mock":
        return ['clock.mock_sync_file: only with hal.backend = "mock" (a board asks its kernel)']
    return []


def clock_required(config: Config) -> bool:
    """``[j3072] require_synchronized_clock``, or by the board when unset."""
    required = config.j3072.require_synchronized_clock
    return config.board.backend != "mock" if required is None else required


def clock_watch(config: Config, on_step: Callable[[Step], None]) -> ClockWatch:
    """The daemon's watch: the kernel on a board, the test file where configured (imported
    here: ``status`` reads this config module and must not load an event loop)."""
    from firmware.clock.kernel import KernelSync, SyncFile
    from firmware.clock.latch import BootLatch
    from firmware.clock.watch import ClockWatch, SyncSource

    path = config.clock.mock_sync_file
    source: SyncSource = KernelSync() if path is None else SyncFile(path)
    return ClockWatch(source, BootLatch(config.paths.state_dir), on_step)
