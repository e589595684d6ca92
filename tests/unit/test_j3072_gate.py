"""The gate on the loop, in process: a real ``Sep2Store`` and ``SiteResources`` fed what the
simulated vehicle's documents say, in the profile's order, with a fake clock, an approval
list and a journal that can fail. It binds one vehicle per plug-in, decides once the exchange
is complete, journals before it energizes, and revokes on each of its inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from firmware.approvals.approval_list import Entry, Status
from firmware.j3072.config import MappingConfig
from firmware.j3072.decision import Decision
from firmware.j3072.gate import TLS_GRACE_NS, Gate
from firmware.pilot.levels import PilotState
from firmware.sep2.config import Mode, SiteConfig, SiteFunction
from firmware.sep2.response import STATUS_RECEIVED, STATUS_STARTED
from firmware.sep2.site import SiteResources
from firmware.sep2.store import Sep2Store
from firmware.sep2.tls import PeerIdentity
from hil.pev import documents
from hil.pev.profiles import APPROVED_ISM, PROFILES, Profile

S = 1_000_000_000
SITE = SiteConfig(service_area="AREA", functions=(SiteFunction(Mode.MAX_LIM_W, value=100.0),))


class Transport:
    """Stands in for a TLS connection: the store only asks whether it is closing."""

    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


@dataclass
class FakeSep2:
    store: Sep2Store
    site: SiteResources
    energized: dict[str, bool] = field(default_factory=dict)

    def set_energize(self, lfdi: str, value: bool) -> None:
        self.energized[lfdi] = value


@dataclass
class FakeList:
    entries: dict[str, Entry]

    def lookup(self, ism: str) -> Entry | None:
        return self.entries.get(ism)


@dataclass
class FakeApprovals:
    current: FakeList | None

    def in_force(self) -> FakeList | None:
        return self.current


@dataclass
class FakeJournal:
    works: bool = True
    decisions: list[Decision] = field(default_factory=list)
    identified: dict[str, str | None] = field(default_factory=dict)

    def decision(self, decision: Decision) -> bool:
        if self.works:
            self.decisions.append(decision)
        return self.works

    def identify(self, **fields: str | None) -> None:
        self.identified.update(fields)


class World:
    def __init__(self) -> None:
        self.now = 0
        self.gate: Gate
        self.store = Sep2Store(lambda event: self.gate.on_pev(event))
        self.sep2 = FakeSep2(self.store, SiteResources(SITE, "E" * 40, 0))
        approved = {APPROVED_ISM: Entry(Status.APPROVED, 5000)}
        self.approvals = FakeApprovals(FakeList(approved))
        self.journal = FakeJournal()
        self.gate = Gate(SITE, MappingConfig(), self.sep2, self.approvals,  # type: ignore[arg-type]
                         self.journal, lambda: self.now)  # fmt: skip
        self.transports: dict[str, Transport] = {}

    def connect(self, profile: Profile, lfdi: str) -> None:
        record = self.store.record_for(PeerIdentity(lfdi, 1, b"", None))
        transport = self.transports[lfdi] = Transport()
        self.store.saw_connection(lfdi, transport)  # type: ignore[arg-type]
        del record

    def exchange(self, profile: Profile, lfdi: str, *, limits_first: bool = True,
                 respond: bool = True) -> None:  # fmt: skip
        """The profile's order: site limits, PEV data, controls, Responses."""
        self.connect(profile, lfdi)
        record = self.store.get(lfdi)
        assert record is not None
        site = self.sep2.site.settings(0)
        if limits_first:
            self.store.note_read(record, "site_limits")
        self.store.put(record, "der_settings", documents.der_settings(profile, site, 0), self.now)
        if not limits_first:
            self.store.note_read(record, "site_limits")
        info = documents.device_information(profile, lfdi, 0)
        self.store.put(record, "device_information", info, self.now)
        self.store.put(record, "der_capability", documents.der_capability(profile), self.now)
        self.store.note_read(record, "default_control")
        self.store.note_read(record, "controls")
        if respond:
            for control in self.sep2.site.controls(record.n):
                assert control.mrid is not None
                for status in (STATUS_RECEIVED, STATUS_STARTED):
                    response = documents.control_response(lfdi, control.mrid, status, 0)
                    self.store.add_response(record, response)

    def heartbeat(self, lfdi: str, asleep: bool = False) -> None:
        record = self.store.get(lfdi)
        assert record is not None
        status = documents.der_status(PROFILES["certified-4q"], asleep, 0, 0)
        self.store.put(record, "der_status", status, self.now)


LFDI = "A" * 40


@pytest.fixture
def world() -> World:
    made = World()
    made.gate.plugged(True)
    return made


def test_an_approved_vehicle_is_granted_once_every_response_is_in(world: World) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI, respond=False)
    assert not world.gate.authorized and world.gate.snapshot()["state"] == "pending"
    assert world.journal.decisions == [], "nothing is decided before the exchange completes"
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert world.gate.authorized and world.sep2.energized[LFDI] is True
    assert world.journal.decisions == [Decision(True, (), 5000, APPROVED_ISM)]
    assert world.journal.identified == {
        "lfdi": LFDI,
        "ism": APPROVED_ISM,
        "vin": PROFILES["certified-4q"].vin,
    }
    assert world.gate.snapshot()["state"] == "authorized"


def test_a_grant_the_journal_cannot_record_is_a_denial(world: World) -> None:
    world.journal.works = False
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert not world.gate.authorized and world.sep2.energized.get(LFDI) is not True
    assert world.gate.snapshot()["reasons"] == ["the journal cannot record the decision"]


def test_settings_put_before_the_site_limits_are_read_is_denied(world: World) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI, limits_first=False)
    assert not world.gate.authorized
    assert "DERSettings PUT before the site limits were read" in world.gate.snapshot()["reasons"]


def test_a_second_vehicle_on_the_server_is_not_this_session(world: World) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.exchange(PROFILES["certified-4q"], "B" * 40)
    assert world.gate.snapshot()["lfdi"] == LFDI
    assert "B" * 40 not in world.sep2.energized


def test_nothing_binds_while_unplugged(world: World) -> None:
    world.gate.plugged(False)
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert world.gate.bound is None and not world.gate.authorized


def test_a_new_list_revoking_the_ism_revokes_at_the_next_poll(world: World) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert world.approvals.current is not None
    world.approvals.current.entries[APPROVED_ISM] = Entry(Status.REVOKED)
    world.gate.poll()
    assert not world.gate.authorized and world.sep2.energized[LFDI] is False
    assert world.journal.decisions[-1].reasons == (
        f"ISM {APPROVED_ISM} revoked on the approval list",
    )


def test_an_expired_list_revokes(world: World) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.approvals.current = None
    world.gate.poll()
    assert not world.gate.authorized
    assert world.gate.snapshot()["reasons"] == [
        f"ISM {APPROVED_ISM} not checked: no valid approval list in force"
    ]


def test_the_tls_session_closing_revokes_and_heartbeats_over_a_new_one_resume(
    world: World,
) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.transports[LFDI].closing = True
    world.gate.poll()
    world.now += TLS_GRACE_NS - 1
    world.gate.poll()
    assert world.gate.authorized, "a reconnect between two requests is not a loss"
    world.now += 1
    world.gate.poll()
    assert not world.gate.authorized
    assert world.gate.snapshot()["reasons"] == ["the vehicle's TLS session is gone"]
    world.store.saw_connection(LFDI, Transport())  # type: ignore[arg-type]
    for beat in range(3):
        world.now += S
        world.heartbeat(LFDI)
        assert world.gate.authorized == (beat == 2)


def test_losing_the_plc_link_ends_the_session_and_forgets_the_exchange(world: World) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.gate.on_link(False)
    assert world.gate.bound is None and world.sep2.energized[LFDI] is False
    record = world.store.get(LFDI)
    assert record is not None and record.device_information is None and not record.reads
    assert world.journal.decisions[-1].reasons == ("revoked: the PLC link was lost",)


def test_the_pilot_leaving_c_revokes_and_coming_back_resumes_after_3_heartbeats(
    world: World,
) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.gate.on_pilot(PilotState.C)
    world.gate.on_pilot(PilotState.B)
    assert not world.gate.authorized
    world.gate.on_pilot(PilotState.C)
    assert not world.gate.authorized, "not at once"
    for _ in range(3):
        world.now += S
        world.heartbeat(LFDI)
    assert world.gate.authorized


def test_discharge_with_no_session_while_main_is_closed_opens_main(world: World) -> None:
    world.gate.on_meter(2000.0, main_closed=False)
    assert world.gate.drain_open_main() == [], "main open: nothing flows through it"
    world.gate.on_meter(2000.0, main_closed=True)
    assert world.gate.drain_open_main() == ["discharge 2000 W with no J3072 session"]


def test_discharge_over_the_authorized_limit_revokes(world: World) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.gate.on_meter(4900.0, main_closed=True)
    assert world.gate.authorized
    world.gate.on_meter(5100.0, main_closed=True)
    assert not world.gate.authorized and world.sep2.energized[LFDI] is False
