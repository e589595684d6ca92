"""The ``[approvals]`` config section: where the utility approval list's keys are, how long a
fetch may take.

Owns reading and checking the section (every key file must be a readable EC P-256 public key
PEM, reported as ``approvals.utility_keys: <path>: why``). It does not load the keys for use,
nor verify lists: ``firmware.approvals`` does, with the paths read here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.approvals.jws import UtilityKeyError, load_utility_key
from firmware.approvals.policy import ApprovalPolicy, PolicyKind
from firmware.config.reader import SectionReader

LFDI = re.compile(r"^[0-9A-Fa-f]{40}$")
DEFAULT_POLICY = ApprovalPolicy()
MAX_LFDIS = 1000


@dataclass(frozen=True, slots=True)
class ApprovalsConfig:
    # PEM public keys of the utility; several so that keys can rotate. Required by the
    # approvals commands, optional for the daemon (no key: no list, default deny).
    utility_keys: tuple[Path, ...] = ()
    fetch_timeout_s: float = 10.0  # the whole HTTPS fetch: connect, TLS, download
    policy: ApprovalPolicy = DEFAULT_POLICY  # what a grant requires (firmware.approvals.policy)


def read_approvals(section: SectionReader) -> ApprovalsConfig:
    """Read ``[approvals]``; every problem goes to the section's problem list."""
    problems = section.problems
    d = ApprovalsConfig()
    config = ApprovalsConfig(
        utility_keys=_key_paths(section.raw_list("utility_keys"), section.name, problems),
        fetch_timeout_s=section.number("fetch_timeout_s", d.fetch_timeout_s, 0.5, 600.0),
        policy=ApprovalPolicy(
            PolicyKind(section.string("policy", d.policy.kind.value,
                                      tuple(k.value for k in PolicyKind))),
            _lfdis(section, "allow_lfdis"),
            _lfdis(section, "deny_lfdis"),
        ),
    )  # fmt: skip
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
