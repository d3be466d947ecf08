"""Keep each serving process on a CPU of its own, and the programs it starts free of that.

A process's threads take turns on the GIL. When they run on two CPUs, every hand-over wakes a thread on the
other CPU and moves the interpreter's state between the CPUs' caches: on a 2-CPU machine one unpinned `kjdms
serve` process made 109 review pages a second where the same process on one CPU made 226 (bench/README.md).
So each serving process keeps its request threads on one CPU, a different one for each process, when there are
CPUs enough; with more processes than CPUs the kernel balances them better than a fixed share would.
"""
from __future__ import annotations

import os

# Every CPU this process could use before it pinned itself: what the programs it starts get back.
_cpus_before_pinning: frozenset[int] | None = None


def cpus_for(processes: int) -> list[int] | None:
    """Return the CPU for each of processes serving processes, or None when pinning would not help."""
    if not hasattr(os, "sched_setaffinity"):
        return None  # not Linux
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or processes > len(allowed):
        return None
    return allowed[:processes]


def pin_this_thread(cpu: int) -> None:
    """Run the calling thread, and every thread it starts from now on, on cpu alone."""
    global _cpus_before_pinning
    if _cpus_before_pinning is None:
        _cpus_before_pinning = frozenset(os.sched_getaffinity(0))
    # On Linux, 0 is the calling thread: threads started earlier (the background worker) keep every CPU.
    os.sched_setaffinity(0, {cpu})


def release(pid: int) -> None:
    """Give a program this process started every CPU this process had before it pinned itself."""
    if _cpus_before_pinning is None:
        return
    try:
        os.sched_setaffinity(pid, _cpus_before_pinning)
    except OSError:
        pass  # it has ended already or changed its user: it runs where it is, which works, only slower
