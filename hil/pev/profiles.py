"""The simulated vehicles: what each one is, says and does, as frozen values.

A profile names its credential in the test PKI (``firmware.sep2.pki.init_pki``), the
DeviceInformation strings the EVSE judges (docs/v2g-ac-profile.md, "Default field mapping":
ISM in ``mfModel``, certification in ``mfInfo``, VIN in ``mfSerNum``), its ratings, how it
derives the DERSettings it PUTs from the site limits, and its session behaviour (heartbeats,
subscription or polling, sleep/wake). Each misbehaving profile differs from ``certified-4q``
in exactly one respect, so that a denial can only have one cause. Building the documents is
``hil.pev.documents``' job; running the session is ``hil.pev.client``'s.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

CERTIFIED = "J3072;date=2025-06-01"  # "J3072" + optional ";" parameters = certified
NOT_CERTIFIED = "uncertified"
APPROVED_ISM = "ISM-2025-0001"
UNAPPROVED_ISM = "ISM-9999-UNAPPROVED"


@dataclass(frozen=True, slots=True)
class Ratings:
    """Nameplate ratings (DERCapability). Reactive ratings of 0 mean none that way."""

    max_w: int
    max_charge_w: int
    max_discharge_w: int
    max_wh: int
    max_va: int
    max_var: int = 0  # injection (over-excited)
    max_var_neg: int = 0  # absorption (under-excited)
    normal_category: int = 1  # IEEE 1547 normal performance category B
    abnormal_category: int = 2  # IEEE 1547 abnormal performance category III

    @property
    def four_quadrant(self) -> bool:
        """Our reading of "4-quadrant": reactive capability in both directions."""
        return self.max_var > 0 and self.max_var_neg > 0


@dataclass(frozen=True, slots=True)
class Battery:
    """What PowerStatus/PEVInfo and DERStatus report about the battery."""

    soc_pct: float = 55.0
    target_soc_pct: float = 80.0
    departure_in_s: int = 8 * 3600


class SettingsPolicy(enum.Enum):
    """How the PEV turns the site limits it read first into the DERSettings it PUTs."""

    SITE_ADJUSTED = "site-adjusted"  # its own limits, capped at the site's setMaxW (§4.6.2)
    ABOVE_SITE = "above-site"  # setMaxW at 150 % of the site's: a settings violation
    OTHER_V_REF = "other-v-ref"  # setVRef 10 % above the site's: not the site's reference
    # no setMaxWh, setESDelay 0 and setESHighVolt 120 %: an exchange that is not whole
    CARELESS = "careless"


@dataclass(frozen=True, slots=True)
class SleepWake:
    """Sleep ``after_s`` into the heartbeat phase (inverterStatus 2) for ``for_s`` (§4.8.3)."""

    after_s: float
    for_s: float


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    credential: str  # file stem in the PKI directory: "<stem>.pem" and "<stem>.key"
    ism: str  # DeviceInformation/mfModel
    certification: str  # DeviceInformation/mfInfo
    vin: str  # DeviceInformation/mfSerNum
    ratings: Ratings
    settings: SettingsPolicy = SettingsPolicy.SITE_ADJUSTED
    heartbeats: int | None = None  # None: heartbeat until the end; N: silent after N
    subscribe: bool = False  # True: subscribe to DefaultDERControl; False: poll it every 1 s
    sleep: SleepWake | None = None
    battery: Battery = Battery()
    expect_tls_failure: bool = False  # the profile "succeeds" when the handshake fails
    respond: bool = True  # False: never POSTs the Responses its DERControls require
    connection_per_request: bool = False  # True: a new TLS connection for every request
    follows_changes: bool = True  # False: never looks at its DERControls after the first read

    def cert_file(self, pki_dir: Path) -> Path:
        return pki_dir / f"{self.credential}.pem"

    def key_file(self, pki_dir: Path) -> Path:
        return pki_dir / f"{self.credential}.key"

    @property
    def quadrants(self) -> str:
        return "4Q" if self.ratings.four_quadrant else "2Q"


RATINGS_4Q = Ratings(
    max_w=9600,
    max_charge_w=11000,
    max_discharge_w=9600,
    max_wh=77000,
    max_va=11500,
    max_var=4800,
    max_var_neg=4800,
)
RATINGS_2Q = replace(RATINGS_4Q, max_var=0, max_var_neg=0)
RATINGS_OVER = replace(RATINGS_4Q, max_w=19200, max_discharge_w=19200, max_va=19200)

CERTIFIED_4Q = Profile(
    name="certified-4q",
    credential="pev-certified-4q",
    ism=APPROVED_ISM,
    certification=CERTIFIED,
    vin="5TSTV2G4000000001",
    ratings=RATINGS_4Q,
    subscribe=True,
)

PROFILES: Mapping[str, Profile] = {
    p.name: p
    for p in (
        CERTIFIED_4Q,
        # certified-4q without reactive ratings (same credential): to try a 4Q-only site
        replace(CERTIFIED_4Q, name="certified-2q", ratings=RATINGS_2Q, subscribe=False),
        replace(
            CERTIFIED_4Q,
            name="uncertified",
            credential="pev-uncertified",
            certification=NOT_CERTIFIED,
            vin="5TSTV2G4000000002",
            subscribe=False,
        ),
        replace(
            CERTIFIED_4Q,
            name="unapproved-ism",
            credential="pev-unapproved-ism",
            ism=UNAPPROVED_ISM,
            vin="5TSTV2G4000000003",
            subscribe=False,
        ),
        replace(
            CERTIFIED_4Q,
            name="over-limits",
            credential="pev-over-limits",
            vin="5TSTV2G4000000004",
            ratings=RATINGS_OVER,
            settings=SettingsPolicy.ABOVE_SITE,
            subscribe=False,
        ),
        # certified-4q with one fault each (same credential): denials the decision names
        replace(
            CERTIFIED_4Q, name="other-v-ref", settings=SettingsPolicy.OTHER_V_REF, subscribe=False
        ),
        replace(CERTIFIED_4Q, name="no-responses", respond=False, subscribe=False),
        replace(
            CERTIFIED_4Q,
            name="bad-certificate",
            credential="bad/pev-untrusted",
            vin="5TSTV2G4000000005",
            subscribe=False,
            expect_tls_failure=True,
        ),
        replace(
            CERTIFIED_4Q,
            name="silent",
            credential="pev-silent",
            vin="5TSTV2G4000000006",
            heartbeats=3,
            subscribe=False,
        ),
    )
}
