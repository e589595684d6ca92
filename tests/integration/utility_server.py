"""A TEST utility's HTTPS server on 127.0.0.1 for the approval-list refresh: a TEST CA made
with ``cryptography``, a server certificate it signs (for 127.0.0.1), and an aiohttp server on
its own thread and loop that serves one list at ``/list.jws`` with an ETag and a
Last-Modified, answers 304 to a request that names them, and records every request's
conditional headers. ``down`` makes it answer 503; ``stop`` closes it (connection refused)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PATH = "/list.jws"


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def make_test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """``ca.pem`` (a TEST CA) and ``server.pem``/``server.key`` it signed for 127.0.0.1."""
    now = datetime.now(UTC)
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = (
        x509.CertificateBuilder().subject_name(_name("TEST utility CA"))
        .issuer_name(_name("TEST utility CA")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder().subject_name(_name("TEST approvals server"))
        .issuer_name(ca.subject).public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(leaf_key))
    return paths


@dataclass
class UtilityServer:
    directory: Path
    body: bytes = b""
    etag: str = '"v0"'
    last_modified: str = format_datetime(datetime(2026, 1, 1, tzinfo=UTC), usegmt=True)
    down: bool = False
    # each request's (If-None-Match, If-Modified-Since)
    requests: list[tuple[str | None, str | None]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.ca, cert, key = make_test_ca(self.directory)
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{PATH}"

    def publish(self, body: bytes | str, etag: str) -> None:
        """Serve ``body`` from now on, identified by ``etag``."""
        self.body = body.encode() if isinstance(body, str) else body
        self.etag = etag

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._list)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _list(self, request: web.Request) -> web.Response:
        if_none_match = request.headers.get("If-None-Match")
        self.requests.append((if_none_match, request.headers.get("If-Modified-Since")))
        if self.down:
            return web.Response(status=503, text="down for maintenance")
        headers = {"ETag": self.etag, "Last-Modified": self.last_modified}
        if if_none_match == self.etag:  # RFC 9110 §13.1.2: If-None-Match wins
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, headers=headers)
