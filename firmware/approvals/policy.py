"""What a utility may choose to check before a vehicle discharges (``[approvals] policy``).

The V2G-AC use case lets the utility keep an active approval database that the EVSE checks
after a vehicle connects, or rely only on the J3072 certification tag the vehicle reports:

- ``list`` (the default): the vehicle's ISM number must be approved on a signed list in force;
- ``certification-only``: no list is consulted; the certification tag alone (checked in
  every policy) qualifies the inverter, and no list's cap applies.

On top of either, the site may name vehicles by LFDI: ``deny_lfdis`` are never granted, and a
non-empty ``allow_lfdis`` grants only those. Pure values; the decision table applies them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PolicyKind(enum.Enum):
    LIST = "list"
    CERTIFICATION_ONLY = "certification-only"


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    kind: PolicyKind = PolicyKind.LIST
    allow_lfdis: frozenset[str] = frozenset()  # upper-case hex; empty: every LFDI may be
    deny_lfdis: frozenset[str] = frozenset()

    def lfdi_problem(self, lfdi: str) -> str | None:
        """Why the site's LFDI lists refuse this vehicle, or None."""
        key = lfdi.upper()
        if key in self.deny_lfdis:
            return f"LFDI {key} is on the site's deny list"
        if self.allow_lfdis and key not in self.allow_lfdis:
            return f"LFDI {key} is not on the site's allow list"
        return None

    def describe(self) -> str:
        lists = []
        if self.allow_lfdis:
            lists.append(f"{len(self.allow_lfdis)} LFDI(s) allowed")
        if self.deny_lfdis:
            lists.append(f"{len(self.deny_lfdis)} LFDI(s) denied")
        return self.kind.value + (f" ({', '.join(lists)})" if lists else "")
