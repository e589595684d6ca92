"""The mock board: the Board contract served from a circuit model, for laptops, CI and HIL.

It owns the simulated hardware: pilot circuit, relays with mechanical delay behind a dead-man
watchdog, aux-contact feedback, RCD, proximity and meter. The virtual rig (``hal.mock.rig``)
drives the vehicle side and measures; the firmware sees only the Board methods. Thread-safe:
the sampler thread, the event loop and the rig thread all call in.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

from hal.contract import (
    SAFE_PILOT,
    Capabilities,
    Contacts,
    MeterReading,
    PilotOutput,
    PilotSample,
    RcdState,
    Relay,
)
from hal.mock.circuit import VehicleSide, VehicleState, plateaus_v
from hal.mock.relays import Deadman, FeedbackMode, RelayModel
from hal.settings import BoardSettings

MAX_CURRENT_A = 80.0  # the J1772 ceiling; the mock board's hardware is rated for it
NOMINAL_VOLTAGE_V = 240.0
NOMINAL_FREQUENCY_HZ = 60.0


class _Stoppable(Protocol):
    def stop(self) -> None: ...

    def unlink(self) -> None: ...


class MockBoard:
    def __init__(
        self, settings: BoardSettings, clock: Callable[[], int] = time.monotonic_ns
    ) -> None:
        mock = settings.mock
        self.firmware_version = mock.firmware_version
        self._lock = threading.RLock()
        self._clock = clock
        now = clock()
        delay_ns = int(mock.relay_delay_ms * 1e6)
        self._relays = {
            Relay.MAIN: RelayModel(delay_ns, settings.main_feedback, now),
            Relay.DISCHARGE: RelayModel(delay_ns, settings.discharge_feedback, now),
        }
        self._deadman = Deadman(int(mock.deadman_timeout_ms * 1e6))
        self._drive_enabled = False  # relay supply as of the last evaluation
        self._pilot = SAFE_PILOT
        self._pilot_since_ns = now
        self._vehicle = VehicleSide()
        self._pp_ohm: float | None = None
        self._rcd = RcdState.CLEAR
        self._rcd_test = False
        self._meter_w = 0.0
        self._noise_mv = mock.noise_mv
        self._rng = random.Random(mock.seed)
        self._closed = False
        self._rig: _Stoppable | None = None
        self._caps = Capabilities(
            max_current_a=MAX_CURRENT_A,
            supports_state_e=True,
            supports_ventilation=True,
            supports_rcd_self_test=mock.supports_rcd_self_test,
            main_feedback=settings.main_feedback,
            discharge_feedback=settings.discharge_feedback,
            deadman_timeout_ms=mock.deadman_timeout_ms,
        )

    # --- the Board contract -------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def set_pilot(self, output: PilotOutput) -> None:
        with self._lock:
            if output != self._pilot:
                self._pilot = output
                self._pilot_since_ns = self._clock()

    def read_pilot(self) -> PilotSample:
        with self._lock:
            high_v, low_v = plateaus_v(self._pilot, self._vehicle)
            now = self._clock()
        return PilotSample(self._noisy_mv(high_v), self._noisy_mv(low_v), now)

    def read_proximity_ohm(self) -> float | None:
        with self._lock:
            return self._pp_ohm

    def read_rcd(self) -> RcdState:
        with self._lock:
            if self._rcd_test and self._caps.supports_rcd_self_test:
                return RcdState.AC  # the test winding injects a residual current
            return self._rcd

    def set_rcd_test(self, active: bool) -> None:
        with self._lock:
            self._rcd_test = active

    def read_meter(self) -> MeterReading:
        with self._lock:
            return MeterReading(self._meter_w, NOMINAL_VOLTAGE_V, NOMINAL_FREQUENCY_HZ)

    def set_relay(self, relay: Relay, closed: bool) -> None:
        with self._lock:
            now = self._advance()
            model = self._relays[relay]
            model.commanded = closed and not self._closed
            if self._drive_enabled:
                model.set_coil(now, model.commanded)

    def read_feedback(self, relay: Relay) -> Contacts:
        with self._lock:
            return self._relays[relay].read_feedback(self._advance())

    def kick_deadman(self) -> None:
        with self._lock:
            now = self._advance()
            self._deadman.last_kick_ns = now
            if not self._drive_enabled and not self._closed:
                self._drive_enabled = True
                for model in self._relays.values():
                    model.set_coil(now, model.commanded)

    def close(self) -> None:
        with self._lock:
            for relay in Relay:
                self.set_relay(relay, False)
            self.set_pilot(SAFE_PILOT)
            self._closed = True
        if self._rig is not None:
            self._rig.stop()
            self._rig = None

    # --- what the virtual rig drives and measures -------------------------------------------

    def now_ns(self) -> int:
        return self._clock()

    def attach_rig(self, rig: _Stoppable) -> None:
        self._rig = rig

    def retire_rig(self) -> None:
        """This board is about to go: its rig stays with a host that has it open, and new
        hosts no longer find it."""
        if self._rig is not None:
            self._rig.unlink()

    def pilot_output(self) -> tuple[PilotOutput, int]:
        """The pilot command and since when (ns) it has been in force."""
        with self._lock:
            return self._pilot, self._pilot_since_ns

    @property
    def vehicle(self) -> VehicleSide:
        with self._lock:
            return self._vehicle

    def simulated_vehicle(self) -> tuple[bool, bool]:
        """(plugged in, PLC modem on): what the simulated modems on the other side follow."""
        with self._lock:
            return self._vehicle.state is not VehicleState.A, self._vehicle.plc

    def set_vehicle(self, vehicle: VehicleSide) -> None:
        with self._lock:
            self._vehicle = vehicle

    def pilot_plateaus_v(self) -> tuple[float, float]:
        """Noise-free plateaus, as the rig's own instrument measures them."""
        with self._lock:
            return plateaus_v(self._pilot, self._vehicle)

    def contacts(self, relay: Relay) -> tuple[bool, int]:
        """(closed, since when in ns) for the relay's actual contacts."""
        with self._lock:
            now = self._advance()
            model = self._relays[relay]
            return model.contacts_closed(now), model.contacts_since_ns(now)

    def set_feedback_mode(self, relay: Relay, mode: FeedbackMode) -> None:
        with self._lock:
            self._relays[relay].feedback_mode = mode

    def set_proximity_ohm(self, ohm: float | None) -> None:
        with self._lock:
            self._pp_ohm = ohm

    def set_rcd(self, state: RcdState) -> None:
        with self._lock:
            self._rcd = state

    def set_meter_w(self, watts: float) -> None:
        with self._lock:
            self._meter_w = watts

    # --- internals ----------------------------------------------------------------------

    def _advance(self) -> int:
        """Bring the dead-man up to date: if its toggling stopped, the coils dropped at expiry."""
        now = self._clock()
        if self._drive_enabled and not self._deadman.alive(now):
            expiry = self._deadman.expiry_ns()
            assert expiry is not None
            for model in self._relays.values():
                model.set_coil(expiry, False)
            self._drive_enabled = False
        return now

    def _noisy_mv(self, volts: float) -> int:
        sigma = self._noise_mv
        noise = max(-3 * sigma, min(3 * sigma, self._rng.gauss(0.0, sigma))) if sigma else 0.0
        return round(volts * 1000 + noise)


def open_mock_board(settings: BoardSettings) -> MockBoard:
    """Open the mock board in its safe state, with its virtual rig if a rig link is set."""
    board = MockBoard(settings)
    if settings.mock.rig_link:
        from hal.mock.rig import VirtualRig

        board.attach_rig(VirtualRig(board, settings.mock.rig_link))
    return board
