"""Time.quality follows what the kernel says of the clock's synchronization."""

from __future__ import annotations

from firmware.sep2.clock import (
    QUALITY_NTP,
    QUALITY_UNCOORDINATED,
    RECHECK_S,
    ClockQuality,
    kernel_says_synchronized,
)


def test_synchronized_is_ntp_quality_and_unsynchronized_uncoordinated() -> None:
    answers = [False, True, False]
    now = [0.0]
    quality = ClockQuality(lambda: answers.pop(0), lambda: now[0])
    assert quality.quality() == QUALITY_UNCOORDINATED
    now[0] += RECHECK_S - 0.1
    assert quality.quality() == QUALITY_UNCOORDINATED, "asked at most every RECHECK_S"
    now[0] += 0.1
    assert quality.quality() == QUALITY_NTP, "the time service caught up"
    now[0] += RECHECK_S
    assert quality.quality() == QUALITY_UNCOORDINATED, "and lost it again"


def test_the_kernel_answers_without_privileges_or_errors() -> None:
    assert isinstance(kernel_says_synchronized(), bool)
