"""Proximity (PP): what the PP-PE resistance means for the charger. Pure, no I/O.

docs/j1772.md "Proximity":
- Type 1 (J1772) plug: 150 Ohm with the latch closed; pressing the release button opens S3
  and adds 330 Ohm (480 Ohm). A tethered EVSE that monitors it stops before the plug moves.
  The reference gives nominal values only; the acceptance bands below are ours (wide enough
  for contact and wiring resistance, far from each other).
- Type 2 socket: the cable's coding resistor gives its ampacity; < 60 or > 4500 Ohm is a
  fault; a value between two ranges takes the lower current.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ProximityMode(enum.Enum):
    NONE = "none"  # PP not monitored
    TYPE1 = "type1"  # tethered J1772 handle: watch the latch-release button
    TYPE2 = "type2"  # socket: the cable's coding resistor limits the current


class Proximity(enum.Enum):
    UNMONITORED = "unmonitored"
    LATCHED = "latched"  # type 1: the latch holds the plug
    RELEASE_PRESSED = "release_pressed"  # type 1: the user is about to pull the plug
    CABLE = "cable"  # type 2: a cable with a known ampacity
    OPEN = "open"  # no PP circuit: no cable, or a broken wire
    OUT_OF_RANGE = "out_of_range"

    @property
    def allows_power(self) -> bool:
        return self in (Proximity.UNMONITORED, Proximity.LATCHED, Proximity.CABLE)


@dataclass(frozen=True, slots=True)
class ProximityReading:
    state: Proximity
    cable_a: float | None = None  # type 2 only


UNMONITORED = ProximityReading(Proximity.UNMONITORED)

TYPE1_LATCHED_OHM = (90.0, 250.0)  # nominal 150 Ohm
TYPE1_PRESSED_OHM = (300.0, 800.0)  # nominal 480 Ohm
TYPE2_LIMITS_OHM = (60.0, 4500.0)
# (highest Ohm of the range, cable ampacity), from the lowest resistance up: 100 Ohm 63 A
# (80-140), 220 Ohm 32 A (164-308), 680 Ohm 20 A (400-936), 1.5 kOhm 13 A (1100-2460)
TYPE2_CODING: tuple[tuple[float, float], ...] = (
    (140.0, 63.0),
    (308.0, 32.0),
    (936.0, 20.0),
    (TYPE2_LIMITS_OHM[1], 13.0),
)


def read_proximity(mode: ProximityMode, ohm: float | None) -> ProximityReading:
    if mode is ProximityMode.NONE:
        return UNMONITORED
    if ohm is None:
        return ProximityReading(Proximity.OPEN)
    if mode is ProximityMode.TYPE1:
        return _type1(ohm)
    return _type2(ohm)


def _type1(ohm: float) -> ProximityReading:
    if TYPE1_LATCHED_OHM[0] <= ohm <= TYPE1_LATCHED_OHM[1]:
        return ProximityReading(Proximity.LATCHED)
    if TYPE1_PRESSED_OHM[0] <= ohm <= TYPE1_PRESSED_OHM[1]:
        return ProximityReading(Proximity.RELEASE_PRESSED)
    return ProximityReading(Proximity.OUT_OF_RANGE)


def _type2(ohm: float) -> ProximityReading:
    low, high = TYPE2_LIMITS_OHM
    if not low <= ohm <= high:
        return ProximityReading(Proximity.OUT_OF_RANGE)
    # the first range whose upper bound is not below the reading: a reading between two
    # ranges lands in the higher-resistance one, the lower current, as the reference asks
    cable_a = next(ampacity for highest_ohm, ampacity in TYPE2_CODING if ohm <= highest_ohm)
    return ProximityReading(Proximity.CABLE, cable_a)


class ProximityConfirmer:
    """Two agreeing consecutive readings confirm a change, as for the pilot."""

    def __init__(self, initial: ProximityReading) -> None:
        self.confirmed = initial
        self._candidate: ProximityReading | None = None

    def feed(self, reading: ProximityReading) -> ProximityReading | None:
        """Return the newly confirmed reading, or None."""
        if reading == self.confirmed:
            self._candidate = None
            return None
        if reading != self._candidate:
            self._candidate = reading
            return None
        self.confirmed, self._candidate = reading, None
        return reading
