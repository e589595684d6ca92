"""The clock rules in process: steps found against the boot clock, the since-boot latch kept
under the boot id, the watch's state, quality and log, and the gate refusing to start an
authorization on a clock never synchronized since boot (but keeping one it gave)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware.clock.config import clock_required
from firmware.clock.kernel import KernelSync, SyncFile, SyncReading
from firmware.clock.latch import BootLatch
from firmware.clock.steps import STEP_THRESHOLD_S, Step, StepDetector, wall_minus_boot_s
from firmware.clock.watch import NEVER_SYNCHRONIZED, ClockWatch
from firmware.daemon.config import parse_config
from firmware.daemon.control_socket import render
from firmware.errors import ConfigError
from firmware.j3072.config import J3072Config
from firmware.j3072.gate import Gate
from firmware.sep2.clock import QUALITY_NTP, QUALITY_UNCOORDINATED
from hil.pev.profiles import PROFILES
from tests.unit.test_j3072_gate import LFDI, SITE, S, World

BOOT = "9bf95156-870d-45de-b387-ca6cfe0806ce"


def test_slewing_is_no_step_and_a_jump_either_way_is_one() -> None:
    detector = StepDetector()
    assert detector.observe(100.0) is None, "the first look has nothing to compare"
    for second in range(1, 120):  # a time service slewing at the kernel's 500 ppm limit
        assert detector.observe(100.0 + second * 0.0005) is None
    assert detector.observe(3700.06) == Step(pytest.approx(3600.0, abs=0.001))
    backward = detector.observe(3690.06)
    assert backward is not None and backward.direction == "backward"
    assert backward.size_s == pytest.approx(-10.0)
    assert detector.observe(3690.06 + STEP_THRESHOLD_S * 0.9) is None


def test_a_look_interrupted_between_its_reads_is_taken_again() -> None:
    boots = iter([10.0, 10.5, 20.0, 20.001])  # a thread switch in the first look
    walls = iter([1000.2, 1010.0005])
    offset = wall_minus_boot_s(lambda: next(walls), lambda: next(boots))
    assert offset == pytest.approx(990.0)


def test_the_real_clocks_differ_by_a_steady_offset() -> None:
    first, second = wall_minus_boot_s(), wall_minus_boot_s()
    assert abs(second - first) < STEP_THRESHOLD_S


def test_the_latch_holds_for_its_boot_only(tmp_path: Path) -> None:
    latch = BootLatch(tmp_path, lambda: BOOT)
    assert not latch.load(), "nothing saved yet"
    latch.save()
    assert BootLatch(tmp_path, lambda: BOOT).load(), "a restart in the same boot knows"
    assert not BootLatch(tmp_path, lambda: "another-boot").load(), "a reboot starts over"
    assert not BootLatch(tmp_path, lambda: "").load(), "no boot id: never from the disk"
    (tmp_path / "clock-synchronized").write_bytes(b"\xff" * 200)
    assert not BootLatch(tmp_path, lambda: BOOT).load(), "garbage is not this boot"


def test_a_latch_the_disk_refuses_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    latch = BootLatch(tmp_path / "missing", lambda: BOOT)
    latch.save()
    assert "clock.latch_unsaved" in caplog.text


def test_the_kernel_is_read_without_privileges() -> None:
    reading = KernelSync().read()
    assert isinstance(reading.synchronized, bool)
    assert reading.maxerror_us is not None and reading.maxerror_us >= 0
    assert reading.source in ("systemd-timesyncd", "chronyd", "kernel")


def test_the_test_file_says_synchronized_only_in_that_word(tmp_path: Path) -> None:
    path = tmp_path / "sync"
    assert not SyncFile(path).read().synchronized, "no file: unsynchronized"
    for word, synchronized in (("synchronized\n", True), ("unsynchronized", False),
                               ("yes", False), ("", False)):  # fmt: skip
        path.write_text(word)
        assert SyncFile(path).read().synchronized is synchronized, word


@dataclass
class FakeSource:
    synchronized: bool = False
    service_synchronized: bool = False

    def read(self) -> SyncReading:
        return SyncReading(self.synchronized, "test", 1000, 10, self.service_synchronized)


@dataclass
class Clocks:
    offset_s: float = 1.7e9
    steps: list[Step] = field(default_factory=list)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def watch_for(source: FakeSource, clocks: Clocks, state: Path) -> ClockWatch:
    return ClockWatch(source, BootLatch(state, lambda: BOOT), clocks.steps.append,
                      lambda: clocks.offset_s,
                      lambda: datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip


def test_never_synchronized_is_a_problem_until_the_first_synchronization(
    tmp_path: Path, clocks: Clocks
) -> None:
    source = FakeSource()
    watch = watch_for(source, clocks, tmp_path)
    watch.start()
    assert watch.problem() == NEVER_SYNCHRONIZED and watch.quality() == QUALITY_UNCOORDINATED
    source.synchronized = True
    watch.check()
    assert watch.problem() is None and watch.quality() == QUALITY_NTP
    source.synchronized = False  # the time service lost its servers later in the boot
    watch.check()
    assert watch.problem() is None, "synchronized once since boot: the latch holds"
    assert watch.quality() == QUALITY_UNCOORDINATED, "but the Time resource says so"
    again = watch_for(FakeSource(), clocks, tmp_path)
    again.start()
    assert again.since_boot and again.problem() is None, "a restart in the same boot knows"


def test_timesyncd_marker_counts_as_synchronized_since_boot(tmp_path: Path, clocks: Clocks) -> None:
    watch = watch_for(FakeSource(service_synchronized=True), clocks, tmp_path)
    watch.start()
    assert watch.problem() is None and watch.quality() == QUALITY_UNCOORDINATED


def test_steps_are_logged_counted_and_handed_on(
    tmp_path: Path, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    watch = watch_for(FakeSource(True), clocks, tmp_path)
    watch.start()
    clocks.offset_s += 3600.0
    watch.check()
    clocks.offset_s -= 42.5
    watch.check()
    watch.check()
    assert [s.direction for s in clocks.steps] == ["forward", "backward"]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("clock.step")]
    assert lines == [
        "clock.step direction=forward size_s=3600.000 at=2025-01-01T00:00:00.000Z count=1",
        "clock.step direction=backward size_s=42.500 at=2025-01-01T00:00:00.000Z count=2",
    ]
    status = watch.status()
    assert status == {
        "synchronized": True,
        "synchronized_since_boot": True,
        "source": "test",
        "maxerror_us": 1000,
        "esterror_us": 10,
        "steps": 2,
        "last_step": {
            "at": "2025-01-01T00:00:00.000Z",
            "size_s": -42.5,
            "direction": "backward",
        },
        "time_quality": QUALITY_NTP,
    }


def test_the_requirement_defaults_by_board_and_the_test_file_is_mock_only() -> None:
    assert not clock_required(parse_config({}))
    rpi = {"hal": {"backend": "rpi"}}
    assert clock_required(parse_config(rpi))
    off = parse_config({**rpi, "j3072": {"require_synchronized_clock": False}})
    assert not clock_required(off)
    on = parse_config({"j3072": {"require_synchronized_clock": True}})
    assert clock_required(on)
    with pytest.raises(ConfigError) as info:
        parse_config({**rpi, "clock": {"mock_sync_file": "/tmp/sync"}})
    assert info.value.problems == [
        'clock.mock_sync_file: only with hal.backend = "mock" (a board asks its kernel)'
    ]
    with pytest.raises(ConfigError) as info:
        parse_config({"j3072": {"require_synchronized_clock": "yes"}, "clock": {"x": 1}})
    assert info.value.problems == [
        "j3072.require_synchronized_clock: must be true or false, got 'yes'",
        "clock.x: unknown key",
    ]


@pytest.fixture
def gated() -> Iterator[tuple[World, list[str | None]]]:
    problem: list[str | None] = [NEVER_SYNCHRONIZED]
    world = World()
    world.gate = Gate(SITE, J3072Config(), world.sep2, world.approvals,  # type: ignore[arg-type]
                      world.journal, lambda: world.now,
                      clock_problem=lambda: problem[0])  # fmt: skip
    world.gate.plugged(True)
    yield world, problem


def test_no_authorization_on_a_clock_never_synchronized(
    gated: tuple[World, list[str | None]],
) -> None:
    world, problem = gated
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert not world.gate.authorized and world.sep2.energized.get(LFDI) is not True
    assert world.gate.snapshot()["reasons"] == [NEVER_SYNCHRONIZED]
    assert world.journal.decisions[-1].reasons == (NEVER_SYNCHRONIZED,), "journaled"
    problem[0] = None  # the time service synchronized the clock
    world.gate.poll()
    assert not world.gate.authorized, "a grant after a denial waits hold_s (10 s)"
    for _ in range(10):  # then, as after any denial, 3 on-time heartbeats (§4.8.1.1)
        world.now += S
        world.heartbeat(LFDI)
        world.gate.poll()
    assert world.gate.authorized and world.sep2.energized[LFDI] is True
    assert world.journal.decisions[-1].granted


def test_every_other_reason_is_given_beside_the_clock(
    gated: tuple[World, list[str | None]],
) -> None:
    world, _ = gated
    world.exchange(PROFILES["certified-4q"], LFDI, limits_first=False)
    reasons = world.gate.snapshot()["reasons"]
    assert reasons[0] == NEVER_SYNCHRONIZED
    assert "DERSettings PUT before the site limits were read" in reasons


def test_status_text_says_whether_the_clock_can_be_trusted(tmp_path: Path, clocks: Clocks) -> None:
    source = FakeSource()
    watch = watch_for(source, clocks, tmp_path)
    watch.start()
    assert (
        "clock:         NOT synchronized (test), since boot: NO, Time.quality 7"
        in render({"clock": watch.status()}).splitlines()
    )
    source.synchronized = True
    clocks.offset_s += 3600
    watch.check()
    lines = render({"clock": watch.status()}).splitlines()
    assert "clock:         synchronized (test), since boot: yes, Time.quality 3" in lines
    assert "               1 steps, last forward 3600.0 s at 2025-01-01T00:00:00.000Z" in lines
