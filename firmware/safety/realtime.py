"""Real-time conditions for the safety process: SCHED_FIFO, locked memory, no cyclic GC in
the tick.

Each is asked of the kernel and may be refused (no ``CAP_SYS_NICE``, ``RLIMIT_RTPRIO`` 0,
``RLIMIT_MEMLOCK`` too small, a container): the process then says so in the log and runs
anyway, at normal priority, because a slower interlock is still an interlock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import threading

from firmware.logs import log_event

logger = logging.getLogger(__name__)

MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4  # <sys/mman.h> (MCL_ONFAULT: Linux 4.4)
THREAD_STACK_BYTES = 256 * 1024  # locked pages: keep the few threads' stacks small


def enter_realtime(priority: int) -> bool:
    """Ask for SCHED_FIFO at ``priority`` and lock memory; True when both were granted."""
    threading.stack_size(THREAD_STACK_BYTES)
    scheduled = _sched_fifo(priority)
    locked = _lock_memory()
    return scheduled and locked


def _sched_fifo(priority: int) -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as err:
        log_event(logger, "safety.realtime_refused", logging.WARNING, what="SCHED_FIFO",
                  reason=getattr(err, "strerror", None) or repr(err))  # fmt: skip
        return False
    log_event(logger, "safety.realtime", policy="SCHED_FIFO", priority=priority)
    return True


def _lock_memory() -> bool:
    """mlockall on fault: pages are locked as they are first touched, so thread stacks and
    malloc arenas are not faulted in whole."""
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
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
