"""The gate on the loop, in process: a real ``Sep2Store`` and ``SiteResources`` fed what the
simulated vehicle's documents say, in the profile's order, with a fake clock, an approval
list and a journal that can fail. It binds one vehicle per plug-in, decides once the exchange
is complete, journals before it energizes, and revokes on each of its inputs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from firmware.approvals.approval_list import Entry, Status
from firmware.j3072.config import J3072Config
from firmware.j3072.decision import Decision
from firmware.j3072.gate import Gate
from firmware.j3072.held import UNREADABLE, HeldViolation
from firmware.j3072.peer import PeerCheck
from firmware.j3072.session import HEARTBEAT_LOSS_NS, STOP_GRACE_NS
from firmware.pilot.levels import PilotState
from firmware.sep2.config import SiteConfig
from firmware.sep2.functions import Mode, SiteFunction
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

    def __init__(self, peer: tuple[object, ...] = ("fe80::1", 443, 0, 7)) -> None:
        self.closing = False
        self.peer = peer

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> object:
        return self.peer if name == "peername" else None


@dataclass
class FakeSep2:
    store: Sep2Store
    site: SiteResources
    energized: dict[str, bool] = field(default_factory=dict)
    changes: int = 0  # energize flips

    def set_energize(self, lfdi: str, value: bool) -> None:
        if self.energized.get(lfdi) != value:
            self.changes += 1
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
    def __init__(
        self,
        site: SiteConfig = SITE,
        hold_ns: int = 0,
        peer: PeerCheck | None = None,
        follow_ns: int = 0,
        held: HeldViolation | None = None,
    ) -> None:
        self.now = 0
        self.gate: Gate
        self.store = Sep2Store(lambda event: self.gate.on_pev(event))
        self.sep2 = FakeSep2(self.store, SiteResources(site, "E" * 40, clock_ns=lambda: self.now))
        approved = {APPROVED_ISM: Entry(Status.APPROVED, 5000)}
        self.approvals = FakeApprovals(FakeList(approved))
        self.journal = FakeJournal()
        j3072 = J3072Config(hold_s=hold_ns / 1e9, follow_s=follow_ns / 1e9)
        self.gate = Gate(site, j3072, self.sep2, self.approvals,  # type: ignore[arg-type]
                         self.journal, lambda: self.now, peer, held)  # fmt: skip
        self.transports: dict[str, Transport] = {}

    def connect(self, profile: Profile, lfdi: str, peer: str = "fe80::1") -> None:
        record = self.store.record_for(PeerIdentity(lfdi, 1, b"", None))
        transport = self.transports[lfdi] = Transport((peer, 443, 0, 7))
        self.store.saw_connection(lfdi, transport)  # type: ignore[arg-type]
        del record

    def exchange(self, profile: Profile, lfdi: str, *, limits_first: bool = True,
                 respond: bool = True, peer: str = "fe80::1") -> None:  # fmt: skip
        """The profile's order: site limits, PEV data, controls, Responses."""
        self.connect(profile, lfdi, peer)
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
        availability = documents.der_availability(profile, site, 0)
        self.store.put(record, "der_availability", availability, self.now)
        self.store.put(record, "power_status", documents.power_status(profile, site, 0), self.now)
        self.store.note_read(record, "default_control")
        self.store.note_read(record, "controls")
        if respond:
            for control in self.sep2.site.controls(record):
                assert control.mrid is not None
                for status in (STATUS_RECEIVED, STATUS_STARTED):
                    response = documents.control_response(lfdi, control.mrid, status, 0)
                    self.store.add_response(record, response)

    def put_device_information(self, profile: Profile, lfdi: str) -> None:
        record = self.store.get(lfdi)
        assert record is not None
        info = documents.device_information(profile, lfdi, 0)
        self.store.put(record, "device_information", info, self.now)

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
    assert world.journal.decisions == [
        Decision(True, (), 5000, APPROVED_ISM, f"list: ISM {APPROVED_ISM} approved")
    ]
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


def test_no_open_connection_is_no_loss_while_heartbeats_come(world: World) -> None:
    """§4.8.1.1: heartbeats alone tell whether the vehicle is there. A vehicle that opens a
    connection per request has none open between two of them (this project once revoked
    after 2 s without one)."""
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.transports[LFDI].closing = True
    for _ in range(8):
        world.now += S
        world.heartbeat(LFDI)
        world.gate.poll()
        assert world.gate.authorized


def test_three_missed_heartbeats_do_not_revoke_ten_do(world: World) -> None:
    """§4.8.1.1: 10 consecutive missed 1 s heartbeats, with half a second of margin."""
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.heartbeat(LFDI)
    world.now += 4 * S  # three missed
    world.gate.poll()
    assert world.gate.authorized
    world.heartbeat(LFDI)
    world.now += HEARTBEAT_LOSS_NS - 1
    world.gate.poll()
    assert world.gate.authorized
    world.now += 1
    world.gate.poll()
    assert not world.gate.authorized
    assert world.gate.snapshot()["reasons"] == ["10 heartbeats missed"]


def test_resuming_needs_three_consecutive_on_time_heartbeats(world: World) -> None:
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.now += HEARTBEAT_LOSS_NS
    world.gate.poll()
    assert not world.gate.authorized
    for gap in (S, S, 2 * S, S, S):  # the late third starts the count again
        world.now += gap
        world.heartbeat(LFDI)
        world.gate.poll()
    assert world.gate.authorized, "the three on time after the late one"
    assert world.journal.decisions[-1].granted


def test_a_violation_holds_across_a_lost_link_and_a_re_pairing_until_unplug(
    world: World,
) -> None:
    """Over the limit, the vehicle drops its PLC link and pairs again without unplugging:
    the new session starts violated. Only state A clears it."""
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.gate.on_meter(6000.0, main_closed=True)
    assert not world.gate.authorized and world.gate.violation is not None
    world.gate.on_link(False)
    world.exchange(PROFILES["certified-4q"], LFDI)  # re-paired, the whole exchange again
    for _ in range(5):
        world.now += S
        world.heartbeat(LFDI)
        world.gate.poll()
    assert not world.gate.authorized
    assert world.gate.snapshot()["reasons"][0].startswith("a violation earlier in this plug-in")
    world.gate.plugged(False)
    world.gate.plugged(True)
    assert world.gate.violation is None
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert world.gate.authorized, "a new plug-in starts clean"


def test_a_violation_outlives_a_restart_until_the_pilot_shows_a(tmp_path: Path) -> None:
    """The daemon restarts mid-plug-in (a crash, an update): the violation is still held, and
    the re-paired vehicle is not authorized; state A clears it, on disk too."""
    first = World(held=HeldViolation(tmp_path))
    first.gate.plugged(True)
    first.exchange(PROFILES["certified-4q"], LFDI)
    first.gate.on_meter(6000.0, main_closed=True)
    assert (tmp_path / "j3072-violation.json").exists()
    again = World(held=HeldViolation(tmp_path))  # the restarted daemon
    assert again.gate.violation == "discharge 6000 W over the 5000 W in effect"
    again.gate.plugged(True)  # the pilot shows the vehicle still there
    again.exchange(PROFILES["certified-4q"], LFDI)
    assert not again.gate.authorized
    assert again.gate.snapshot()["reasons"][0].startswith("a violation earlier in this plug-in")
    again.gate.plugged(False)
    assert again.gate.violation is None and not (tmp_path / "j3072-violation.json").exists()


def test_a_restart_that_finds_the_vehicle_gone_clears_the_held_violation(tmp_path: Path) -> None:
    HeldViolation(tmp_path).save("discharge 6000 W over the 5000 W in effect")
    restarted = World(held=HeldViolation(tmp_path))
    restarted.gate.plugged(False)  # the first pilot reading: state A
    assert restarted.gate.violation is None
    assert HeldViolation(tmp_path).load() is None


@pytest.mark.parametrize("content", [b"", b"{", b'{"reason": 3}', b"[1]", b"x" * 5000, b"[" * 4000])
def test_a_held_violation_that_cannot_be_read_still_holds(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "j3072-violation.json").write_bytes(content)
    assert HeldViolation(tmp_path).load() == UNREADABLE


def test_discharge_while_not_authorized_is_a_violation_too(world: World) -> None:
    world.gate.on_meter(2000.0, main_closed=True)
    assert world.gate.drain_open_main() and world.gate.violation is not None
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert not world.gate.authorized


def test_a_denial_holds_before_a_grant_authorizes_again() -> None:
    """A vehicle flipping its reported ISM cannot cycle the discharge path: after a denial
    (or revocation) a grant waits the hold."""
    held = World(hold_ns=10 * S)
    held.gate.plugged(True)
    profile = PROFILES["certified-4q"]
    held.exchange(profile, LFDI)
    assert held.gate.authorized
    held.sep2.changes = flips = 0
    for step in range(60):  # every 150 ms for 9 s: unapproved, approved, unapproved, ...
        held.now += 150_000_000
        ism = APPROVED_ISM if step % 2 else "NOT-ON-THE-LIST"
        held.put_device_information(replace(profile, ism=ism), LFDI)
        held.gate.poll()
        flips += held.sep2.changes
        held.sep2.changes = 0
    assert flips == 1, "revoked once, never re-authorized within the hold"
    held.now += 10 * S
    held.put_device_information(profile, LFDI)
    held.gate.poll()
    assert not held.gate.authorized, "the hold is over, but the vehicle has been silent"
    for _ in range(3):
        held.now += S
        held.heartbeat(LFDI)
        held.gate.poll()
    assert held.gate.authorized, "after the hold, 3 on-time heartbeats and the grant count"


def test_a_hold_ending_does_not_authorize_a_silent_vehicle() -> None:
    """A revocation, one heartbeat, then silence: when the hold ends nothing authorizes (the
    hold once handed the grant back without asking the heartbeats)."""
    held = World(hold_ns=10 * S)
    held.gate.plugged(True)
    held.exchange(PROFILES["certified-4q"], LFDI)
    held.heartbeat(LFDI, asleep=True)
    assert not held.gate.authorized
    held.now += S
    held.heartbeat(LFDI)
    for _ in range(12):
        held.now += S
        held.gate.poll()
        assert not held.gate.authorized


def test_the_meter_limit_is_the_one_in_effect_with_max_lim_w() -> None:
    """opModMaxLimW 50 % of the vehicle's 7,200 W setMaxW: 3,600 W is the limit, however
    high the approval list's cap (5,000 W)."""
    site = replace(SITE, functions=(SiteFunction(Mode.MAX_LIM_W, value=50.0),))
    capped = World(site=site)
    capped.gate.plugged(True)
    capped.exchange(PROFILES["certified-4q"], LFDI)
    assert capped.gate.limit_w == 3600
    capped.gate.on_meter(3600 * 1.01, main_closed=True)
    assert capped.gate.authorized, "within the meter's tolerance"
    capped.gate.on_meter(3700.0, main_closed=True)
    assert not capped.gate.authorized
    assert capped.gate.snapshot()["reasons"] == ["discharge 3700 W over the 3600 W in effect"]


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


EV_MAC = "02:eb:5e:00:ee:01"
NEIGHBOURS = {("fe80::1", "plc0"): EV_MAC, ("2001:db8::9", "plc0"): "02:00:00:00:00:99"}


def _on_cable(check: PeerCheck | None = None) -> World:
    check = check or PeerCheck("plc0", lambda address, dev: NEIGHBOURS.get((address, dev)),
                               lambda name: 7)  # fmt: skip
    made = World(peer=check)
    made.gate.plugged(True)
    return made


def test_with_a_plc_link_nothing_binds_before_slac_matches() -> None:
    """§4.6.1 via SLAC: one vehicle per plug-in, the one matched on the pilot."""
    world = _on_cable()
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert world.gate.bound is None and not world.gate.authorized


def test_the_matched_vehicle_on_the_plc_link_is_bound() -> None:
    world = _on_cable()
    world.gate.slac_matched(EV_MAC.upper())
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert world.gate.authorized


@pytest.mark.parametrize(
    ("peer", "why"),
    [
        ("2001:db8::9", "2001:db8::9 is 02:00:00:00:00:99 on plc0, not the matched " + EV_MAC),
        ("2001:db8::77", "2001:db8::77 is not a neighbour on plc0"),
        ("192.0.2.7", "192.0.2.7 is not an IPv6 peer on the PLC link"),
    ],
)
def test_a_client_that_is_not_the_vehicle_on_the_cable_is_ignored(peer: str, why: str) -> None:
    """A valid certificate from elsewhere (the site through a bridge, another host on the
    link) binds nothing, even as the first client of the plug-in; the vehicle then does."""
    check = PeerCheck("plc0", lambda address, dev: NEIGHBOURS.get((address, dev)), lambda n: 7)
    world = _on_cable(check)
    world.gate.slac_matched(EV_MAC)
    other = "C" * 40
    world.exchange(PROFILES["certified-4q"], other, peer=peer)
    assert world.gate.bound is None
    assert check.refusal(world.store.peers(other)) == why
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert world.gate.bound is not None and world.gate.bound.lfdi == LFDI
    assert world.gate.authorized


def test_unplugging_forgets_the_match() -> None:
    world = _on_cable()
    world.gate.slac_matched(EV_MAC)
    world.gate.plugged(False)
    world.gate.plugged(True)
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert world.gate.bound is None, "a new plug-in needs its own SLAC match"


def test_a_refused_re_authorization_is_journaled_before_any_later_grant() -> None:
    """The journal refuses a re-authorization: the next identical grant must be journaled
    afresh, not taken as already recorded."""
    world = World()
    world.gate.plugged(True)
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.now += HEARTBEAT_LOSS_NS
    world.gate.poll()
    assert not world.gate.authorized
    world.journal.works = False
    for _ in range(4):
        world.now += S
        world.heartbeat(LFDI)
        world.gate.poll()
    assert not world.gate.authorized, "a grant the journal cannot record is no grant"


def test_losing_the_link_while_discharging_leaves_the_vehicle_its_3_s() -> None:
    """§4.8.1.2: the session ends with the link, but discharge seen in the next 3 s is the
    vehicle stopping, not a violation."""
    world = World()
    world.gate.plugged(True)
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.gate.on_link(False)
    world.gate.on_meter(3000.0, main_closed=True)
    assert world.gate.drain_open_main() == [] and world.gate.violation is None
    world.now += STOP_GRACE_NS
    world.gate.on_meter(3000.0, main_closed=True)
    assert world.gate.drain_open_main() and world.gate.violation is not None


def test_a_link_local_peer_on_another_interface_is_not_the_vehicle() -> None:
    check = PeerCheck("plc0", lambda address, dev: EV_MAC, lambda name: 7)
    check.matched(EV_MAC)
    assert check.refusal([("fe80::1", 443, 0, 3)]) == (
        "fe80::1 is link-local on another interface than plc0"
    )
    assert check.refusal([("fe80::1", 443, 0, 7)]) is None


def test_each_address_is_looked_up_once_per_match() -> None:
    lookups: list[str] = []
    check = PeerCheck("plc0", lambda address, dev: lookups.append(address) or None, lambda n: 7)
    check.matched(EV_MAC)
    for port in range(50):
        check.refusal([("2001:db8::5", port, 0, 0)])
    assert lookups == ["2001:db8::5"]


def test_a_meter_that_cannot_show_discharge_stopped_opens_main_after_3_s() -> None:
    """Revoked for an unhealthy meter, the vehicle has §4.8.1.2's 3 s to stop; a meter
    still untrusted then cannot show it did: main opens, once."""
    world = World()
    world.gate.plugged(True)
    world.exchange(PROFILES["certified-4q"], LFDI)
    assert world.gate.authorized
    world.gate.on_meter_health("no good reading for 501 ms", main_closed=True)
    assert not world.gate.authorized
    world.now += STOP_GRACE_NS - 1
    world.gate.on_meter_health("no good reading for 3501 ms", main_closed=True)
    assert world.gate.drain_open_main() == []
    world.now += 1
    world.gate.on_meter_health("no good reading for 3501 ms", main_closed=True)
    reasons = world.gate.drain_open_main()
    assert reasons == ["the meter cannot show that discharge stopped: no good reading for 3501 ms"]
    world.now += S
    world.gate.on_meter_health("no good reading for 4501 ms", main_closed=True)
    assert world.gate.drain_open_main() == [], "once"


def test_a_meter_trusted_again_within_3_s_or_main_open_opens_nothing() -> None:
    world = World()
    world.gate.plugged(True)
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.gate.on_meter_health("exception 6", main_closed=True)
    world.now += 2 * S
    world.gate.on_meter_health(None, main_closed=True)
    world.now += 2 * S
    world.gate.on_meter_health("exception 6", main_closed=True)  # counted afresh
    world.now += 2 * S
    world.gate.on_meter_health("exception 6", main_closed=False)  # the vehicle paused
    world.now += 5 * S
    world.gate.on_meter_health("exception 6", main_closed=False)
    assert world.gate.drain_open_main() == []


def test_an_untrusted_meter_opens_nothing_for_a_vehicle_never_authorized() -> None:
    """A plain J1772 car (or a V2G one never granted) charges on: the discharge path never
    closed for it, so there is nothing the meter must show stopped (docs/meter.md)."""
    world = World()
    world.gate.plugged(True)
    world.gate.on_meter_health("the board has no meter", main_closed=True)
    world.now += 60 * S
    world.gate.on_meter_health("the board has no meter", main_closed=True)
    assert world.gate.drain_open_main() == []


def test_an_authorization_earlier_in_the_plug_in_counts_until_unplug() -> None:
    world = World()
    world.gate.plugged(True)
    world.exchange(PROFILES["certified-4q"], LFDI)
    world.gate.on_link(False)  # the session ends; the vehicle is still on the cable
    world.gate.on_meter_health("exception 4", main_closed=True)
    world.now += STOP_GRACE_NS
    world.gate.on_meter_health("exception 4", main_closed=True)
    assert world.gate.drain_open_main()
    world.gate.plugged(False)
    world.gate.plugged(True)
    world.gate.on_meter_health("exception 4", main_closed=True)
    world.now += 10 * S
    world.gate.on_meter_health("exception 4", main_closed=True)
    assert world.gate.drain_open_main() == [], "a new plug-in, nothing authorized yet"
