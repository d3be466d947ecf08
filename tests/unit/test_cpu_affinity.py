"""Serving processes on CPUs of their own: which CPUs, and the programs they start free of that."""
import os
import subprocess
import threading
from pathlib import Path

import pytest

from kjdms import cpu_affinity
from kjdms.serving import pinning_remark

ALL_CPUS = frozenset(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(len(ALL_CPUS) < 2, reason="pinning needs two CPUs or more")


def allowed_cpus(pid: int) -> str:
    """Return the kernel's list of the CPUs pid may run on, as /proc writes it ("0-1", "3")."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split(":")[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list"))


def as_list(cpus) -> str:
    """Return cpus as /proc lists them when they are one CPU or a run of CPUs."""
    cpus = sorted(cpus)
    return str(cpus[0]) if len(cpus) == 1 else f"{cpus[0]}-{cpus[-1]}"


@pytest.mark.parametrize(("allowed", "processes", "pin", "cpus"), [
    ({0, 1}, 2, None, [0, 1]),  # by default: as many processes as CPUs, a server sized to its machine
    ({2, 5, 7}, 3, None, [2, 5, 7]),  # the CPUs this process may use, not the machine's first ones
    ({0, 1}, 1, None, None),  # fewer: maybe one of several instances, which would all take CPU 0
    ({0, 1, 2, 3}, 2, None, None),
    ({0, 1}, 1, True, [0]),  # --pin-cpus: fewer processes than CPUs too
    ({2, 5, 7}, 2, True, [2, 5]),
    ({0, 1}, 3, True, None),  # more processes than CPUs: the kernel balances them
    ({3}, 1, True, None),  # one CPU: nothing to choose
    ({0, 1}, 2, False, None),  # --no-pin-cpus
])
def test_which_cpus_the_serving_processes_get(monkeypatch, allowed, processes, pin, cpus):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: allowed)
    assert cpu_affinity.cpus_for(processes, pin) == cpus


def test_a_cpu_taken_away_since_it_was_chosen_leaves_the_server_unpinned_not_stopped(monkeypatch):
    monkeypatch.setattr(cpu_affinity, "_cpus_before_pinning", None)

    def refuse(pid, cpus):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    assert cpu_affinity.pin_this_thread(0) is False
    assert cpu_affinity._cpus_before_pinning is None  # nothing to give back to the programs it starts


def test_the_start_line_says_where_the_processes_run():
    assert pinning_remark(None) == ""
    assert pinning_remark([0]) == "，请求线程固定在 CPU 0 上"
    assert pinning_remark([0, 1]) == "，每个进程固定在一个 CPU 上（CPU 0、1）"


@needs_two_cpus
def test_a_pinned_thread_keeps_the_threads_it_starts_on_its_cpu_and_gives_programs_every_cpu(monkeypatch):
    monkeypatch.setattr(cpu_affinity, "_cpus_before_pinning", None)
    cpu = max(ALL_CPUS)
    seen = {}

    def pinned():
        assert cpu_affinity.pin_this_thread(cpu)
        inner = threading.Thread(target=lambda: seen.update(inner=os.sched_getaffinity(0)))
        inner.start()
        inner.join()
        program = subprocess.Popen(["sleep", "30"])
        try:
            seen["program started"] = allowed_cpus(program.pid)
            cpu_affinity.release(program.pid)
            seen["program released"] = allowed_cpus(program.pid)
        finally:
            program.kill()
            program.wait()

    thread = threading.Thread(target=pinned)
    thread.start()
    thread.join()
    assert seen == {"inner": {cpu}, "program started": str(cpu), "program released": as_list(ALL_CPUS)}
    assert os.sched_getaffinity(0) == ALL_CPUS  # the test's own thread was never pinned


def test_release_does_nothing_in_a_process_that_never_pinned_itself(monkeypatch):
    monkeypatch.setattr(cpu_affinity, "_cpus_before_pinning", None)
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: pytest.fail("changed a CPU set"))
    cpu_affinity.release(os.getpid())


def test_release_of_a_program_that_has_ended_is_no_error(monkeypatch):
    monkeypatch.setattr(cpu_affinity, "_cpus_before_pinning", ALL_CPUS)
    program = subprocess.Popen(["true"])
    program.wait()
    cpu_affinity.release(program.pid)  # reaped: no such process any more
