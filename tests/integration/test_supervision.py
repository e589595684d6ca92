"""The sampler thread and the supervisor, in process with real time: a failing board read
never leaves the daemon running without its interlock."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from firmware.charger.faults import FaultKind
from firmware.daemon.app import Gatekeeper
from firmware.daemon.config import parse_config
from firmware.safety.inoperative import FaultStore
from firmware.safety.interlock import Interlock
from firmware.safety.sampler import Sampler, SamplerEvent, SamplerFailed
from hal import PilotDrive, PilotSample, RcdState, Relay
from hal.mock.board import MockBoard
from hal.mock.circuit import VehicleSide, VehicleState
from hal.settings import BoardSettings, MockSettings
from tests.safety_inprocess import launcher

pytestmark = pytest.mark.integration


class FailingBoard(MockBoard):
    """A mock board whose ADC read starts failing after ``good_reads`` samples."""

    def __init__(self, good_reads: int) -> None:
        super().__init__(BoardSettings(mock=MockSettings(noise_mv=0)))
        self.reads = 0
        self.good_reads = good_reads

    def read_pilot(self) -> PilotSample:
        self.reads += 1
        if self.reads > self.good_reads:
            raise OSError("spi transfer failed")
        return super().read_pilot()


def test_the_sampler_ticks_on_its_deadlines_and_stops() -> None:
    board = MockBoard(BoardSettings(mock=MockSettings(noise_mv=0)))
    interlock = Interlock(board, False, time.monotonic_ns())
    sampler = Sampler(board, interlock, 200, lambda event: None)
    sampler.start()
    time.sleep(0.3)
    sampler.stop()
    ticks = sampler.stats.ticks
    assert 30 <= ticks <= 90, f"{ticks} ticks in 0.3 s at 200 Hz"
    time.sleep(0.05)
    assert sampler.stats.ticks == ticks, "stopped means stopped"


def test_a_failing_read_opens_the_relays_and_reports() -> None:
    board = FailingBoard(good_reads=20)
    interlock = Interlock(board, False, time.monotonic_ns())
    interlock._set(Relay.MAIN, True, time.monotonic_ns())  # as if charging
    failed = threading.Event()
    events: list[SamplerEvent] = []

    def post(event: SamplerEvent) -> None:
        events.append(event)
        if isinstance(event, SamplerFailed):
            failed.set()

    sampler = Sampler(board, interlock, 200, post)
    sampler.start()
    assert failed.wait(2), "the failure must be reported"
    sampler.stop()
    assert not interlock.closed(Relay.MAIN)
    assert "spi transfer failed" in next(e for e in events if isinstance(e, SamplerFailed)).error


def test_the_daemon_stops_non_zero_when_its_sampler_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = FailingBoard(good_reads=200)
    config = parse_config({"paths": {"state_dir": str(tmp_path)}})
    gatekeeper = Gatekeeper(config, launcher=launcher(board))
    started = time.monotonic()
    code = asyncio.run(asyncio.wait_for(gatekeeper.run(), timeout=10))
    assert code == 1
    assert time.monotonic() - started < 5
    assert all(not board.contacts(relay)[0] for relay in Relay)


class DeadRcdBoard(MockBoard):
    """An RCD module whose test winding does nothing: the self-test cannot trip it."""

    def __init__(self) -> None:
        super().__init__(BoardSettings(mock=MockSettings(noise_mv=0)))

    def read_rcd(self) -> RcdState:
        return RcdState.CLEAR


def test_a_failed_rcd_self_test_makes_the_evse_inoperative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = DeadRcdBoard()
    gatekeeper = Gatekeeper(
        parse_config({"paths": {"state_dir": str(tmp_path)}}), launcher=launcher(board)
    )

    async def scenario() -> int:
        task = asyncio.create_task(gatekeeper.run())
        while not gatekeeper.ready.is_set():
            await asyncio.sleep(0.01)
        board.set_vehicle(VehicleSide(VehicleState.C))
        await asyncio.sleep(0.3)
        assert gatekeeper.charger is not None
        assert gatekeeper.charger.state_id == "inoperative"
        assert not board.contacts(Relay.MAIN)[0]
        assert board.pilot_output()[0].drive is PilotDrive.STEADY_NEGATIVE
        gatekeeper.request_stop()
        return await task

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=10)) == 0
    recorded = FaultStore(tmp_path).load()
    assert recorded is not None and recorded.kind is FaultKind.RCD_SELF_TEST
