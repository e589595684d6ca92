"""The installed list's index rebuilt out of process (``python -m firmware.approvals.index``):
a missing, tampered or foreign-format index is rebuilt and answers exactly as the parsed list;
a file the child refuses (another service area, a payload that is not base64url) or the store
refuses after it (expired) leaves the list in force in force, with the one-line reason; the
list in force stays in force throughout a rebuild; the CLI reads through a rebuilt index."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from firmware.approvals.approval_list import ApprovalList, parse_approval_list
from firmware.approvals.index import IndexedList, index_path
from firmware.approvals.install_lock import LOCK_NAME
from firmware.approvals.jws import b64url_encode, sign_es256, utility_key, verify_es256
from firmware.approvals.store import FILE_NAME, ApprovalStore
from hil.firmware_process import toml_dumps
from hil.utility import approval_payload, encode_payload, keygen, load_key, signed_list

pytestmark = pytest.mark.integration

AREA = "MOCK-UTILITY-NORTH"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FRESH = {"issued_at": NOW - timedelta(days=1), "expires_at": NOW + timedelta(days=30)}


class Site:
    """A state directory, the utility's TEST key and the daemon's store over it."""

    def __init__(self, directory: Path) -> None:
        self.state = directory / "state"
        self.state.mkdir()
        self.key_path, self.pem = keygen(directory / "keys")
        self.key = load_key(self.key_path)
        self.keys = [utility_key(self.key.public_key(), str(self.pem))]

    def store(self) -> ApprovalStore:
        return ApprovalStore(self.state, self.keys, AREA, lambda: NOW)

    def token(self, version: int, entries: int = 2_000, **fields: Any) -> str:
        fields = {**FRESH, "service_area": AREA, **fields}
        approve: dict[str, int | None] = {
            f"ISM-{n:06d}": None if n % 5 == 0 else 3_000 + n for n in range(entries)
        }
        revoke = [f"REV-{n:04d}" for n in range(entries // 10)]
        return signed_list(self.key, version=version, approve=approve, revoke=revoke, **fields)

    def index(self, token: str) -> Path:
        return index_path(self.state, hashlib.sha256(token.encode() + b"\n").digest())

    def place(self, token: str) -> None:
        """Put ``token`` in place as a copy would, without install: no index is built."""
        (self.state / FILE_NAME).write_text(token + "\n")


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def _same_answers(loaded: object, token: str, keys: Any) -> None:
    parsed: ApprovalList = parse_approval_list(verify_es256(token, keys).payload)
    assert isinstance(loaded, IndexedList)
    for name in ("version", "issuer", "service_area", "issued_at", "expires_at"):
        assert getattr(loaded, name) == getattr(parsed, name), name
    assert len(loaded.entries) == len(parsed.entries)
    for ism, entry in parsed.entries.items():
        assert loaded.lookup(ism) == entry, ism
    for ism in ("ISM-999999", "REV-", "ism-000001"):
        assert loaded.lookup(ism) is None


def _tamper(path: Path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(b"SQLite format 2\0" + b"\xff" * 4096)
    else:
        key, value = {"hash mismatch": ("jws_sha256", "00" * 32), "format": ("format", "0")}[how]
        with sqlite3.connect(path) as connection:
            connection.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
        connection.close()


@pytest.mark.parametrize("how", ["missing", "hash mismatch", "format", "garbage"])
def test_an_unusable_index_is_rebuilt_out_of_process(
    site: Site, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = site.token(3)
    site.store().install(token)
    _tamper(site.index(token), how)
    daemon = site.store()
    with caplog.at_level(logging.INFO):
        loaded = daemon.load_installed()
        if how == "hash mismatch":  # found by the file's identity: the hash check follows
            assert daemon.confirm_installed() is False
            assert any("approvals.index_disagrees" in m for m in caplog.messages)
            loaded = daemon.current
    assert daemon.problem is None
    assert any("approvals.index_rebuild" in m for m in caplog.messages)
    _same_answers(loaded, token, site.keys)
    assert sorted(p.name for p in site.state.iterdir()) == [
        site.index(token).name,
        FILE_NAME,
        LOCK_NAME,
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("another area", "list is for service area 'MOCK-UTILITY-SOUTH', this site is in "
                         f"'{AREA}'"),
        ("expired", "list version 2 expired at 2026-05-31T12:00:00Z"),
        ("not yet valid", "list version 2 is not valid before 2026-06-02T12:00:00Z"),
        ("payload not base64url", "JWS payload is not base64url"),
        ("payload not a list", "payload is missing entries"),
    ],
)  # fmt: skip
def test_a_file_refused_after_a_rebuild_leaves_the_list_in_force(
    site: Site, name: str, reason: str
) -> None:
    site.store().install(site.token(1))
    daemon = site.store()
    before = daemon.load_installed()
    assert before is not None
    day = timedelta(days=1)
    token = {
        "another area": lambda: site.token(2, service_area="MOCK-UTILITY-SOUTH"),
        "expired": lambda: site.token(2, issued_at=NOW - 2 * day, expires_at=NOW - day),
        "not yet valid": lambda: site.token(2, issued_at=NOW + day, expires_at=NOW + 2 * day),
        "payload not base64url": lambda: _signed_over(site, "not base64url!"),
        "payload not a list": lambda: sign_es256(encode_payload(_without_entries()), site.key),
    }[name]()
    site.place(token)
    assert daemon.load_installed() is None
    assert daemon.current is before and daemon.in_force() is before
    assert daemon.problem == f"installed list refused: {reason}"


def _without_entries() -> dict[str, Any]:
    payload = approval_payload(service_area=AREA, version=2, **FRESH)
    del payload["entries"]
    return payload


def _signed_over(site: Site, payload_part: str) -> str:
    """A token whose payload part is ``payload_part`` as it stands, base64url or not, signed
    all the same: only the full verification can refuse it."""
    header = b64url_encode(json.dumps({"alg": "ES256"}).encode())
    signing_input = f"{header}.{payload_part}"
    der = site.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64url_encode(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_the_list_in_force_stays_while_its_successor_is_rebuilt(site: Site) -> None:
    site.store().install(site.token(1))
    daemon = site.store()
    daemon.load_installed()
    successor = site.token(2, entries=20_000)
    site.place(successor)  # no index: the reload waits for a child process
    seen: list[int | None] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            current = daemon.in_force()
            version = None if current is None else current.version
            if not seen or seen[-1] != version:
                seen.append(version)
            time.sleep(0.0005)

    poller = threading.Thread(target=poll)
    poller.start()
    loaded = daemon.load_installed()
    time.sleep(0.05)
    done.set()
    poller.join()
    assert loaded is not None and loaded.version == 2, daemon.problem
    assert seen == [1, 2]
    _same_answers(loaded, successor, site.keys)


def test_the_cli_reads_through_a_rebuilt_index(site: Site, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml_dumps({
        "paths": {"state_dir": str(site.state)},
        "site": {"service_area": AREA},
        "approvals": {"utility_keys": [str(site.pem)]},
    }))  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)  # the CLI's clock is the real one
    token = site.token(5, issued_at=now - timedelta(hours=1), expires_at=now + timedelta(days=1))
    list_file = tmp_path / "v5.jws"
    list_file.write_text(token + "\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "firmware", "approvals", *args,
                               "--config", str(config)], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    assert run("install", str(list_file)).returncode == 0
    site.index(token).unlink()
    checked = run("check", "ISM-000001")
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "approved\n", "")
    assert site.index(token).exists()
    assert run("check", "REV-0001").stdout == "revoked\n"
    assert "entry_count=2200" in run("show").stdout
