"""An independent reading of what the EVSE puts on the wire: every frame the EVSE host sends
during a mock match (and a vehicle's restart of SLAC after it) is decoded with EcoG-io
pyslac's own message classes (a dev-only tool from PyPI, never imported by the firmware), and
their fields must agree with our codec's. Our codec stays ours; pyslac only reads."""

from __future__ import annotations

import secrets

import pytest
from pyslac import layer_2_headers as headers
from pyslac import messages

from firmware.plc import cm_messages as cm
from firmware.plc import vs_messages as vs
from firmware.plc.codec import decode
from firmware.plc.messages import Message
from tests.integration.test_slac_inprocess import Bench, run

pytestmark = pytest.mark.integration

# what the EVSE asks its own modem: pyslac has no reader for these, our golden vectors do
MODEM_REQUESTS = (vs.VsPlLinkStatusReq, vs.VsNwInfoReq, vs.VsSwVerReq, vs.VsRsDevReq)


def sent_during_two_matches() -> list[bytes]:
    frames: list[bytes] = []

    async def scenario(bench: Bench) -> None:
        bench.service.plugged_in()
        await bench.pev.match()
        bench.pev.run_id = secrets.token_bytes(8)  # the vehicle starts SLAC over
        await bench.pev.match()
        frames.extend(bench.evse_host.sent)

    run(scenario)
    return frames


def check_headers(frame: bytes, ours: Message) -> None:
    ethernet = headers.EthernetHeader.from_bytes(frame)
    assert (ethernet.dst_mac, ethernet.src_mac, ethernet.ether_type) == (
        frame[0:6],
        frame[6:12],
        0x88E1,
    )
    homeplug = headers.HomePlugHeader.from_bytes(frame)
    assert homeplug.mm_type == ours.MMTYPE
    assert (homeplug.mmv, homeplug.fmsn, homeplug.fmid) == (b"\x01", b"\x00", b"\x00")


def check_parm_cnf(frame: bytes, ours: cm.SlacParmCnf) -> None:
    theirs = messages.SlacParmCnf.from_bytes(frame)
    assert (theirs.msound_target, theirs.num_sounds, theirs.time_out, theirs.resp_type) == (
        ours.msound_target,
        ours.num_sounds,
        ours.time_out,
        ours.resp_type,
    )
    assert (theirs.forwarding_sta, theirs.run_id) == (ours.forwarding_sta, ours.run_id)
    assert (theirs.application_type, theirs.security_type) == (ours.app, ours.sec)


def check_atten_char(frame: bytes, ours: cm.AttenCharInd) -> None:
    theirs = messages.AtennChar.from_bytes(frame)
    assert (theirs.source_address, theirs.run_id) == (ours.source_mac, ours.run_id)
    assert theirs.source_id == int.from_bytes(ours.source_id, "big")
    assert theirs.resp_id == int.from_bytes(ours.resp_id, "big")
    assert (theirs.num_sounds, theirs.num_groups) == (ours.num_sounds, ours.num_groups)
    assert theirs.aag == list(ours.aag)


def check_match_cnf(frame: bytes, ours: cm.SlacMatchCnf) -> None:
    theirs = messages.MatchCnf.from_bytes(frame)
    # pyslac writes MVFLength little-endian but reads it back big-endian
    assert theirs.mvf_length == int.from_bytes(ours.mvf_length.to_bytes(2, "little"), "big")
    assert (theirs.pev_mac, theirs.evse_mac, theirs.run_id) == (
        ours.pev_mac,
        ours.evse_mac,
        ours.run_id,
    )
    assert theirs.pev_id == int.from_bytes(ours.pev_id, "big")
    assert theirs.evse_id == int.from_bytes(ours.evse_id, "big")
    assert (theirs.nid, theirs.nmk, theirs.rsvd_2) == (ours.nid, ours.nmk, ours.reserved2)


def check_set_key(frame: bytes, ours: cm.SetKeyReq) -> None:
    """pyslac only writes SET_KEY.REQ: ours must be its bytes, but for the MyNonce pyslac
    fixes at AA AA AA AA (ISO 15118-3 has 0, as we send)."""
    theirs = bytes(messages.SetKeyReq(nid=ours.nid, new_key=ours.nmk).pack_big())
    payload = frame[19 : 19 + len(theirs)]
    assert payload[:1] + payload[5:] == theirs[:1] + theirs[5:]
    assert ours.my_nonce == 0


def test_pyslac_reads_every_frame_the_evse_sends_as_we_do() -> None:
    frames = sent_during_two_matches()
    seen: dict[type, int] = {}
    for frame in frames:
        _, ours = decode(frame)
        seen[type(ours)] = seen.get(type(ours), 0) + 1
        if isinstance(ours, MODEM_REQUESTS):
            continue
        check_headers(frame, ours)
        if isinstance(ours, cm.SlacParmCnf):
            check_parm_cnf(frame, ours)
        elif isinstance(ours, cm.AttenCharInd):
            check_atten_char(frame, ours)
        elif isinstance(ours, cm.SlacMatchCnf):
            check_match_cnf(frame, ours)
        elif isinstance(ours, cm.SetKeyReq):
            check_set_key(frame, ours)
        else:
            pytest.fail(f"the EVSE sent {type(ours).__name__}, which this check does not read")
    for kind in (cm.SlacParmCnf, cm.AttenCharInd, cm.SlacMatchCnf, cm.SetKeyReq):
        assert seen.get(kind, 0) >= 1, f"no {kind.__name__} was sent: {seen}"
    assert seen[cm.SlacMatchCnf] == 2, "both matchings were read"
