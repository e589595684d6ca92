"""The meter's health rules with an injected clock: what makes it unhealthy at once, what only
once readings go stale, and the good readings in a row it takes to trust it again."""

from __future__ import annotations

import math

import pytest

from hal.meter import BusError, Reading
from hal.meter.health import HealthMonitor, Limits, plausibility

MS = 1_000_000
S = 1_000_000_000
LIMITS = Limits(max_power_w=32 * 240 * 1.25, nominal_voltage_v=240, stale_ms=500,
                recover_polls=10, frozen_s=30)  # fmt: skip


def reading(t_ns: int, power_w: float = 3000.0, **changes: float) -> Reading:
    values = {"import_wh": 1000.0, "export_wh": 500.0, "voltage_v": 240.0 + t_ns / 1e12,
              "frequency_hz": 60.0, **changes}  # fmt: skip
    return Reading(power_w, values["import_wh"], values["export_wh"], values["voltage_v"],
                   values["frequency_hz"], t_ns)  # fmt: skip


def healthy_monitor() -> tuple[HealthMonitor, int]:
    monitor = HealthMonitor(LIMITS, 0)
    assert monitor.check(0).reason == "no reading yet"
    t = 0
    for _ in range(10):
        t += 100 * MS
        assert monitor.answer(reading(t)) is None
    assert monitor.check(t).healthy
    return monitor, t


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"power_w": 9601.0}, "power 9601 W beyond the circuit's 9600 W"),
        ({"power_w": -9601.0}, "power -9601 W beyond"),
        ({"power_w": math.nan}, "power is not a number"),
        ({"voltage_v": 288.1}, "voltage 288.1 V outside 120..288 V"),
        ({"voltage_v": -1.0}, "voltage -1.0 V outside"),
        ({"voltage_v": 0.0}, "voltage 0.0 V outside 120..288 V"),
        ({"voltage_v": 119.9}, "voltage 119.9 V outside"),
        ({"frequency_hz": 120.0}, "frequency 120.00 Hz outside 45..65 Hz"),
        ({"frequency_hz": 0.0}, "frequency 0.00 Hz outside 45..65 Hz"),
        ({"frequency_hz": 44.9}, "frequency 44.90 Hz outside"),
        ({"frequency_hz": 65.1}, "frequency 65.10 Hz outside"),
        ({"import_wh": -5.0}, "a negative energy counter"),
        ({"export_wh": math.inf}, "export energy is not a number"),
    ],
)
def test_implausible_values(changes: dict[str, float], why: str) -> None:
    assert why in (plausibility(reading(0, **changes), LIMITS) or "")


def test_plausible_values_at_the_edges() -> None:
    for changes in ({"power_w": 9600.0}, {"voltage_v": 120.0, "frequency_hz": 45.0},
                    {"voltage_v": 288.0, "frequency_hz": 65.0}, {"frequency_hz": 50.0},
                    {"power_w": -9600.0}):  # fmt: skip
        assert plausibility(reading(0, **changes), LIMITS) is None, changes


def test_an_implausible_answer_is_unhealthy_at_once_and_ten_good_ones_recover() -> None:
    monitor, t = healthy_monitor()
    t += 100 * MS
    assert monitor.answer(reading(t, power_w=50_000)) is BusError.IMPLAUSIBLE
    health = monitor.check(t)
    assert not health.healthy and "power 50000 W beyond" in health.reason
    for _ in range(9):
        t += 100 * MS
        monitor.answer(reading(t))
        assert not monitor.check(t).healthy
    t += 100 * MS
    monitor.answer(reading(t))
    assert monitor.check(t).healthy, "the tenth good reading in a row"


def test_an_exception_response_is_unhealthy_at_once() -> None:
    monitor, t = healthy_monitor()
    monitor.failed(BusError.EXCEPTION, "exception 2 (illegal data address)", t + 1)
    assert monitor.check(t + 1).reason == "exception: exception 2 (illegal data address)"


def test_lost_answers_count_only_once_readings_go_stale() -> None:
    monitor, t = healthy_monitor()
    for kind in (BusError.TIMEOUT, BusError.CRC, BusError.TIMEOUT, BusError.CRC):
        monitor.failed(kind, "no answer", t + 100 * MS)
    assert monitor.check(t + 500 * MS).healthy
    health = monitor.check(t + 501 * MS)
    assert not health.healthy
    assert health.reason == "no good reading for 501 ms (last: crc: no answer)"


def test_a_stuck_poller_shows_as_stale_to_whoever_asks() -> None:
    monitor, t = healthy_monitor()
    assert not monitor.check(t + 2 * S).healthy, "no answer at all, not even a failure"


def test_a_tighter_allowance_does_not_restart_the_count() -> None:
    monitor, t = healthy_monitor()
    monitor.allow(3000, t)  # the idle rate: three idle polls
    assert monitor.check(t + 2900 * MS).healthy
    monitor.allow(500, t + 2900 * MS)  # a vehicle plugs in: the fast rate's allowance
    assert monitor.check(t + 3000 * MS).healthy, "the idle allowance still runs out at 3 s"
    health = monitor.check(t + 3000 * MS + 1)
    assert not health.healthy and "no good reading for 3000 ms" in health.reason


def test_a_tighter_allowance_counts_from_the_change_when_that_is_sooner() -> None:
    monitor, t = healthy_monitor()
    monitor.allow(3000, t)
    monitor.allow(500, t + 100 * MS)
    assert monitor.check(t + 600 * MS).healthy
    assert not monitor.check(t + 600 * MS + 1).healthy
    monitor, t = healthy_monitor()
    monitor.allow(3000, t)
    monitor.allow(500, t + 100 * MS)
    monitor.answer(reading(t + 400 * MS))  # a good reading: the fast allowance from it
    assert monitor.check(t + 900 * MS).healthy
    assert not monitor.check(t + 900 * MS + 1).healthy


def test_a_looser_allowance_counts_from_the_last_good_reading() -> None:
    monitor, t = healthy_monitor()
    monitor.allow(3000, t + 400 * MS)
    assert monitor.check(t + 3000 * MS).healthy
    assert not monitor.check(t + 3000 * MS + 1).healthy


def test_a_counter_going_back_is_unhealthy() -> None:
    monitor, t = healthy_monitor()
    t += 100 * MS
    assert monitor.answer(reading(t, import_wh=999.0)) is BusError.IMPLAUSIBLE
    assert "the import energy counter went back from 1000 to 999 Wh" in monitor.check(t).reason


def test_values_frozen_for_frozen_s_are_unhealthy_until_they_move() -> None:
    monitor = HealthMonitor(LIMITS, 0)
    frozen = {"voltage_v": 239.5}
    t = 0
    while t < 30 * S:
        t += 100 * MS
        assert monitor.answer(reading(t, **frozen)) is None, t
    t += 100 * MS
    assert monitor.answer(reading(t, **frozen)) is BusError.IMPLAUSIBLE
    assert "frozen" in monitor.check(t).reason
    t += 100 * MS
    assert monitor.answer(reading(t, **frozen)) is BusError.IMPLAUSIBLE, "still frozen"
    t += 100 * MS
    assert monitor.answer(reading(t, voltage_v=239.6)) is None


def test_a_dead_or_all_zero_meter_is_never_healthy() -> None:
    monitor = HealthMonitor(LIMITS, 0)
    for t in range(1, 400):
        refused = monitor.answer(reading(t * 100 * MS, power_w=0, voltage_v=0.0,
                                         frequency_hz=0.0))  # fmt: skip
        assert refused is BusError.IMPLAUSIBLE
        assert not monitor.check(t * 100 * MS).healthy
    assert "voltage 0.0 V outside" in monitor.check(400 * 100 * MS).reason


def test_frozen_values_are_checked_whatever_the_voltage() -> None:
    """No value exempts a meter from the frozen check (0 V used to)."""
    low = HealthMonitor(LIMITS, 0)
    t = 0
    while t <= 30 * S:
        t += 100 * MS
        refused = low.answer(reading(t, voltage_v=120.0, frequency_hz=45.0))
    assert refused is BusError.IMPLAUSIBLE and "frozen" in low.check(t).reason


class Counting:
    """Readings every 100 ms from a meter whose counters rise as each call says, after the
    readings of ``healthy_monitor``."""

    def __init__(self) -> None:
        self.monitor, self.t = healthy_monitor()
        self.imported, self.exported = 1000.0, 500.0

    def run(self, power_w: float, seconds: int, export_per_s: float = 0.0,
            import_per_s: float = 0.0) -> list[BusError | None]:  # fmt: skip
        answers = []
        for _ in range(seconds * 10):
            self.t += 100 * MS
            self.exported += export_per_s / 10
            self.imported += import_per_s / 10
            answers.append(self.monitor.answer(reading(
                self.t, power_w, export_wh=self.exported, import_wh=self.imported,
                voltage_v=240 + (self.t % 7) / 10)))  # fmt: skip
        return answers

    def healthy(self) -> bool:
        return self.monitor.check(self.t).healthy


def test_power_and_counters_telling_the_same_story_stay_healthy() -> None:
    meter = Counting()  # 7200 W for 60 s: 120 Wh by power, the counter rising 2 Wh a second
    assert all(a is None for a in meter.run(7200.0, 60, export_per_s=2.0)) and meter.healthy()
    assert all(a is None for a in meter.run(-7200.0, 60, import_per_s=2.0)) and meter.healthy()


@pytest.mark.parametrize(
    ("power_w", "export_per_s", "why"),
    [
        (720.0, 2.0, "power and the export counter disagree: 11 Wh by power, 100 Wh counted"),
        (7200.0, 0.2, "power and the export counter disagree: 100 Wh by power, 10 Wh counted"),
    ],
    ids=["power read a tenth of the truth", "power read ten times the truth"],
)
def test_power_at_the_wrong_scale_is_caught_by_the_counters(
    power_w: float, export_per_s: float, why: str
) -> None:
    meter = Counting()
    assert BusError.IMPLAUSIBLE in meter.run(power_w, 60, export_per_s=export_per_s)
    health = meter.monitor.check(meter.t)
    assert not health.healthy and why in health.reason
    meter.run(0.0, 20)
    assert not meter.healthy(), "plausible readings alone do not trust it again"
    meter.run(-7200.0, 60, import_per_s=2.0)  # a whole window in which both agree
    meter.run(-7200.0, 2, import_per_s=2.0)
    assert meter.healthy()


def test_a_gap_in_the_readings_starts_a_new_window() -> None:
    meter = Counting()
    meter.run(7200.0, 40, export_per_s=2.0)  # 80 Wh by either account
    meter.t += 6 * S  # the bus silent for 6 s while energy flowed: the counter moved on
    meter.exported += 500.0
    assert all(a is None for a in meter.run(7200.0, 40, export_per_s=2.0))
    assert meter.healthy(), "what came before the gap is not compared with what follows"


def test_coarse_counters_get_a_window_they_can_fill() -> None:
    """A lab's map whose counters step by 1 kWh: 100 Wh by power against 0 counted is no
    disagreement; the window is ten of the counter's steps."""
    from hal.meter import load_map

    coarse = Limits(max_power_w=LIMITS.max_power_w, nominal_voltage_v=240, counter_step_wh=1000)
    assert coarse.energy_window_wh == 10_000.0
    assert LIMITS.energy_window_wh == 100.0
    assert load_map("abb-b23").counter_step_wh == 10.0, "0.01 kWh a count"
    assert load_map("sdm630").counter_step_wh == 10.0, "float kWh: the meter's 0.01 kWh"
    monitor = HealthMonitor(coarse, 0)
    t = 0
    for _ in range(2000):  # 200 s at 7.2 kW: 400 Wh by power, the 1 kWh counter not moved
        t += 100 * MS
        assert monitor.answer(reading(t, 7200.0, voltage_v=240 + (t % 7) / 10)) is None
