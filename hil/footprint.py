"""What a process costs in memory, as the kernel counts it: RSS, PSS and USS.

RSS counts every page mapped, shared ones whole; PSS divides each shared page among the
processes that map it; USS is what the process alone holds (its private pages), i.e. what
stopping it would give back. Read from ``/proc/<pid>/smaps_rollup`` (Linux 4.14).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Footprint:
    rss_kb: int
    pss_kb: int
    uss_kb: int

    def __str__(self) -> str:
        return (
            f"RSS {self.rss_kb / 1024:.1f} MB, PSS {self.pss_kb / 1024:.1f} MB, "
            f"USS {self.uss_kb / 1024:.1f} MB"
        )


def footprint(pid: int) -> Footprint:
    fields: dict[str, int] = {}
    for line in (PROC / str(pid) / "smaps_rollup").read_text(encoding="ascii").splitlines()[1:]:
        name, _, rest = line.partition(":")
        words = rest.split()
        if words and words[0].isdigit():
            fields[name] = int(words[0])
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return Footprint(fields.get("Rss", 0), fields.get("Pss", 0), private)


def _stat(pid: int | str) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which is in parentheses and
    may hold spaces): index 1 is the parent's pid, 11 and 12 the user and system CPU ticks."""
    stat = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    return stat.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from each ``/proc/<n>/stat``)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat(entry.name)[1])
        except OSError:
            continue  # gone meanwhile
        if parent == pid:
            found.append(int(entry.name))
    return sorted(found)


def daemon_pids(gatekeeper_pid: int) -> dict[str, int]:
    """The gatekeeper process and its safety process (its one child running the board)."""
    result = {"gatekeeper": gatekeeper_pid}
    for child in children(gatekeeper_pid):
        cmdline = (PROC / str(child) / "cmdline").read_bytes().split(b"\0")
        if b"firmware.safety" in cmdline:
            result["safety"] = child
    return result
