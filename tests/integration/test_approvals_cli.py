"""``evse-gatekeeper approvals`` as an operator meets it, in a real process: install, show,
check, and fetch from a real HTTPS server on 127.0.0.1 with a self-signed certificate.

Each runs as the operator types it: ``evse-gatekeeper approvals ACTION ... --config PATH``
(``python -m firmware``).
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firmware.approvals.config import ApprovalsConfig, read_approvals
from firmware.approvals.jws import sign_es256
from firmware.approvals.store import FILE_NAME
from firmware.config.reader import SectionReader
from hil.firmware_process import toml_dumps
from hil.utility import approval_payload, encode_payload, keygen, load_key, signed_list

pytestmark = pytest.mark.integration

COMMAND = [sys.executable, "-m", "firmware", "approvals"]
AREA = "MOCK-UTILITY-NORTH"


@dataclass
class Site:
    directory: Path
    config: Path
    state: Path
    key: Path
    public: Path

    def write_config(self, **approvals: Any) -> None:
        settings: dict[str, Any] = {"utility_keys": [str(self.public)], **approvals}
        self.config.write_text(
            toml_dumps(
                {
                    "paths": {"state_dir": str(self.state)},
                    "site": {"service_area": AREA},
                    "approvals": {k: v for k, v in settings.items() if v is not None},
                }
            )
        )

    def list_file(self, name: str, **fields: Any) -> Path:
        fields.setdefault("service_area", AREA)
        fields.setdefault("version", 1)
        path = self.directory / name
        path.write_text(signed_list(load_key(self.key), **fields) + "\n")
        return path

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def installed(self) -> bytes | None:
        path = self.state / FILE_NAME
        return path.read_bytes() if path.exists() else None


@pytest.fixture
def site(tmp_path: Path) -> Site:
    key, public = keygen(tmp_path / "keys")
    made = Site(tmp_path, tmp_path / "config.toml", tmp_path / "state", key, public)
    made.write_config()
    return made


def _refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("evse-gatekeeper: approvals: "), lines
    return lines[0].removeprefix("evse-gatekeeper: approvals: ")


def test_install_show_and_check(site: Site) -> None:
    listed = site.list_file(
        "v3.jws", version=3, approve={"ISM-1": 7200, "ISM-2": None}, revoke=["ISM-3"]
    )
    installed = site.run("install", str(listed))
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.startswith("installed version 3 (3 entries, service area")
    shown = site.run("show")
    assert shown.returncode == 0 and "version=3" in shown.stdout
    assert 'issuer="TEST utility"' in shown.stdout and "entry_count=3" in shown.stdout
    as_json = site.run("show", "--json")
    summary = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and as_json.stdout.count("\n") == 1
    assert set(summary) == {
        "version",
        "issuer",
        "service_area",
        "issued_at",
        "expires_at",
        "entry_count",
    }
    assert (summary["version"], summary["service_area"], summary["entry_count"]) == (3, AREA, 3)
    assert summary["expires_at"].endswith("Z")
    for ism, word, code in [
        ("ISM-1", "approved", 0),
        ("ISM-2", "approved", 0),
        ("ISM-3", "revoked", 1),
        ("ISM-9", "not listed", 1),
    ]:
        checked = site.run("check", ism)
        assert (checked.stdout, checked.returncode) == (f"{word}\n", code), ism


def test_show_and_check_without_a_list(site: Site) -> None:
    shown = site.run("show", "--json")
    assert (shown.returncode, shown.stdout) == (1, "no list installed\n")
    checked = site.run("check", "ISM-1")
    assert (checked.returncode, checked.stdout) == (1, "not listed\n")


def test_a_refused_list_changes_nothing(site: Site) -> None:
    site.run("install", str(site.list_file("v3.jws", version=3)))
    before = site.installed()
    assert before is not None
    for path, reason in [
        (site.list_file("old.jws", version=2), "version 2 is older than the installed version 3"),
        (site.list_file("south.jws", version=4, service_area="SOUTH"), "list is for service area"),
    ]:
        assert _refusal(site.run("install", str(path))).startswith(reason)
        assert site.installed() == before
    tampered = site.directory / "tampered.jws"
    head, body, signature = site.list_file("v5.jws", version=5).read_text().split(".")
    tampered.write_text(
        f"{head}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{signature}"
    )
    assert "does not verify" in _refusal(site.run("install", str(tampered)))
    assert site.installed() == before


def test_a_5000_digit_integer_is_one_line_not_a_traceback(site: Site) -> None:
    site.run("install", str(site.list_file("v3.jws", version=3)))
    before = site.installed()
    payload = encode_payload(approval_payload(service_area=AREA, version=4))
    huge = payload.replace(b'"version":4', b'"version":' + b"7" * 5000)
    path = site.directory / "huge.jws"
    path.write_text(sign_es256(huge, load_key(site.key)) + "\n")
    reason = _refusal(site.run("install", str(path)))
    assert reason.startswith("payload has an integer of more than 4300 digits"), reason
    assert site.installed() == before


def test_an_unreadable_file_is_refused(site: Site) -> None:
    assert "cannot read" in _refusal(site.run("install", str(site.directory / "missing.jws")))


def test_a_removed_key_voids_the_installed_list(site: Site) -> None:
    site.run("install", str(site.list_file("v1.jws", approve={"ISM-1": None})))
    other, _ = keygen(site.directory / "other")
    site.write_config(utility_keys=[str(other.with_suffix(".pem"))])
    shown = site.run("show")
    assert (shown.returncode, shown.stdout) == (1, "no list installed\n")
    assert shown.stderr.startswith("evse-gatekeeper: approvals: installed list refused: ")
    assert site.run("check", "ISM-1").stdout == "not listed\n"


def test_config_without_keys_is_refused(site: Site) -> None:
    site.config.write_text(toml_dumps({"paths": {"state_dir": str(site.state)}}))
    reason = _refusal(site.run("show"))
    assert reason == "approvals.utility_keys: not set in the config"


def test_a_missing_key_file_is_a_config_problem(site: Site) -> None:
    missing = site.directory / "nope.pem"
    site.write_config(utility_keys=[str(missing)], fetch_timeout_s="soon")
    result = site.run("show")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"evse-gatekeeper: config: approvals.utility_keys: {missing}: cannot read",
        "evse-gatekeeper: config: approvals.fetch_timeout_s: must be a number, got 'soon'",
    ]


def test_read_approvals_reports_every_problem(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    problems: list[str] = []
    table = {"utility_keys": [str(junk), str(junk)], "colour": "blue"}
    read_approvals(SectionReader("approvals", table, problems))
    assert problems == [
        f"approvals.utility_keys: {junk}: listed more than once",
        f"approvals.utility_keys: {junk}: not a PEM public key",
        "approvals.colour: unknown key",
    ]
    problems.clear()
    assert read_approvals(SectionReader("approvals", None, problems)) == (ApprovalsConfig((), 10.0))
    read_approvals(SectionReader("approvals", {"utility_keys": "k.pem"}, problems))
    assert problems == ["approvals.utility_keys: must be an array of PEM file paths"]


# --- fetch ----------------------------------------------------------------------------------


@dataclass
class Server:
    """An HTTPS server on 127.0.0.1 answering ``routes`` (path -> (status, headers, body))."""

    port: int
    ca: Path
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TEST approvals server")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    cert, key = _self_signed(tmp_path)
    state = Server(0, cert)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path == "/stall":
                time.sleep(3)
            status, headers, body = state.routes.get(self.path, (404, {}, b"no such list"))
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_fetch_installs_over_verified_https(site: Site, server: Server) -> None:
    server.routes["/list.jws"] = (200, {}, site.list_file("v7.jws", version=7).read_bytes())
    result = site.run("fetch", server.url("/list.jws"), "--ca", str(server.ca))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("installed version 7")
    assert site.installed() == (site.directory / "v7.jws").read_bytes()


def test_fetch_refuses_plain_http_without_connecting(site: Site, server: Server) -> None:
    url = server.url("/list.jws").replace("https://", "http://")
    assert _refusal(site.run("fetch", url)) == f"only https:// URLs are fetched, not {url!r}"
    assert server.requests == [] and site.installed() is None


def test_fetch_verifies_the_server_certificate(site: Site, server: Server) -> None:
    server.routes["/list.jws"] = (200, {}, site.list_file("v7.jws", version=7).read_bytes())
    result = site.run("fetch", server.url("/list.jws"))  # the system trust store: not ours
    assert result.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and site.installed() is None


def test_fetch_does_not_follow_redirects(site: Site, server: Server) -> None:
    server.routes["/moved"] = (302, {"Location": "http://127.0.0.1:1/list.jws"}, b"")
    result = site.run("fetch", server.url("/moved"), "--ca", str(server.ca))
    assert result.returncode == 1 and "HTTP 302" in result.stderr and site.installed() is None


def test_fetch_reports_an_http_error(site: Site, server: Server) -> None:
    result = site.run("fetch", server.url("/absent"), "--ca", str(server.ca))
    assert result.returncode == 1 and "HTTP 404" in result.stderr and site.installed() is None


def test_a_fetched_list_is_verified_like_a_file(site: Site, server: Server) -> None:
    other, _ = keygen(site.directory / "other")
    forged = signed_list(load_key(other), service_area=AREA, version=9)
    server.routes["/list.jws"] = (200, {}, forged.encode())
    reason = _refusal(site.run("fetch", server.url("/list.jws"), "--ca", str(server.ca)))
    assert reason.startswith("unknown utility key") and site.installed() is None


def test_fetch_gives_up_after_the_timeout(site: Site, server: Server) -> None:
    site.write_config(fetch_timeout_s=0.5)
    started = time.monotonic()
    result = site.run("fetch", server.url("/stall"), "--ca", str(server.ca))
    assert result.returncode == 1 and "cannot fetch" in result.stderr
    assert time.monotonic() - started < 2.9 and site.installed() is None
