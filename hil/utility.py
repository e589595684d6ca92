"""TEST utility keys and signed approval lists, for the tests, the benches and ``make run``.

``python -m hil.utility keygen DIR`` writes ``utility.key`` (mode 0600) and ``utility.pem``,
both marked TEST above the PEM block. ``python -m hil.utility sign --key K --service-area S
--version N --approve ISM[:max_w] ... --revoke ISM ... -o FILE`` writes a list signed as a
utility would (ES256 compact JWS, ``kid`` = the key's RFC 7638 thumbprint). The functions are
importable so that tests build lists the same way. Never a production utility's tool.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from firmware.approvals.approval_list import LIST_TYPE, rfc3339
from firmware.approvals.jws import jwk_thumbprint, load_utility_keys, sign_es256
from firmware.approvals.store import ApprovalStore

TEST_MARK = b"TEST utility key for evse-gatekeeper tests and benches: NOT FOR PRODUCTION\n"
KEY_FILE, PUBLIC_FILE = "utility.key", "utility.pem"
TEST_ISSUER = "TEST utility"


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return TEST_MARK + key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def keygen(directory: Path) -> tuple[Path, Path]:
    """Write a new TEST key pair into ``directory``; refuses to overwrite one."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path, pem_path = directory / KEY_FILE, directory / PUBLIC_FILE
    key = new_key()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never overwrite
    with os.fdopen(fd, "wb") as handle:
        handle.write(TEST_MARK + private)
    pem_path.write_bytes(public_pem(key))
    return key_path, pem_path


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def approval_payload(
    *,
    service_area: str,
    version: int,
    approve: Mapping[str, int | None] | None = None,
    revoke: Iterable[str] = (),
    issued_at: datetime | None = None,
    expires_at: datetime | None = None,
    issuer: str = TEST_ISSUER,
) -> dict[str, Any]:
    """The payload as a dict, for tests to alter before signing. Times default to now and
    now + 30 days (UTC, whole seconds)."""
    issued = issued_at or datetime.now(UTC).replace(microsecond=0)
    entries: list[dict[str, Any]] = []
    for ism, limit in (approve or {}).items():
        entry: dict[str, Any] = {"ism": ism, "status": "approved"}
        if limit is not None:
            entry["max_discharge_w"] = limit
        entries.append(entry)
    entries.extend({"ism": ism, "status": "revoked"} for ism in revoke)
    return {
        "type": LIST_TYPE,
        "version": version,
        "issuer": issuer,
        "service_area": service_area,
        "issued_at": rfc3339(issued),
        "expires_at": rfc3339(expires_at or issued + timedelta(days=30)),
        "entries": entries,
    }


def encode_payload(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def sign_payload(key: ec.EllipticCurvePrivateKey, payload: Any, *, with_kid: bool = True) -> str:
    """A compact JWS of ``payload`` (any JSON value: tests sign bad ones too)."""
    kid = jwk_thumbprint(key.public_key()) if with_kid else None
    return sign_es256(encode_payload(payload), key, kid)


def signed_list(key: ec.EllipticCurvePrivateKey, **fields: Any) -> str:
    """``sign_payload(key, approval_payload(**fields))``."""
    return sign_payload(key, approval_payload(**fields))


class UtilityAuthority:
    """A TEST utility for a daemon under test: a fresh key, its public half at ``pem`` (what
    ``[approvals] utility_keys`` names), and lists it signs installed into a state directory
    as the device's own store would install them."""

    def __init__(self, directory: Path, service_area: str) -> None:
        self.key = new_key()
        self.pem = directory / PUBLIC_FILE
        self.pem.write_bytes(public_pem(self.key))
        self.service_area = service_area
        self.version = 0

    @property
    def config(self) -> dict[str, list[str]]:
        """The ``[approvals]`` table that trusts this utility."""
        return {"utility_keys": [str(self.pem)]}

    def sign(self, **fields: Any) -> str:
        """The next version (or ``version=``) for this service area, with ``fields``."""
        self.version = int(fields.pop("version", self.version + 1))
        return signed_list(self.key, service_area=self.service_area, version=self.version, **fields)

    def install(self, state_dir: Path, **fields: Any) -> None:
        """Sign (as ``sign``) and install into the store in ``state_dir``."""
        state_dir.mkdir(parents=True, exist_ok=True)
        store = ApprovalStore(state_dir, load_utility_keys([self.pem]), self.service_area)
        store.install(self.sign(**fields))


def _parse_approvals(values: Sequence[str]) -> dict[str, int | None]:
    approve: dict[str, int | None] = {}
    for value in values:
        ism, colon, limit = value.rpartition(":")
        if not colon:
            approve[value] = None
        elif limit.isdigit() and ism:
            approve[ism] = int(limit)
        else:
            raise SystemExit(f"hil.utility: --approve {value!r}: expected ISM or ISM:max_w")
    return approve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hil.utility", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keygen", help="write a TEST utility key pair into DIR")
    keys.add_argument("directory", metavar="DIR", type=Path)
    sign = commands.add_parser("sign", help="write a TEST-signed approval list")
    sign.add_argument("--key", required=True, type=Path, help="the TEST utility.key")
    sign.add_argument("--service-area", required=True)
    sign.add_argument("--version", required=True, type=int)
    sign.add_argument("--issuer", default=TEST_ISSUER)
    sign.add_argument("--approve", nargs="+", default=[], metavar="ISM[:max_w]")
    sign.add_argument("--revoke", nargs="+", default=[], metavar="ISM")
    sign.add_argument("--expires-in-days", type=float, default=30.0, metavar="D")
    sign.add_argument(
        "--issued-at", type=datetime.fromisoformat, help="RFC 3339 UTC (default: now)"
    )
    sign.add_argument("-o", "--output", required=True, type=Path, metavar="FILE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keygen":
        if (args.directory / KEY_FILE).exists():
            print(f"hil.utility: {args.directory} already holds a {KEY_FILE}", file=sys.stderr)
            return 2
        for path in keygen(args.directory):
            print(f"wrote {path} (TEST key, not for production)")
        return 0
    issued = args.issued_at or datetime.now(UTC)
    issued = (issued.replace(tzinfo=UTC) if issued.tzinfo is None else issued).astimezone(UTC)
    issued = issued.replace(microsecond=0)
    payload = approval_payload(
        service_area=args.service_area,
        version=args.version,
        approve=_parse_approvals(args.approve),
        revoke=args.revoke,
        issued_at=issued,
        expires_at=issued + timedelta(days=args.expires_in_days),
        issuer=args.issuer,
    )
    args.output.write_text(sign_payload(load_key(args.key), payload) + "\n")
    print(f"wrote {args.output}: version {args.version}, {len(payload['entries'])} entries (TEST)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
