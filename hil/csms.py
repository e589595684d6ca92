"""The test CSMS (``tests/csms/csms.js``: Node, ocpp-rpc) as a process the tests, the bench
and ``make run`` drive, and the TEST credentials for OCPP's TLS (security profiles 2 and 3).

The CSMS speaks one JSON object a line (its file's header lists them): this sends commands
and keeps every event it printed, and waits for the ones a caller names.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parent.parent
CSMS_DIR = ROOT / "tests" / "csms"
SCRIPT = CSMS_DIR / "csms.js"


def node_available() -> str | None:
    """Why the test CSMS cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (CSMS_DIR / "node_modules" / "ocpp-rpc").is_dir():
        return "tests/csms/node_modules is missing (make venv installs it)"
    return None


@dataclass(frozen=True, slots=True)
class CsmsPki:
    directory: Path
    ca: Path  # the CSMS's CA: the station trusts it ([ocpp] ca_file) and the CSMS trusts
    csms_cert: Path  # station certificates it issued (security profile 3)
    csms_key: Path
    station_cert: Path
    station_key: Path
    other_ca: Path  # a CA that signed nothing here: the wrong CA
    password_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evse-gatekeeper TEST ONLY"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
           issuer_key: ec.EllipticCurvePrivateKey, ca: bool,
           extensions: list[x509.ExtensionType]) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Path:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_suffix(".key")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_path.chmod(0o600)
    return path.with_suffix(".pem")


def make_csms_pki(directory: Path, station_id: str) -> CsmsPki:
    """TEST credentials (P-256): a CSMS CA, the CSMS's server certificate (localhost,
    127.0.0.1, ::1), the station's client certificate (CN = the station id, as OCPP's
    security profile 3 requires), an unrelated CA, and a basic-auth password file."""
    directory.mkdir(parents=True, exist_ok=True)
    roots = {}
    for label in ("csms-ca", "other-ca"):
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(f"evse-gatekeeper TEST {label}")
        roots[label] = (name, key, _issue(f"evse-gatekeeper TEST {label}", key, name, key,
                                          True, []))  # fmt: skip
        _write(directory / label, roots[label][2], key)
    ca_name, ca_key, _ = roots["csms-ca"]
    hosts: list[x509.GeneralName] = [x509.DNSName("localhost")]
    hosts += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("csms", server_key, ca_name, ca_key, False, [
        x509.SubjectAlternativeName(hosts),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])])  # fmt: skip
    station_key = ec.generate_private_key(ec.SECP256R1())
    station = _issue(station_id, station_key, ca_name, ca_key, False,
                     [x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])])  # fmt: skip
    password = directory / "password"
    password.write_text(secrets.token_hex(12) + "\n")
    password.chmod(0o600)
    return CsmsPki(directory, directory / "csms-ca.pem", _write(directory / "csms", server,
                   server_key), directory / "csms.key", _write(directory / "station", station,
                   station_key), directory / "station.key", directory / "other-ca.pem",
                   password)  # fmt: skip


class Csms:
    """The running test CSMS. ``events`` holds everything it said, in order, each with
    ``at_s``: this process's monotonic clock when it arrived."""

    def __init__(self, pki: CsmsPki, heartbeat_s: int = 30, port: int = 0) -> None:
        password = pki.password_file.read_text().splitlines()[0]
        self.proc = subprocess.Popen(
            ["node", str(SCRIPT), "--cert", str(pki.csms_cert), "--key", str(pki.csms_key),
             "--client-ca", str(pki.ca), "--password", password, "--port", str(port),
             "--heartbeat", str(heartbeat_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._refs = 0
        threading.Thread(target=self._read, daemon=True, name="csms-stdout").start()
        self.port = int(self.wait_for("listening", timeout_s=15)["port"])

    @property
    def url(self) -> str:
        return f"wss://localhost:{self.port}/ocpp"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            event["at_s"] = time.monotonic()  # when it reached this process
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, event: str, since: int = 0, timeout_s: float = 10.0,
                 **match: Any) -> dict[str, Any]:  # fmt: skip
        """The first event named ``event`` at index >= ``since`` whose fields match."""
        return self._wait(lambda e: e["event"] == event and
                          all(e.get(k) == v for k, v in match.items()),
                          since, timeout_s, f"{event} {match or ''}")  # fmt: skip

    def _wait(self, wanted: Callable[[dict[str, Any]], bool], since: int, timeout_s: float,
              what: str) -> dict[str, Any]:  # fmt: skip
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for found in self.events[since:]:
                    if wanted(found):
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"the CSMS said no {what}: last {self.events[-5:]}")
                self._changed.wait(left)

    def call(self, method: str, params: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        """A request to the station; its answer: the ``result`` event (with the schema
        check of the answer), or the ``error`` event."""
        self._refs += 1
        ref, since = self._refs, len(self.events)
        self.send({"cmd": "call", "ref": ref, "method": method, "params": params})
        return self._wait(lambda e: e.get("ref") == ref and e["event"] in ("result", "error"),
                          since, timeout_s, f"answer to {method}")  # fmt: skip

    def received(self, method: str | None = None) -> list[dict[str, Any]]:
        """Every request the station sent (of ``method``), in order."""
        with self._changed:
            return [e for e in self.events if e["event"] == "received"
                    and (method is None or e["method"] == method)]  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class NoVehicle:
    """The daemon's side of a station's requests when no vehicle is authorized: what the
    tests and benches that aim a CSMS at the station alone (its limits, its validation) need
    behind it."""

    async def set_charging_profile(self, evse_id: int, profile: dict[str, Any]) -> Any:
        return "Rejected", "NotAuthorized", "no vehicle"

    async def clear_charging_profile(self, profile_id: int | None) -> str:
        return "Unknown"

    def variable(self, component: str, variable: str) -> str | None:
        return None
