"""The ``[ocpp]`` config section: where the operator's management system (CSMS) is, who this
station is to it, and how it proves that (OCPP security profile 2 or 3).

Off unless ``url`` is given. Profile 2: HTTP basic auth over TLS, the password read from
``password_file`` (never from the config, which is world-readable on many boards); profile 3:
a client certificate (``cert_file``, ``key_file``). Either way the CSMS's certificate must
chain to ``ca_file`` (the system's CAs when absent). The files are checked here (readable,
a password of 16..40 characters as OCPP's BasicAuthPassword); TLS loads them at start.
docs/ocpp.md says what is sent when.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from firmware.config.reader import SectionReader
from firmware.ocpp.limits import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    import ssl

VERSIONS = ("2.0.1", "2.1")
PROFILES = (2, 3)
STATION_ID = re.compile(r"^[A-Za-z0-9*\-_=:+|@.]{1,48}$")  # identifierString, 48 max
PASSWORD_CHARS = (16, 40)  # OCPP 2.0.1 SecurityCtrlr.BasicAuthPassword: 16..40
MAX_QUEUE = 100_000


@dataclass(frozen=True, slots=True)
class OcppConfig:
    url: str | None = None  # wss://host[:port]/path; the station id is appended (OCPP-J)
    station_id: str = "evse-gatekeeper"
    version: str = "2.1"
    security_profile: int = 2
    password_file: Path | None = None  # profile 2
    cert_file: Path | None = None  # profile 3
    key_file: Path | None = None  # profile 3
    ca_file: Path | None = None  # the CSMS's CA; None: the system's
    heartbeat_s: int = 300  # until BootNotification's interval says otherwise
    meter_interval_s: int = 60  # TransactionEvent Updated with meter values, while plugged in
    queue_max: int = 10_000  # unsent events kept in the journal while the CSMS is away
    reconnect_max_s: int = 60  # the backoff between attempts doubles up to this
    max_message_bytes: int = MAX_MESSAGE_BYTES  # a longer message from the CSMS: closed
    # the CSMS's requests handled per second on average (a burst of 4 s' worth): far above
    # what a CSMS sends one station in normal use, and each request is bounded in size and
    # shape, so the loop spends a few percent on them at most
    max_requests_per_s: int = 10

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def endpoint(self) -> str:
        assert self.url is not None
        return f"{self.url.rstrip('/')}/{self.station_id}"


def read_ocpp(section: SectionReader) -> OcppConfig:
    """Read ``[ocpp]``; every problem goes to the section's problem list."""
    d, name, problems = OcppConfig(), section.name, section.problems
    url = section.optional_string("url")
    profile = section.integer("security_profile", d.security_profile, 2, 3)
    config = OcppConfig(
        url=_url(url, name, problems) if url else None,
        station_id=section.string("station_id", d.station_id),
        version=section.string("version", d.version, VERSIONS),
        security_profile=profile,
        password_file=_file(section, "password_file"),
        cert_file=_file(section, "cert_file"),
        key_file=_file(section, "key_file"),
        ca_file=_file(section, "ca_file"),
        heartbeat_s=section.integer("heartbeat_s", d.heartbeat_s, 1, 86_400),
        meter_interval_s=section.integer("meter_interval_s", d.meter_interval_s, 1, 3600),
        queue_max=section.integer("queue_max", d.queue_max, 100, MAX_QUEUE),
        reconnect_max_s=section.integer("reconnect_max_s", d.reconnect_max_s, 1, 3600),
        max_message_bytes=section.integer("max_message_bytes", d.max_message_bytes, 4096, 2**20),
        max_requests_per_s=section.integer("max_requests_per_s", d.max_requests_per_s, 1, 100),
    )
    if not STATION_ID.match(config.station_id):
        problems.append(f"{name}.station_id: 1..48 of A-Z a-z 0-9 *-_=:+|@. (OCPP identifier)")
    if config.url is not None:
        problems += _credentials(config, name) or _usable(config, name)
    section.finish()
    return config


def _url(url: str, name: str, problems: list[str]) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "wss" or not parts.hostname:
        problems.append(f"{name}.url: must be wss://host[:port][/path] (profiles 2 and 3 are TLS)")
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        problems.append(f"{name}.url: no credentials, query or fragment (password_file has it)")
        return None
    return url


def _file(section: SectionReader, key: str) -> Path | None:
    value = section.optional_string(key)
    if value is None:
        return None
    path = Path(value)
    try:
        path.read_bytes()
    except OSError as err:
        section.problems.append(f"{section.name}.{key}: {path}: {err.strerror}")
        return None
    return path


def _credentials(config: OcppConfig, name: str) -> list[str]:
    if config.security_profile == 3:
        missing = [k for k in ("cert_file", "key_file") if getattr(config, k) is None]
        return [f"{name}.{k}: required by security_profile 3" for k in missing]
    if config.password_file is None:
        return [f"{name}.password_file: required by security_profile 2 (basic auth)"]
    password = read_password(config.password_file)
    low, high = PASSWORD_CHARS
    if not low <= len(password) <= high:
        return [f"{name}.password_file: the password must be {low}..{high} characters"]
    return []


def tls_context(config: OcppConfig) -> ssl.SSLContext:
    """TLS 1.2+, the CSMS's certificate verified against ``ca_file`` and its host name; with
    security profile 3, our certificate offered. ssl.SSLError or OSError if a file is
    unusable."""
    import ssl  # here: ``status`` and ``sessions`` read the config without loading TLS

    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.security_profile == 3:
        assert config.cert_file is not None and config.key_file is not None
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


def _usable(config: OcppConfig, name: str) -> list[str]:
    """The TLS files loaded as the station will load them: refused at start, in one line,
    rather than found unusable by the connection."""
    import ssl

    try:
        ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    except (ssl.SSLError, OSError, ValueError) as err:
        return [f"{name}.ca_file: {config.ca_file}: no usable CA certificate ({_said(err)})"]
    try:
        tls_context(config)
    except (ssl.SSLError, OSError, ValueError) as err:
        return [f"{name}.cert_file: {config.cert_file} and key_file {config.key_file} are not "
                f"a usable certificate and key ({_said(err)})"]  # fmt: skip
    return []


def _said(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def read_password(path: Path) -> str:
    """The basic-auth password: the file's first line, without its line end."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines[0] if lines else ""
