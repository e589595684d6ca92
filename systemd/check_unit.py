"""``make unit-check``: the service unit as systemd itself judges it.

1. ``systemd-analyze verify`` on a copy whose ExecStart points at this checkout's
   ``evse-gatekeeper`` (verify insists the binary exists; on a laptop /opt is empty);
2. ``systemd-analyze security --offline=yes``: the overall exposure, which must be <= 2.5.

Prints both results and the exposure figure; exit 0 when both pass, 1 when either fails,
77 (skipped) when systemd-analyze is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

UNIT = Path(__file__).with_name("evse-gatekeeper.service")
INSTALLED_BINARY = "/opt/evse-gatekeeper/venv/bin/evse-gatekeeper"
MAX_EXPOSURE = 2.5
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def exposure(unit: Path) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = EXPOSURE.search(done.stdout + done.stderr)
    if found is None:
        raise RuntimeError(f"no exposure figure in systemd-analyze's output: {done.stderr.strip()}")
    return float(found.group(1))


def verify(unit: Path) -> str:
    """The problems systemd-analyze finds in the unit ("" when none)."""
    binary = Path(sys.executable).with_name("evse-gatekeeper")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED_BINARY, str(binary)))
        done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
    problems = (done.stdout + done.stderr).strip()
    return problems or ("" if done.returncode == 0 else f"exit {done.returncode}")


def main() -> int:
    if shutil.which("systemd-analyze") is None:
        print("unit-check: skipped: systemd-analyze is not installed")
        return 77
    problems = verify(UNIT)
    print(f"systemd-analyze verify {UNIT.name}: {problems or 'ok'}")
    level = exposure(UNIT)
    verdict = "ok" if level <= MAX_EXPOSURE else f"over {MAX_EXPOSURE}"
    print(f"systemd-analyze security --offline=yes: exposure {level} ({verdict})")
    return 0 if not problems and level <= MAX_EXPOSURE else 1


if __name__ == "__main__":
    sys.exit(main())
