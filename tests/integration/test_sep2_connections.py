"""The 2030.5 server's connections on a real TLS listener (``firmware/sep2/connections.py``):
every refused handshake logged with its reason and the certificate the vehicle sent, the
per-peer and total caps, the header and idle timeouts, 406 for a client that accepts no XML,
and 414 (never a 500) for a path too long for Python's int."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from firmware.daemon.config import parse_config
from firmware.sep2.connections import ConnectionLimits
from firmware.sep2.identity import lfdi, load_certificate, sfdi
from firmware.sep2.pki import PkiLayout, init_pki
from firmware.sep2.server import Sep2Server, ServerSettings
from firmware.sep2.site import SiteResources
from firmware.sep2.store import Sep2Store
from firmware.sep2.tls import PeerIdentity, probe_ccm8

pytestmark = pytest.mark.integration

SITE = parse_config({"site": {"max_w": 7200}}).site
FAST = ConnectionLimits(max_total=6, max_per_peer=3, handshake_s=1.0, header_s=0.6,
                        idle_s=0.8, request_s=2.0)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("conn") / "pki")


Scenario = Callable[[Sep2Server], Awaitable[None]]


def serve(pki: PkiLayout, scenario: Scenario, limits: ConnectionLimits = FAST) -> None:
    d = pki.directory
    der = load_certificate(d / "evse.pem").public_bytes(Encoding.DER)
    evse = PeerIdentity(lfdi(der), sfdi(lfdi(der)), der, None)
    settings = ServerSettings("::1", 0, d / "serca.pem", d / "evse.pem", d / "evse.key")
    server = Sep2Server(settings, SiteResources(SITE, evse.lfdi), Sep2Store(), evse,
                        limits=limits)  # fmt: skip

    async def main() -> None:
        await server.start()
        try:
            await asyncio.wait_for(scenario(server), 30)
        finally:
            await server.stop()

    asyncio.run(main())


def context(pki: PkiLayout, cert: Path | None, key: Path | None,
            version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
            ciphers: str | None = None) -> ssl.SSLContext:  # fmt: skip
    made = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    made.check_hostname, made.verify_mode = False, ssl.CERT_NONE
    made.minimum_version = made.maximum_version = version
    if version == ssl.TLSVersion.TLSv1_2:
        made.set_ciphers(ciphers or probe_ccm8())
    if cert is not None and key is not None:
        made.load_cert_chain(cert, key)
    return made


async def request(port: int, ctx: ssl.SSLContext, raw: bytes) -> bytes:
    """One request on a fresh connection; the answer, or b"" when the server closed."""
    try:
        reader, writer = await asyncio.open_connection("::1", port, ssl=ctx)
    except (ssl.SSLError, ConnectionError, OSError):
        return b""
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    except (ssl.SSLError, ConnectionError, OSError):
        return b""
    finally:
        writer.close()


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: evse", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode()


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "sep2.tls_refused" in r.getMessage()]


def leaf_only(pki: PkiLayout, tmp: Path) -> Path:
    """The certified vehicle's certificate without its MICA and MCA."""
    pem = (pki.directory / "pev-certified-4q.pem").read_text()
    end = "-----END CERTIFICATE-----"
    path = tmp / "leaf.pem"
    path.write_text(pem.split(end)[0] + end + "\n")
    return path


def test_each_refused_handshake_is_logged_with_its_reason_and_certificate(
    pki: PkiLayout, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d, bad = pki.directory, pki.directory / "bad"
    good_key = d / "pev-certified-4q.key"
    cases = [
        ("no certificate", context(pki, None, None), "no certificate: the vehicle sent none"),
        ("wrong root", context(pki, bad / "pev-untrusted.pem", bad / "pev-untrusted.key"),
         "issued by CN=TEST UNTRUSTED ROOT,O=evse-gatekeeper TEST ONLY, which is no configured"),
        ("leaf without chain", context(pki, leaf_only(pki, tmp_path), good_key),
         "incomplete chain or unknown root: the device certificate came alone, issued by "
         "CN=TEST MICA"),
        ("TLS 1.3 only", context(pki, d / "pev-certified-4q.pem", good_key,
                                 ssl.TLSVersion.TLSv1_3), "protocol: not TLS 1.2"),
        ("another cipher", context(pki, d / "pev-certified-4q.pem", good_key,
                                   ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"), "cipher"),
        ("no 2030.5 policy", context(pki, bad / "pev-no-policy.pem", bad / "pev-no-policy.key"),
         "certificatePolicies"),
        ("RSA key", context(pki, bad / "pev-rsa.pem", bad / "pev-rsa.key"), "RSA-2048"),
    ]  # fmt: skip

    async def scenario(server: Sep2Server) -> None:
        for _, ctx, _ in cases:
            assert await request(server.port, ctx, get("/dcap")) == b""

    with caplog.at_level(logging.INFO, logger="firmware.sep2"):
        serve(pki, scenario)
    lines = refusals(caplog)
    assert len(lines) == len(cases), lines
    for (name, _, reason), line in zip(cases, lines, strict=True):
        assert reason in line and "peer=::1" in line, (name, line)
    sent = {"wrong root": "pev-untrusted", "leaf without chain": "pev-certified-4q",
            "no 2030.5 policy": "pev-no-policy", "RSA key": "pev-rsa"}  # fmt: skip
    for (name, _, _), line in zip(cases, lines, strict=True):
        if name in sent:
            stem = sent[name]
            folder = d if stem == "pev-certified-4q" else bad
            der = load_certificate(folder / f"{stem}.pem").public_bytes(Encoding.DER)
            assert f"lfdi={lfdi(der)}" in line, (name, line)
            assert "hw_type=1.3.6.1.4.1.55555." in line, (name, line)


def test_a_client_that_accepts_no_xml_gets_406_and_a_long_path_414(pki: PkiLayout) -> None:
    ctx = context(
        pki, pki.directory / "pev-certified-4q.pem", pki.directory / "pev-certified-4q.key"
    )
    answers: dict[str, bytes] = {}

    async def scenario(server: Sep2Server) -> None:
        port = server.port
        answers["exi"] = await request(port, ctx, get("/dcap", "Accept: application/sep-exi"))
        answers["q0"] = await request(port, ctx, get("/dcap", "Accept: application/sep+xml;q=0"))
        answers["any"] = await request(port, ctx, get("/dcap", "Accept: */*"))
        answers["both"] = await request(
            port, ctx, get("/dcap", "Accept: application/sep-exi, application/sep+xml;q=0.5")
        )
        answers["digits"] = await request(port, ctx, get("/edev/" + "7" * 4301))
        answers["query"] = await request(port, ctx, get("/edev?l=" + "9" * 300))

    serve(pki, scenario)
    status = {k: v.split(b"\r\n", 1)[0] for k, v in answers.items()}
    assert status["exi"] == status["q0"] == b"HTTP/1.1 406 Not Acceptable"
    assert b"no EXI" in answers["exi"]
    assert status["any"] == status["both"] == b"HTTP/1.1 200 OK"
    assert status["digits"] == status["query"] == b"HTTP/1.1 414 Request-URI Too Long"


def test_a_peer_holds_at_most_its_share_and_idle_or_dribbling_clients_are_closed(
    pki: PkiLayout,
) -> None:
    ctx = context(
        pki, pki.directory / "pev-certified-4q.pem", pki.directory / "pev-certified-4q.key"
    )
    seen: dict[str, object] = {}

    async def scenario(server: Sep2Server) -> None:
        port, listener = server.port, server.listener
        assert listener is not None
        held = [socket.create_connection(("::1", port)) for _ in range(10)]  # half-open
        await asyncio.sleep(0.3)
        seen["open_under_flood"] = listener.open
        seen["refused"] = listener.refused_per_peer
        for s in held:
            s.close()
        await asyncio.sleep(0.3)  # the held ones closed: their share is free again
        seen["open_after"] = listener.open
        # the dribbler: a complete handshake, then its headers a byte at a time
        reader, writer = await asyncio.open_connection("::1", port, ssl=ctx)
        started = time.monotonic()
        closed = False
        for byte in get("/dcap"):
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)
            if reader.at_eof() or writer.is_closing():
                closed = True
                break
            try:
                if await asyncio.wait_for(reader.read(1), 0.01) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        seen["dribbler_closed_after_s"] = time.monotonic() - started if closed else None
        writer.close()
        idle_reader, idle_writer = await asyncio.open_connection("::1", port, ssl=ctx)
        began = time.monotonic()
        seen["idle_eof"] = await asyncio.wait_for(idle_reader.read(1), 3) == b""
        seen["idle_closed_after_s"] = time.monotonic() - began
        idle_writer.close()

    serve(pki, scenario)
    assert seen["open_under_flood"] == FAST.max_per_peer, seen
    assert seen["refused"] == 10 - FAST.max_per_peer and seen["open_after"] == 0, seen
    after, idle = seen["dribbler_closed_after_s"], seen["idle_closed_after_s"]
    assert isinstance(after, float) and after < FAST.header_s + 0.5, seen
    assert seen["idle_eof"] is True and isinstance(idle, float) and idle < FAST.header_s + 0.5
