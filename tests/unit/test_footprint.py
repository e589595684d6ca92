"""The memory figures of a process, read from the kernel."""

from __future__ import annotations

import os
import subprocess
import sys

from hil.footprint import children, cpu_seconds, footprint


def test_private_memory_grows_by_what_the_process_writes() -> None:
    """USS counts private pages: a child that writes 64 MB holds at least that much alone,
    and the shared libraries make its RSS larger than its PSS, its PSS at least its USS."""
    code = "import sys; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); print(1, flush=True); sys.stdin.read()"  # noqa: E501
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as child:  # fmt: skip
        assert child.stdout is not None and child.stdin is not None
        child.stdout.readline()
        used = footprint(child.pid)
        assert child.pid in children(os.getpid())
        child.stdin.close()
    assert used.uss_kb >= 64 * 1024
    assert used.rss_kb >= used.pss_kb >= used.uss_kb


def test_cpu_seconds_count_what_the_process_burned() -> None:
    code = (
        "import time\nend = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\nprint(1, flush=True)\ninput()"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as child:  # fmt: skip
        assert child.stdout is not None and child.stdin is not None
        child.stdout.readline()
        burned = cpu_seconds(child.pid)
        child.stdin.close()
    assert 0.25 <= burned < 5
