"""The xmDNS answers (``firmware/sep2/xmdns.py``): only questions about the EVSE's own
``.site`` names are answered, with the mDNS announcement's TXT keys; garbage is dropped."""

from __future__ import annotations

import pytest
from zeroconf import const
from zeroconf._dns import DNSQuestion
from zeroconf._protocol.incoming import DNSIncoming
from zeroconf._protocol.outgoing import DNSOutgoing

from firmware.sep2.discovery import Announcement
from firmware.sep2.xmdns import SITE_SERVICE, answer, records

KNOWN = records(Announcement("plc0", 8443, "evse-123"), ["fd00::1"])


def query(name: str, kind: int) -> bytes:
    out = DNSOutgoing(const._FLAGS_QR_QUERY, True)
    out.add_question(DNSQuestion(name, kind, const._CLASS_IN))
    return out.packets()[0]


def test_the_service_question_gets_its_records() -> None:
    reply = answer(query(SITE_SERVICE, const._TYPE_PTR), KNOWN)
    assert reply is not None
    incoming = DNSIncoming(reply)
    assert not incoming.is_query()
    found = {(r.name, r.type) for r in incoming.answers()}
    assert ("_smartenergy._tcp.site.", const._TYPE_PTR) in found
    assert ("evse-123._smartenergy._tcp.site.", const._TYPE_SRV) in found
    text = next(r for r in incoming.answers() if r.type == const._TYPE_TXT)
    assert b"https=8443" in text.text and b"dcap=/dcap" in text.text  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "packet",
    [b"", b"\x00" * 5, b"garbage" * 10, query("_smartenergy._tcp.local.", const._TYPE_PTR),
     query("_http._tcp.site.", const._TYPE_PTR)],
)  # fmt: skip
def test_anything_else_is_not_answered(packet: bytes) -> None:
    assert answer(packet, KNOWN) is None


def test_a_response_is_not_answered() -> None:
    reply = answer(query(SITE_SERVICE, const._TYPE_PTR), KNOWN)
    assert reply is not None and answer(reply, KNOWN) is None
