"""Real-time conditions for the safety process: SCHED_FIFO, locked memory, no cyclic GC in
the tick.

Each is asked of the kernel and may be refused (no ``CAP_SYS_NICE``, ``RLIMIT_RTPRIO`` 0,
``RLIMIT_MEMLOCK`` too small, a container): the process then says so in the log and runs
anyway, at normal priority, because a slower interlock is still an interlock.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
import threading

from firmware.logs import log_event

logger = logging.getLogger(__name__)

MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4  # <sys/mman.h> (MCL_ONFAULT: Linux 4.4)
THREAD_STACK_BYTES = 256 * 1024  # locked pages: keep the few threads' stacks small
SWITCH_INTERVAL_S = 0.0005  # a thread waiting for the GIL gets it within half a ms


def enter_realtime(priority: int) -> bool:
    """Ask for SCHED_FIFO at ``priority`` and lock memory; True when both were granted.

    Called on the sampler's thread. The process's other threads (a virtual rig, the log
    writer) get ``priority - 1``: they share the GIL with the sampler, and one of them
    preempted by ordinary work while holding it would hold the sampler too.
    """
    threading.stack_size(THREAD_STACK_BYTES)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    scheduled = _sched_fifo(priority)
    locked = _lock_memory()
    _say_preemption()
    return scheduled and locked


PREEMPTIBLE = ("full", "rt", "lazy")


def preemption_model(debugfs: str | None, cmdline: str, version: str) -> str:
    """The kernel's preemption model, from what the kernel lets us read.

    ``debugfs`` is ``/sys/kernel/debug/sched/preempt`` (``none voluntary (full) lazy``: the
    chosen one in parentheses) when readable; else a ``preempt=`` boot argument on a
    ``PREEMPT_DYNAMIC`` kernel; else what ``uname -v`` says it was built with.
    """
    if debugfs and "(" in debugfs:
        return debugfs.split("(", 1)[1].split(")", 1)[0]
    words = version.split()
    if "PREEMPT_RT" in words:
        return "rt"
    argument = next((w.split("=", 1)[1] for w in cmdline.split() if w.startswith("preempt=")), "")
    if "PREEMPT_DYNAMIC" in words:
        return argument or "dynamic, model not readable"
    return "full" if "PREEMPT" in words else "none or voluntary"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as file:
            return file.read()
    except (OSError, ValueError):
        return None


def _say_preemption() -> None:
    """A kernel that does not preempt its own code paths lets another process's system call
    (a large write, its page cache work) hold a CPU for tens of milliseconds, whatever our
    priority: docs/design.md "Real time". Said once at start, as a warning where it may."""
    model = preemption_model(_read("/sys/kernel/debug/sched/preempt"),
                             _read("/proc/cmdline") or "", os.uname().version)  # fmt: skip
    level = logging.INFO if model in PREEMPTIBLE else logging.WARNING
    log_event(logger, "safety.kernel_preemption", level, model=model)


def _sched_fifo(priority: int) -> bool:
    me = threading.get_native_id()
    try:
        for task in os.listdir("/proc/self/task"):
            tid = int(task)
            level = priority if tid == me else priority - 1
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(level))
    except (OSError, AttributeError, ValueError) as err:
        log_event(logger, "safety.realtime_refused", logging.WARNING, what="SCHED_FIFO",
                  reason=getattr(err, "strerror", None) or repr(err))  # fmt: skip
        return False
    log_event(logger, "safety.realtime", policy="SCHED_FIFO", priority=priority)
    return True


def _lock_memory() -> bool:
    """mlockall on fault: pages are locked as they are first touched, so thread stacks and
    malloc arenas are not faulted in whole."""
    try:
        # the process's own symbols, libc's among them: no ctypes.util (and the tempfile,
        # shutil and subprocess it imports, and the ldconfig it runs) in this process
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)
    except (OSError, AttributeError) as err:
        log_event(logger, "safety.realtime_refused", logging.WARNING, what="mlockall",
                  reason=repr(err))  # fmt: skip
        return False
    if result != 0:
        reason = os.strerror(ctypes.get_errno())
        log_event(logger, "safety.realtime_refused", logging.WARNING, what="mlockall",
                  reason=reason)  # fmt: skip
        return False
    log_event(logger, "safety.memory_locked")
    return True


def quiet_gc() -> None:
    """Start-up garbage is collected once and the survivors frozen; the collector then runs
    only when the loop calls ``collect_between_ticks``, never on an allocation in a tick."""
    gc.collect()
    gc.freeze()
    gc.disable()


def collect_between_ticks() -> None:
    """The youngest generation only: the tick allocates little and makes no cycles."""
    gc.collect(0)
