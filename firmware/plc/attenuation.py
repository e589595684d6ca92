"""What the EVSE tells a vehicle about its sounds: the ATTEN_CHAR.IND's NUM_SOUNDS and AAG.

Pure. Built from the CM_ATTEN_PROFILE.INDs our modem reported for one vehicle's run and the
number of its CM_MNBC_SOUND.INDs the host heard. docs/homeplug-slac.md "Sequence and timing"
(step 4) and "When no attenuation arrives" say why each case answers as it does:

- profiles that carry groups: each group averaged over the profiles that carry it, NUM_SOUNDS
  the number of those profiles (the sounds the profile is made of, ISO 15118-3 Annex A);
- sounds heard but no group measured (a modem that sends NumGroups 0, or profiles lost):
  NUM_SOUNDS the sounds heard and a uniform, deliberately weak placeholder, never zeros
  (0 dB would claim a perfect line and win against any EVSE that really measured);
- nothing heard at all: no answer (there is no sounding to report).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NUM_GROUPS = 58
UNMEASURED_AAG_DB = 60  # the placeholder: weaker than a vehicle on its own cable measures


@dataclass(frozen=True, slots=True)
class Characterization:
    num_sounds: int
    aag: bytes  # NUM_GROUPS bytes, dB
    measured_groups: int  # groups that carry a measurement (the rest hold the placeholder)


def characterize(profiles: Sequence[bytes], sounds_heard: int) -> Characterization | None:
    """``profiles``: the AAG bytes of each profile (0 to 58 groups); ``sounds_heard``: the
    distinct MNBC_SOUND.INDs of the run. None when there is nothing to report."""
    measured = [p for p in profiles if p]
    if measured:
        groups = [_average(measured, g) for g in range(NUM_GROUPS)]
        known = sum(1 for value in groups if value is not None)
        aag = bytes(UNMEASURED_AAG_DB if value is None else value for value in groups)
        return Characterization(len(measured), aag, known)
    heard = max(sounds_heard, len(profiles))  # an empty profile still says a sound was heard
    if heard == 0:
        return None
    return Characterization(heard, bytes([UNMEASURED_AAG_DB]) * NUM_GROUPS, 0)


def _average(profiles: Sequence[bytes], group: int) -> int | None:
    values = [p[group] for p in profiles if len(p) > group]
    return round(sum(values) / len(values)) if values else None
