"""The J3072 gate end to end: the running daemon on the mock board, its virtual rig over the
pseudo-terminal, the mock PLC world (SLAC), and the simulated vehicle over real TLS with real
certificates, against a utility approval list signed by a test key.

Each timing is read where its limit applies: the rig's ``WAIT:RELAY`` (from the last
stimulus, on the rig's clock) or the wall clock around a stimulus the rig cannot see (an
approval-list install, the vehicle falling silent).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from firmware.journal.store import Journal
from firmware.sep2.identity import lfdi, load_certificate
from firmware.sep2.pki import PkiLayout, init_pki
from hal import Relay
from hil.pev.background import BackgroundPev
from hil.pev.profiles import APPROVED_ISM, PROFILES, Profile, SettingsPolicy, SleepWake
from hil.rig import RigError
from hil.utility import UtilityAuthority
from tests.integration.conftest import Running, StartDaemon

pytestmark = pytest.mark.integration

AREA = "TEST-AREA-NORTH"
LIST_LIMIT_W = 5000  # the approval entry's cap: the authorized limit (site 7200, PEV 7200)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki") / "pki")


@dataclass
class Site:
    running: Running
    pki: PkiLayout
    state: Path
    config: Path
    utility: UtilityAuthority
    url: str

    def install(self, jws: str) -> float:
        """Install with the CLI as an operator would; the monotonic time it finished."""
        path = self.state.parent / "new-list.jws"
        path.write_text(jws)
        command = [sys.executable, "-m", "firmware", "approvals", "install", str(path),
                   "--config", str(self.config)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return time.monotonic()

    def status(self) -> dict[str, Any]:
        """``evse-gatekeeper status --json``, as the site owner would ask."""
        command = [sys.executable, "-m", "firmware", "status", "--json",
                   "--config", str(self.config)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def control(self, *words: str) -> subprocess.CompletedProcess[str]:
        """``evse-gatekeeper control …``, as the site owner would change a function."""
        command = [sys.executable, "-m", "firmware", "control", *words,
                   "--config", str(self.config)]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    def pev(self, profile: Profile) -> BackgroundPev:
        return BackgroundPev(self.url, self.pki.directory, profile).start()

    def plug_in(self) -> None:
        """Plug in and let the vehicle's modem match (SLAC on the mock PLC world)."""
        rig, daemon = self.running.rig, self.running.daemon
        rig.command("EV:STATE B")
        rig.wait_duty(1, 99, 1000)
        rig.command("EV:PLC ON")
        daemon.wait_for("plc.link state=up", timeout_s=10)


def make_site(
    start_daemon: StartDaemon,
    pki: PkiLayout,
    tmp_path: Path,
    policy: dict[str, Any] | None = None,
    **extra: Any,
) -> Site:
    utility = UtilityAuthority(tmp_path, AREA)
    state = tmp_path / "gated-state"
    utility.install(state, approve={APPROVED_ISM: LIST_LIMIT_W})
    d = pki.directory
    running = start_daemon(
        tls={
            "ca_file": str(d / "serca.pem"),
            "cert_file": str(d / "evse.pem"),
            "key_file": str(d / "evse.key"),
        },
        sep2={"enabled": True, "host": "::1", "port": 0},
        approvals={**utility.config, **(policy or {})},
        site={
            "service_area": AREA,
            "max_w": 7200,
            "functions": [{"mode": "max-lim-w", "percent": 100}],
        },
        plc={"interface": "mock", "duty": "nominal", "fallback": "basic-charging"},
        paths={"state_dir": str(state)},
        **extra,
    )
    listening = next(line for line in running.daemon.lines if "sep2.listening" in line)
    url = f"https://[::1]:{int(listening.rsplit('port=', 1)[1])}"
    return Site(running, pki, state, tmp_path / "config0.toml", utility, url)


@pytest.fixture
def site(start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path) -> Site:
    return make_site(start_daemon, pki, tmp_path)


def authorized_and_discharging(site: Site, profile: Profile) -> BackgroundPev:
    """Plug in, run the exchange, request charge: the discharge relay closes."""
    site.plug_in()
    pev = site.pev(profile)
    site.running.daemon.wait_for("j3072.authorized", timeout_s=15)
    rig = site.running.rig
    rig.command("EV:STATE C")
    rig.wait_relay("MAIN", "CLOSED", 3000)
    rig.wait_relay("DISCHARGE", "CLOSED", 1000)
    return pev


def wait_energize(pev: BackgroundPev, value: bool, timeout_s: float = 3.0) -> bool:
    """Whether the vehicle sees ``opModEnergize = value`` within the timeout (it learns it by
    a notification or its 1 s poll)."""
    deadline = time.monotonic() + timeout_s
    while pev.energize is not value and time.monotonic() < deadline:
        time.sleep(0.05)
    return pev.energize is value


def decisions(state: Path) -> list[tuple[bool, tuple[str, ...]]]:
    with Journal.in_state_dir(state) as journal:
        sessions = journal.sessions(5)
    return [(d.granted, d.reasons) for s in sessions for d in s.decisions]


def test_an_approved_vehicle_is_authorized_and_unplugging_opens_both_within_100_ms(
    site: Site,
) -> None:
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    assert wait_energize(pev, True), (
        f"the vehicle saw opModEnergize = true ({pev.client.log.watch})"
    )
    shown = site.status()
    assert shown["authorization"] == {"state": "authorized", "limit_w": LIST_LIMIT_W, "reasons": [],
                                      "basis": f"list: ISM {APPROVED_ISM} approved"}  # fmt: skip
    assert shown["relays"] == {"main": "closed", "discharge": "closed"}
    assert shown["pilot"] == "C" and shown["plc"]["link"] == "up"
    assert shown["session"]["ism"] == APPROVED_ISM and shown["session"]["lfdi"] == pev.client.lfdi
    assert shown["approvals"]["version"] == 1 and shown["approvals"]["in_force"] is True
    rig = site.running.rig
    rig.command("EV:STATE A")
    main_us = rig.wait_relay("MAIN", "OPEN", 100)
    discharge_us = rig.wait_relay("DISCHARGE", "OPEN", 100)
    assert main_us <= 100_000 and discharge_us <= 100_000
    print(f"unplug: main open {main_us / 1000:.1f} ms, discharge open {discharge_us / 1000:.1f} ms")
    pev.stop()
    with Journal.in_state_dir(site.state) as journal:
        (session,) = journal.sessions(5)
        relays = journal.relay_actions(20)
    assert session.lfdi == pev.client.lfdi
    assert session.ism == APPROVED_ISM and session.vin == PROFILES["certified-4q"].vin
    assert session.plugged_out_at is not None
    assert [(d.granted, d.limit_w, d.reasons) for d in session.decisions] == [
        (True, LIST_LIMIT_W, ()),
        (False, None, ("revoked: the vehicle unplugged",)),
    ]
    assert any(r.relay is Relay.DISCHARGE and r.closed for r in relays), relays
    assert any(r.relay is Relay.DISCHARGE and not r.closed for r in relays)


def test_heartbeats_stopping_revoke_after_about_10_s(site: Site) -> None:
    profile = replace(PROFILES["certified-4q"], heartbeats=4, subscribe=False)
    pev = authorized_and_discharging(site, profile)
    pev.wait_heartbeats(4, timeout_s=10)
    silent_from = time.monotonic()
    site.running.rig.wait_relay("DISCHARGE", "OPEN", 15_000)
    after_s = time.monotonic() - silent_from
    assert 9.0 <= after_s <= 11.5, f"revoked {after_s:.2f} s after the last heartbeat"
    print(f"heartbeats stopped: discharge open {after_s:.2f} s after the last one")
    assert site.running.rig.relays()["main"] == "CLOSED", "plain charging goes on"
    line = site.running.daemon.wait_for("j3072.revoked", timeout_s=1)
    assert "10 heartbeats missed" in line
    assert wait_energize(pev, False), "the vehicle saw opModEnergize = false"
    pev.stop()
    assert (False, ("revoked: 10 heartbeats missed",)) in decisions(site.state)


def test_discharge_over_the_limit_revokes_within_1_s_then_opens_main_after_3_s(
    site: Site,
) -> None:
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    rig = site.running.rig
    rig.command(f"METER:W {LIST_LIMIT_W + 800}")
    revoked_us = rig.wait_relay("DISCHARGE", "OPEN", 1000)
    assert revoked_us <= 1_000_000
    print(f"over the limit: discharge open after {revoked_us / 1000:.1f} ms")
    assert rig.relays()["main"] == "CLOSED", "the vehicle gets 3 s to stop"
    opened_us = rig.wait_relay("MAIN", "OPEN", 5000)
    assert 2_800_000 <= opened_us <= 4_500_000, f"main opened after {opened_us / 1e6:.2f} s"
    print(f"still discharging: main open {opened_us / 1e6:.2f} s after the meter went over")
    site.running.daemon.wait_for("kind=unauthorized_discharge", timeout_s=1)
    pev.stop()


def test_a_list_revoking_the_ism_opens_the_relay_within_1_s(site: Site) -> None:
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    installed_at = site.install(site.utility.sign(revoke=[APPROVED_ISM]))
    site.running.rig.wait_relay("DISCHARGE", "OPEN", 2000)
    after_s = time.monotonic() - installed_at
    assert after_s <= 1.0, f"the relay opened {after_s:.2f} s after the install"
    print(f"list revoked: discharge open {after_s * 1000:.0f} ms after the install returned")
    pev.stop()
    assert (False, (f"ISM {APPROVED_ISM} revoked on the approval list",)) in decisions(site.state)


def test_an_unapproved_ism_never_closes_the_relay_and_just_charges(site: Site) -> None:
    site.plug_in()
    pev = site.pev(PROFILES["unapproved-ism"])
    line = site.running.daemon.wait_for("j3072.decision", timeout_s=15)
    assert "granted=false" in line and "not listed on the approval list" in line
    rig = site.running.rig
    rig.command("EV:STATE C")
    rig.wait_relay("MAIN", "CLOSED", 3000)
    pev.wait_heartbeats(pev.heartbeats + 3, timeout_s=5)
    with pytest.raises(RigError, match="TIMEOUT"):
        rig.wait_relay("DISCHARGE", "CLOSED", 500)
    assert pev.energize is False
    shown = site.status()["authorization"]
    assert shown["state"] == "denied" and any("not listed" in r for r in shown["reasons"])
    # and a vehicle that discharges anyway loses the main contactor too
    rig.command("METER:W 1500")
    assert rig.wait_relay("MAIN", "OPEN", 1000) <= 1_000_000
    pev.stop()
    ((granted, reasons),) = decisions(site.state)
    assert not granted and reasons == (
        f"ISM {PROFILES['unapproved-ism'].ism} not listed on the approval list",
    )


def test_a_vehicle_with_a_connection_per_request_is_never_revoked(site: Site) -> None:
    """§4.8.1.1: only missed heartbeats revoke. A vehicle that opens a TLS connection for
    each request has none open most of the time (this project once revoked it after 2 s)."""
    profile = replace(PROFILES["certified-4q"], connection_per_request=True, subscribe=False)
    pev = authorized_and_discharging(site, profile)
    daemon, rig = site.running.daemon, site.running.rig
    since = len(daemon.lines)
    pev.wait_heartbeats(pev.heartbeats + 8, timeout_s=15)
    assert rig.relays()["discharge"] == "CLOSED"
    assert not [ln for ln in daemon.lines[since:] if "j3072.revoked" in ln]
    assert pev.client.log.connections > 8, "it really reconnected for each request"
    pev.stop()


def test_a_violation_survives_a_re_pairing_until_the_vehicle_unplugs(site: Site) -> None:
    """Over the limit, the vehicle drops its PLC link and pairs again without unplugging:
    the exchange completes and the decision grants, but nothing authorizes until state A."""
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    rig, daemon = site.running.rig, site.running.daemon
    rig.command(f"METER:W {LIST_LIMIT_W + 800}")
    rig.wait_relay("DISCHARGE", "OPEN", 1000)
    daemon.wait_for("j3072.violation", timeout_s=2)
    rig.command("METER:W 0")  # it stops, as told
    rig.command("EV:PLC OFF")
    daemon.wait_for("plc.link state=down", timeout_s=10)
    pev.stop()
    rig.command("EV:PLC ON")
    daemon.wait_for("plc.link state=up", timeout_s=10)
    again = site.pev(PROFILES["certified-4q"])
    line = daemon.wait_for("j3072.decision", timeout_s=15)
    assert "granted=true" in line, "the data alone would grant"
    again.wait_heartbeats(again.heartbeats + 5, timeout_s=10)
    with pytest.raises(RigError, match="TIMEOUT"):
        rig.wait_relay("DISCHARGE", "CLOSED", 500)
    shown = site.status()["authorization"]
    assert shown["state"] != "authorized"
    assert shown["reasons"][0].startswith("a violation earlier in this plug-in: discharge")
    again.stop()
    rig.command("EV:STATE A")  # unplugged: the next plug-in starts clean
    daemon.wait_for("j3072.violation_cleared", timeout_s=2)
    rig.command("EV:PLC OFF")
    daemon.wait_for("plc.link state=down", timeout_s=10)
    fresh = authorized_and_discharging(site, PROFILES["certified-4q"])
    fresh.stop()


def test_an_exchange_that_is_not_whole_is_denied_with_every_reason(site: Site) -> None:
    """§4.6.2: DERSettings must carry setMaxWh, and the Enter Service settings may not be
    looser than the site's (this project once granted a vehicle with none of that)."""
    site.plug_in()
    profile = replace(PROFILES["certified-4q"], settings=SettingsPolicy.CARELESS)
    pev = site.pev(profile)
    line = site.running.daemon.wait_for("j3072.decision", timeout_s=15)
    assert "granted=false" in line
    rig = site.running.rig
    rig.command("EV:STATE C")
    rig.wait_relay("MAIN", "CLOSED", 3000)
    with pytest.raises(RigError, match="TIMEOUT"):
        rig.wait_relay("DISCHARGE", "CLOSED", 500)
    pev.stop()
    ((granted, reasons),) = decisions(site.state)
    assert not granted and reasons == (
        "DERSettings without setMaxWh",
        "setESDelay 0, looser than the site's 30000",
        "setESHighVolt 12000, looser than the site's 10500",
    )


def eventually(check: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_control_changed_mid_session_is_followed_and_enforced(site: Site) -> None:
    """§4.6.3/§4.7.1: the site owner lowers opModMaxLimW during the session; the vehicle sees
    a superseding DERControl, answers it and follows it, stays authorized, and the meter is
    held to the new limit once the vehicle has had follow_s (2 s here) to reach it."""
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    done = site.control("max-lim-w", "percent=40")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "max-lim-w in effect, superseding max-lim-w: 1 session(s)"
    log = pev.client.log
    assert eventually(lambda: log.controls_followed == ["max-lim-w"], 3.0), log.controls_followed
    assert pev.client.max_lim_w_pct == 40.0
    assert eventually(lambda: site.status()["authorization"]["limit_w"] == 2880, 4.0)
    rig = site.running.rig
    pev.wait_heartbeats(pev.heartbeats + 6, timeout_s=10)  # past the Responses' due time
    assert rig.relays()["discharge"] == "CLOSED", "answered and followed: still authorized"
    rig.command("METER:W 3500")  # under the old 5,000 W, over the new 2,880 W
    assert rig.wait_relay("DISCHARGE", "OPEN", 1000) <= 1_000_000
    line = site.running.daemon.wait_for("j3072.revoked", timeout_s=1)
    assert "over the 2880 W in effect" in line
    pev.stop()


def test_a_vehicle_ignoring_a_changed_control_is_revoked(site: Site) -> None:
    profile = replace(PROFILES["certified-4q"], follows_changes=False, subscribe=False)
    pev = authorized_and_discharging(site, profile)
    changed_at = time.monotonic()
    assert site.control("max-lim-w", "percent=60").returncode == 0
    site.running.rig.wait_relay("DISCHARGE", "OPEN", 8000)
    after_s = time.monotonic() - changed_at
    assert 4.5 <= after_s <= 7.0, f"revoked {after_s:.1f} s after the change"
    line = site.running.daemon.wait_for("j3072.decision", timeout_s=1)
    assert "granted=false" in line and "Responses missing: received" in line
    pev.stop()


@pytest.mark.parametrize(
    ("words", "error"),
    [
        (("volt-var", "curve=[[98,0],[92,44]]"), "control.curve: x values must increase"),
        (("fixed-w", "percent=150"), "control.percent: must be between -100 and 100, got 150"),
        (("max-lim-w", "percent=40", "colour=1"), "control.colour: unknown key"),
        (("hv-momentary-cessation", "curve=[[0,104]]"), "lies below the hv-must-trip"),
        (("hv-must-trip", "curve=[[1, 104]]"), "high_volt_pct: 105 must be below"),
    ],
)
def test_a_control_the_loader_would_refuse_changes_nothing(
    site: Site, words: tuple[str, ...], error: str
) -> None:
    before = site.status()["functions"]
    assert before[0] == "max-lim-w 100 %" and len(before) == 8, before
    done = site.control(*words)
    assert done.returncode == 1 and error in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert site.status()["functions"] == before, "nothing changed"


def test_one_vehicle_per_plug_in_a_second_client_is_ignored(site: Site) -> None:
    """Nothing binds before SLAC matched in this plug-in; once a vehicle is bound, another
    client with a valid certificate is ignored and logged, and never sees opModEnergize."""
    rig, daemon = site.running.rig, site.running.daemon
    rig.command("EV:STATE B")
    rig.wait_duty(1, 99, 1000)
    early = site.pev(replace(PROFILES["silent"], heartbeats=None))
    line = daemon.wait_for("j3072.peer_refused", timeout_s=15)
    assert early.client.lfdi in line and "no SLAC match in this plug-in" in line
    early.stop()
    assert site.status()["authorization"]["state"] == "none"
    rig.command("EV:PLC ON")
    daemon.wait_for("plc.link state=up", timeout_s=10)
    pev = site.pev(PROFILES["certified-4q"])
    daemon.wait_for("j3072.authorized", timeout_s=15)
    other = site.pev(replace(PROFILES["silent"], heartbeats=None))
    line = daemon.wait_for("j3072.other_vehicle", timeout_s=15)
    assert other.client.lfdi in line and pev.client.lfdi in line
    other.wait_heartbeats(3, timeout_s=10)
    assert other.energize is False, "the other client is never energized"
    assert site.status()["session"]["lfdi"] == pev.client.lfdi
    other.stop()
    pev.stop()


def test_a_vehicle_flipping_its_ism_cannot_cycle_the_discharge_relay(
    start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path
) -> None:
    """Flipping the reported ISM every 150 ms (this project once closed the discharge relay 32
    times in 10 s for it, with 65 journal rows): one revocation, no closing while the denial
    holds ([j3072] hold_s, 10 s by default), one journal row per decision that took effect."""
    site = make_site(start_daemon, pki, tmp_path, j3072={"hold_s": 10.0})
    pev = authorized_and_discharging(site, PROFILES["certified-4q"])
    rig = site.running.rig
    other = PROFILES["unapproved-ism"].ism
    for k in range(30):
        ism = other if k % 2 == 0 else APPROVED_ISM
        pev.call(functools.partial(pev.client.report_ism, ism))
        time.sleep(0.15)
    assert rig.relays()["discharge"] == "OPEN"
    pev.stop()
    with Journal.in_state_dir(site.state) as journal:
        relays = journal.relay_actions(200)
    closings = [r for r in relays if r.relay is Relay.DISCHARGE and r.closed]
    assert len(closings) == 1, f"closed {len(closings)} times"
    assert [granted for granted, _ in decisions(site.state)] == [True, False]


def test_under_certification_only_the_tag_alone_grants_and_the_lfdi_lists_still_apply(
    start_daemon: StartDaemon, pki: PkiLayout, tmp_path: Path
) -> None:
    """The utility relies on the J3072 certification tag alone: a certified vehicle whose ISM
    is on no list is authorized and the decision says what was checked; the site's deny list
    still refuses the vehicle it names."""
    denied_lfdi = lfdi(load_certificate(pki.directory / "pev-silent.pem").public_bytes(
        Encoding.DER))  # fmt: skip
    policy = {"policy": "certification-only", "deny_lfdis": [denied_lfdi]}
    site = make_site(start_daemon, pki, tmp_path, policy)
    pev = authorized_and_discharging(site, PROFILES["unapproved-ism"])
    line = next(ln for ln in site.running.daemon.lines if "j3072.decision" in ln)
    assert "granted=true" in line and 'basis="certification-only: J3072 certified' in line
    shown = site.status()["authorization"]
    assert shown["state"] == "authorized" and shown["basis"].startswith("certification-only")
    assert shown["limit_w"] == 7200, "no list, so no list cap"
    pev.stop()
    rig, daemon = site.running.rig, site.running.daemon
    rig.command("EV:STATE A")
    rig.command("EV:PLC OFF")
    daemon.wait_for("plc.link state=down", timeout_s=10)
    site.plug_in()
    silent = site.pev(replace(PROFILES["silent"], heartbeats=None))
    line = daemon.wait_for("j3072.decision", timeout_s=15)
    assert "granted=false" in line and f"LFDI {denied_lfdi} is on the site's deny list" in line
    silent.stop()


def test_a_violation_held_from_before_a_restart_clears_when_the_pilot_shows_a(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The daemon restarts after a violation; the vehicle has gone meanwhile (the mock
    board starts with the pilot in A): the held violation is restored, then cleared at once
    and removed from disk, so the next vehicle does not inherit it."""
    state = tmp_path / "restarted-state"
    state.mkdir()
    held = state / "j3072-violation.json"
    held.write_text(json.dumps({"reason": "discharge 6000 W over the 5000 W in effect"}))
    running = start_daemon(paths={"state_dir": str(state)})
    running.daemon.wait_for("j3072.violation_cleared", timeout_s=5)
    assert any("j3072.violation_restored" in ln for ln in running.daemon.lines)
    assert not held.exists()


def test_the_vehicle_reads_every_table_5_function_and_sleep_then_wake_resumes(
    site: Site,
) -> None:
    """§4.9.1/§4.9.2: the site listed only max-lim-w, yet the vehicle reads the must-trip and
    momentary-cessation curves and frequency droop (the protective functions are always
    published). §4.8.3: asleep it is revoked; awake, having re-read its controls, 3
    heartbeats re-authorize it."""
    profile = replace(PROFILES["certified-4q"], subscribe=False,
                      sleep=SleepWake(after_s=2.0, for_s=2.0))  # fmt: skip
    pev = authorized_and_discharging(site, profile)
    names = {step.name for step in pev.client.log.steps}
    for mode in ("hv-must-trip", "lv-must-trip", "hf-must-trip", "lf-must-trip",
                 "hv-momentary-cessation", "lv-momentary-cessation"):  # fmt: skip
        assert f"DERCurve of {mode}" in names, mode
    daemon, rig = site.running.daemon, site.running.rig
    line = daemon.wait_for("j3072.revoked", timeout_s=6)
    assert "sleeping" in line
    rig.wait_relay("DISCHARGE", "OPEN", 1000)
    daemon.wait_for("j3072.authorized", timeout_s=10)
    rig.wait_relay("DISCHARGE", "CLOSED", 2000)
    assert "DERControlList (wake)" in {step.name for step in pev.client.log.steps}
    pev.stop()
