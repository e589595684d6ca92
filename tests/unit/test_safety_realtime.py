"""The kernel's preemption model, read the way the safety process reads it at start."""

from __future__ import annotations

import pytest

from firmware.safety.realtime import PREEMPTIBLE, preemption_model

DYNAMIC = "#1 SMP PREEMPT_DYNAMIC @0"


@pytest.mark.parametrize(
    ("debugfs", "cmdline", "version", "model"),
    [
        ("none voluntary (full) lazy\n", "", DYNAMIC, "full"),  # debugfs says it outright
        ("(none) voluntary full lazy\n", "preempt=full", DYNAMIC, "none"),  # debugfs wins
        (None, "console=ttyS0 preempt=voluntary quiet", DYNAMIC, "voluntary"),
        (None, "console=ttyS0 quiet", DYNAMIC, "dynamic, model not readable"),
        (None, "", "#1 SMP PREEMPT_RT Fri Jan 1", "rt"),
        (None, "", "#1 SMP PREEMPT Debian 6.1.0", "full"),
        (None, "", "#1 SMP Debian 6.1.0", "none or voluntary"),
    ],
)
def test_the_model_comes_from_the_most_direct_source(
    debugfs: str | None, cmdline: str, version: str, model: str
) -> None:
    assert preemption_model(debugfs, cmdline, version) == model


def test_only_preemptible_models_pass_without_a_warning() -> None:
    assert set(PREEMPTIBLE) == {"full", "rt", "lazy"}
    assert preemption_model(None, "", DYNAMIC) not in PREEMPTIBLE
