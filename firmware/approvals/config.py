"""The ``[approvals]`` config section: where the utility approval list's keys are, how long a
fetch may take, and where and how often the daemon fetches the list on its own.

Owns reading and checking the section (every key file must be a readable EC P-256 public key
PEM, reported as ``approvals.utility_keys: <path>: why``; ``url`` https:// with a host and no
credentials; ``ca_file`` a CA bundle TLS can load). It does not load the keys for use, nor
verify lists, nor fetch: ``firmware.approvals`` does, with what is read here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from firmware.approvals.jws import UtilityKeyError, load_utility_key
from firmware.approvals.policy import ApprovalPolicy, PolicyKind
from firmware.config.reader import SectionReader

LFDI = re.compile(r"^[0-9A-Fa-f]{40}$")
DEFAULT_POLICY = ApprovalPolicy()
MAX_LFDIS = 1000
MIN_REFRESH_S = 60  # the utility's server is not polled faster than once a minute
MAX_REFRESH_S = 86_400  # nor the list left unfetched for more than a day
MAX_URL_CHARS = 2048


@dataclass(frozen=True, slots=True)
class ApprovalsConfig:
    # PEM public keys of the utility; several so that keys can rotate. Required by the
    # approvals commands, optional for the daemon (no key: no list, default deny).
    utility_keys: tuple[Path, ...] = ()
    fetch_timeout_s: float = 10.0  # the whole HTTPS fetch: connect, TLS, download
    url: str | None = None  # the daemon fetches the list from here (None: it does not)
    refresh_s: int = 3600  # how often, once a fetch succeeded or was refused
    ca_file: Path | None = None  # the CA the server must chain to; None: the system's
    policy: ApprovalPolicy = DEFAULT_POLICY  # what a grant requires (firmware.approvals.policy)


def read_approvals(section: SectionReader) -> ApprovalsConfig:
    """Read ``[approvals]``; every problem goes to the section's problem list."""
    problems = section.problems
    d = ApprovalsConfig()
    keys = _key_paths(section.raw_list("utility_keys"), section.name, problems)
    url = section.optional_string("url")
    ca_file = section.optional_string("ca_file")
    config = ApprovalsConfig(
        utility_keys=keys,
        fetch_timeout_s=section.number("fetch_timeout_s", d.fetch_timeout_s, 0.5, 600.0),
        policy=ApprovalPolicy(
            PolicyKind(section.string("policy", d.policy.kind.value,
                                      tuple(k.value for k in PolicyKind))),
            _lfdis(section, "allow_lfdis"),
            _lfdis(section, "deny_lfdis"),
        ),
        url=_url(url, section.name, problems) if url else None,
        refresh_s=section.integer("refresh_s", d.refresh_s, MIN_REFRESH_S, MAX_REFRESH_S),
        ca_file=_ca_file(ca_file, section.name, problems) if ca_file else None,
    )  # fmt: skip
    if config.url is not None and not keys:
        problems.append(f"{section.name}.url: needs utility_keys to verify what it fetches")
    section.finish()
    return config


def _lfdis(section: SectionReader, key: str) -> frozenset[str]:
    raw = section.raw_list(key)
    if raw is None:
        return frozenset()
    where = f"{section.name}.{key}"
    if not isinstance(raw, list) or len(raw) > MAX_LFDIS:
        section.problems.append(f"{where}: must be an array of at most {MAX_LFDIS} LFDIs")
        return frozenset()
    bad = [str(v)[:48] for v in raw if not isinstance(v, str) or not LFDI.match(v)]
    if bad:
        section.problems.append(f"{where}: not an LFDI (40 hex digits): {bad[0]!r}")
        return frozenset()
    return frozenset(v.upper() for v in raw)


def _url(url: str, section: str, problems: list[str]) -> str | None:
    where = f"{section}.url"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError as err:
        problems.append(f"{where}: not a URL: {err}")
        return None
    if parts.scheme.lower() != "https":
        problems.append(f"{where}: must be an https:// URL, got {url[:80]!r}")
    elif not parts.hostname:
        problems.append(f"{where}: has no host")
    elif parts.username is not None or parts.password is not None:
        problems.append(f"{where}: must not carry credentials (they would be logged)")
    elif len(url) > MAX_URL_CHARS or not url.isprintable() or " " in url:
        problems.append(f"{where}: must be printable, without spaces, {MAX_URL_CHARS} at most")
    else:
        return url
    return None


def _ca_file(path: str, section: str, problems: list[str]) -> Path | None:
    import ssl  # only with a ca_file: status and sessions read the config without TLS

    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as err:
        reason = err.reason or "unreadable"
        problems.append(f"{section}.ca_file: {path}: not a PEM CA bundle ({reason})")
    except OSError as err:
        problems.append(f"{section}.ca_file: {path}: cannot read: {err.strerror or err}")
    else:
        return Path(path)
    return None


def _key_paths(raw: Any, section: str, problems: list[str]) -> tuple[Path, ...]:
    where = f"{section}.utility_keys"
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip() for p in raw):
        problems.append(f"{where}: must be an array of PEM file paths")
        return ()
    paths = tuple(Path(p) for p in raw)
    for path in sorted(set(paths)):
        if paths.count(path) > 1:
            problems.append(f"{where}: {path}: listed more than once")
    for path in dict.fromkeys(paths):
        problem = _key_problem(path)
        if problem:
            problems.append(f"{where}: {problem}")
    return paths


def _key_problem(path: Path) -> str | None:
    try:
        path.read_bytes()
    except OSError:
        return f"{path}: cannot read"
    try:
        load_utility_key(path)
    except UtilityKeyError as err:
        return str(err)  # "<path>: not a PEM public key" or "<path>: not an EC P-256 ..."
    return None
