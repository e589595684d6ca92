"""The 2030.5 TLS policy (firmware/sep2/tls.py) on a real TLS server on 127.0.0.1.

In the manner of the CSIP COMM-004 cases: TLS 1.2 with ECDHE-ECDSA-AES128-CCM8 only, mutual
authentication against the SERCA only, EC P-256 keys only, chains of 2, 3 and 4 certificates.
Every refusal is observed from the client side (handshake alert, or a connection closed without
an answer) and the server then still answers a good client. The server answers the LFDI and
hwType it derived from the client's certificate, or drops the connection on ``TlsError``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from firmware.sep2 import tls
from firmware.sep2.identity import lfdi
from firmware.sep2.pki import (
    EVSE_HW_TYPE,
    Credential,
    PkiLayout,
    build_hierarchy,
    init_pki,
    issue_device,
)
from firmware.sep2.tls import (
    CCM8_CIPHER,
    TlsError,
    client_context,
    peer_identity,
    probe_ccm8,
    server_context,
)

pytestmark = pytest.mark.integration

TIMEOUT_S = 10
PEV_HW_TYPE = "1.3.6.1.4.1.55555.1.42"


@dataclass(frozen=True, slots=True)
class Files:
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the client saw: ``answered`` (with the line), ``handshake-refused`` or ``dropped``."""

    kind: str
    answer: str = ""
    server_identity: tuple[str, str | None] | None = None  # the EVSE's LFDI and hwType


@dataclass
class Server:
    port: int
    refusals: list[str] = field(default_factory=list)


def _write(directory: Path, stem: str, credential: Credential) -> tuple[Path, Path]:
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert.write_bytes(credential.cert_pem())
    key.write_bytes(credential.key_pem())
    return cert, key


@pytest.fixture(scope="session")
def layout(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("tls") / "pki")


@pytest.fixture(scope="session")
def chains(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Files, Files]]:
    """Per chain length, the (EVSE, PEV) files of a hierarchy of its own."""
    result = {}
    for length in (2, 3, 4):
        directory = tmp_path_factory.mktemp(f"chain{length}")
        hierarchy = build_hierarchy(length, f" (chain of {length})")
        ca = directory / "serca.pem"
        ca.write_bytes(hierarchy.root.cert_pem())
        evse = _write(directory, "evse", issue_device(hierarchy.issuer, EVSE_HW_TYPE, b"EVSE"))
        pev = _write(directory, "pev", issue_device(hierarchy.issuer, PEV_HW_TYPE, b"PEV"))
        result[length] = (Files(ca, *evse), Files(ca, *pev))
    return result


def evse_files(layout: PkiLayout) -> Files:
    return Files(layout.serca, layout.evse, layout.evse_key)


def pev_files(layout: PkiLayout, name: str = "certified-4q") -> Files:
    directory = layout.directory if not name.startswith("bad/") else layout.directory / "bad"
    stem = f"pev-{name.removeprefix('bad/')}"
    return Files(layout.serca, directory / f"{stem}.pem", directory / f"{stem}.key")


def run_with_server(evse: Files, scenario: Callable[[Server], Awaitable[None]]) -> None:
    """Serve with ``server_context`` on 127.0.0.1 while ``scenario`` runs its clients."""

    async def main() -> None:
        context = server_context(evse.ca, evse.cert, evse.key)
        refusals: list[str] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                identity = peer_identity(writer.get_extra_info("ssl_object"))
            except TlsError as err:
                refusals.append(str(err))
                writer.close()  # close_notify after the handshake: the client reads no answer
                return
            writer.write(f"lfdi={identity.lfdi} hw_type={identity.hw_type}\n".encode())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        async with server:
            port = server.sockets[0].getsockname()[1]
            await asyncio.wait_for(scenario(Server(port, refusals)), TIMEOUT_S)

    asyncio.run(main())


async def ask(server: Server, context: ssl.SSLContext) -> Outcome:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
    except (ssl.SSLError, ConnectionError):
        return Outcome("handshake-refused")
    ssl_object = writer.get_extra_info("ssl_object")
    assert ssl_object.version() == "TLSv1.2" and ssl_object.cipher()[0] == CCM8_CIPHER
    evse = peer_identity(ssl_object)
    try:
        line = (await reader.readline()).decode().strip()
    except (ssl.SSLError, ConnectionError):
        line = ""
    writer.close()
    return Outcome("answered" if line else "dropped", line, (evse.lfdi, evse.hw_type))


def expected_answer(files: Files, hw_type: str) -> str:
    leaf = x509.load_pem_x509_certificates(files.cert.read_bytes())[0]
    return f"lfdi={lfdi(leaf.public_bytes(Encoding.DER))} hw_type={hw_type}"


def raw_client(
    ca: Path,
    credential: Files | None,
    version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A client context *without* ``client_context``'s own checks, to play misbehaving PEVs."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(ca)
    context.minimum_version = context.maximum_version = version
    if version == ssl.TLSVersion.TLSv1_2:
        context.set_ciphers(ciphers or probe_ccm8())
    if credential is not None:
        context.load_cert_chain(credential.cert, credential.key)
    return context


def good_client(files: Files) -> ssl.SSLContext:
    return client_context(files.ca, files.cert, files.key)


async def assert_still_serving(server: Server, layout: PkiLayout) -> None:
    pev = pev_files(layout, "uncertified")
    outcome = await ask(server, good_client(pev))
    assert outcome == Outcome(
        "answered", expected_answer(pev, layout.pevs[1].hw_type), outcome.server_identity
    )


def refused(layout: PkiLayout, client: ssl.SSLContext) -> tuple[str, list[str]]:
    """Run ``client`` against the EVSE, then a good client; return what the first one saw
    (``handshake-refused`` or ``dropped``) and the reasons ``peer_identity`` gave the server."""
    seen: list[str] = []
    reasons: list[str] = []

    async def scenario(server: Server) -> None:
        seen.append((await ask(server, client)).kind)
        reasons.extend(server.refusals)
        await assert_still_serving(server, layout)
        assert server.refusals == reasons, "the good client was not refused"

    run_with_server(evse_files(layout), scenario)
    assert seen[0] in ("handshake-refused", "dropped"), "the bad client was answered"
    return seen[0], reasons


def test_probe_finds_a_ccm8_cipher_string() -> None:
    assert probe_ccm8() in (CCM8_CIPHER, f"{CCM8_CIPHER}:@SECLEVEL=0")


@pytest.mark.parametrize(
    ("candidates", "found"),
    [
        # set_ciphers accepts it, but no hello offers it: what OpenSSL >= 3.2 does at level 1+
        ((f"{CCM8_CIPHER}:@SECLEVEL=5", CCM8_CIPHER), CCM8_CIPHER),
        (("ECDHE-ECDSA-AES128-GCM-SHA256", "NO-SUCH-CIPHER", CCM8_CIPHER), CCM8_CIPHER),
        (("ECDHE-ECDSA-AES128-GCM-SHA256", f"{CCM8_CIPHER}:@SECLEVEL=5"), None),
    ],
)
def test_probe_takes_the_first_string_whose_hello_offers_ccm8(
    monkeypatch: pytest.MonkeyPatch, candidates: tuple[str, ...], found: str | None
) -> None:
    monkeypatch.setattr(tls, "_CCM8_CANDIDATES", candidates)
    if found is None:
        with pytest.raises(TlsError, match="does not offer"):
            probe_ccm8()
    else:
        assert probe_ccm8() == found


@pytest.mark.parametrize("length", [2, 3, 4], ids=lambda n: f"length-{n}")
def test_a_chain_of_length_is_accepted(chains: dict[int, tuple[Files, Files]], length: int) -> None:
    evse, pev = chains[length]
    assert len(x509.load_pem_x509_certificates(pev.cert.read_bytes())) == length - 1

    async def scenario(server: Server) -> None:
        outcome = await ask(server, good_client(pev))
        assert outcome.kind == "answered"
        assert outcome.answer == expected_answer(pev, PEV_HW_TYPE)
        evse_leaf = x509.load_pem_x509_certificates(evse.cert.read_bytes())[0]
        assert outcome.server_identity == (lfdi(evse_leaf.public_bytes(Encoding.DER)), EVSE_HW_TYPE)
        assert server.refusals == []

    run_with_server(evse, scenario)


def test_every_default_pev_is_accepted_with_its_hw_type(layout: PkiLayout) -> None:
    async def scenario(server: Server) -> None:
        for pev in layout.pevs:
            files = Files(layout.serca, pev.cert, pev.key)
            outcome = await ask(server, good_client(files))
            assert outcome.answer == expected_answer(files, pev.hw_type)

    run_with_server(evse_files(layout), scenario)


def test_the_misbehaving_client_factory_is_answered_with_good_credentials(
    layout: PkiLayout,
) -> None:
    """So that each refusal below is caused by the one thing its client changes."""
    pev = pev_files(layout)

    async def scenario(server: Server) -> None:
        outcome = await ask(server, raw_client(layout.serca, pev))
        assert outcome.answer == expected_answer(pev, layout.pevs[0].hw_type)

    run_with_server(evse_files(layout), scenario)


def test_a_client_from_the_wrong_root_is_refused(layout: PkiLayout) -> None:
    client = good_client(pev_files(layout, "bad/untrusted"))
    assert refused(layout, client) == ("handshake-refused", [])


def test_a_client_on_p384_is_refused(layout: PkiLayout) -> None:
    """OpenSSL already fails this handshake (P-384 is not in the P-256-only group list); were
    it to let it through, ``peer_identity`` drops it."""
    client = raw_client(layout.serca, pev_files(layout, "bad/p384"))
    kind, reasons = refused(layout, client)
    if kind == "dropped":
        assert len(reasons) == 1 and "secp384r1" in reasons[0]
    else:
        assert reasons == []


def test_a_client_with_an_rsa_key_is_refused(layout: PkiLayout) -> None:
    """The handshake passes (the MICA signed it), ``peer_identity`` refuses and drops it."""
    client = raw_client(layout.serca, pev_files(layout, "bad/rsa"))
    kind, reasons = refused(layout, client)
    assert kind == "dropped" and len(reasons) == 1 and "RSA-2048" in reasons[0]


def test_a_client_whose_certificate_names_no_2030_5_device_type_is_refused(
    layout: PkiLayout,
) -> None:
    """§6.11.7.2: a device certificate carries its device type in certificatePolicies; the
    chain verifies, ``peer_identity`` refuses it and says why."""
    client = raw_client(layout.serca, pev_files(layout, "bad/no-policy"))
    kind, reasons = refused(layout, client)
    assert kind == "dropped" and len(reasons) == 1 and "certificatePolicies" in reasons[0]


def test_a_client_without_a_certificate_is_refused(layout: PkiLayout) -> None:
    assert refused(layout, raw_client(layout.serca, None)) == ("handshake-refused", [])


def test_a_tls13_only_client_is_refused(layout: PkiLayout) -> None:
    client = raw_client(layout.serca, pev_files(layout), ssl.TLSVersion.TLSv1_3)
    assert refused(layout, client) == ("handshake-refused", [])


def test_a_client_offering_only_a_non_ccm8_cipher_is_refused(layout: PkiLayout) -> None:
    client = raw_client(layout.serca, pev_files(layout), ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    assert refused(layout, client) == ("handshake-refused", [])


class PeerStub:
    """What ``peer_identity`` reads of an SSL object, for keys a handshake may not let through."""

    def __init__(self, der: bytes | None) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool) -> bytes | None:
        assert binary_form
        return self.der


@pytest.mark.parametrize(("name", "needle"), [("p384", "secp384r1"), ("rsa", "RSA-2048")])
def test_peer_identity_refuses_a_key_that_is_not_p256(
    layout: PkiLayout, name: str, needle: str
) -> None:
    leaf = x509.load_pem_x509_certificates(pev_files(layout, f"bad/{name}").cert.read_bytes())[0]
    with pytest.raises(TlsError, match=needle):
        peer_identity(PeerStub(leaf.public_bytes(Encoding.DER)))  # type: ignore[arg-type]


def test_peer_identity_refuses_a_peer_without_certificate() -> None:
    with pytest.raises(TlsError, match="no certificate"):
        peer_identity(PeerStub(None))  # type: ignore[arg-type]


def test_the_client_refuses_a_server_from_another_root(layout: PkiLayout) -> None:
    untrusting = pev_files(layout)
    client = client_context(
        layout.directory / "bad" / "untrusted-root.pem", untrusting.cert, untrusting.key
    )

    async def scenario(server: Server) -> None:
        assert (await ask(server, client)).kind == "handshake-refused"

    run_with_server(evse_files(layout), scenario)


@pytest.mark.parametrize("make", [server_context, client_context])
def test_contexts_refuse_an_own_key_that_is_not_p256(
    layout: PkiLayout, make: Callable[[Path, Path, Path], ssl.SSLContext]
) -> None:
    for name, needle in (("p384", "secp384r1"), ("rsa", "RSA-2048")):
        files = pev_files(layout, f"bad/{name}")
        with pytest.raises(TlsError, match=needle) as caught:
            make(files.ca, files.cert, files.key)
        assert str(files.cert) in str(caught.value)


def test_contexts_name_the_file_they_cannot_load(layout: PkiLayout, tmp_path: Path) -> None:
    evse = evse_files(layout)
    missing = tmp_path / "missing.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    other_key = pev_files(layout).key
    for ca, cert, key, named in (
        (missing, evse.cert, evse.key, missing),
        (garbage, evse.cert, evse.key, garbage),
        (evse.ca, missing, evse.key, missing),
        (evse.ca, garbage, evse.key, garbage),
        (evse.ca, evse.cert, missing, missing),
        (evse.ca, evse.cert, garbage, garbage),
        (evse.ca, evse.cert, other_key, other_key),
    ):
        with pytest.raises(TlsError) as caught:
            server_context(ca, cert, key)
        message = str(caught.value)
        assert str(named) in message and "\n" not in message
