"""Keep each serving process on a CPU of its own, and the programs it starts free of that.

A process's threads take turns on the GIL. When they run on two CPUs, every hand-over wakes a thread on the
other CPU and moves the interpreter's state between the CPUs' caches: on a 2-CPU machine one unpinned `kjdms
serve` process made 109 review pages a second where the same process on one CPU made 226 (bench/README.md).
So each serving process may keep its request threads on one CPU, a different one for each process. By default only
when the processes are as many as the CPUs the server may use: a deployment sized to its machine. Fewer processes
than CPUs may be one of several instances on the host, or a container that sees every CPU of it; each would take
the first CPUs and leave the others idle. With more processes than CPUs the kernel balances them better than a
fixed share would.
"""
from __future__ import annotations

import os

# Every CPU this process could use before it pinned itself: what the programs it starts get back.
_cpus_before_pinning: frozenset[int] | None = None


def cpus_for(processes: int, pin: bool | None = None) -> list[int] | None:
    """Return the CPU for each of processes serving processes, or None to leave them where the kernel puts them.

    pin None: only when the processes are exactly as many as the CPUs allowed; True: also when they are fewer (the
    operator knows the machine is the server's alone); False: never.
    """
    if pin is False or not hasattr(os, "sched_setaffinity"):  # no sched_setaffinity: not Linux
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or processes > len(allowed) or (pin is None and processes != len(allowed)):
        return None
    return allowed[:processes]


def pin_this_thread(cpu: int) -> bool:
    """Run the calling thread, and every thread it starts from now on, on cpu alone; return whether it could."""
    global _cpus_before_pinning
    before = frozenset(os.sched_getaffinity(0))
    try:
        # On Linux, 0 is the calling thread: threads started earlier (the background worker) keep every CPU.
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False  # the CPU was taken away since it was chosen (a cpuset shrank): serve unpinned rather than stop
    if _cpus_before_pinning is None:
        _cpus_before_pinning = before
    return True


def release(pid: int) -> None:
    """Give a program this process started every CPU this process had before it pinned itself."""
    if _cpus_before_pinning is None:
        return
    try:
        os.sched_setaffinity(pid, _cpus_before_pinning)
    except OSError:
        pass  # it has ended already or changed its user: it runs where it is, which works, only slower
