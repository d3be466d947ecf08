"""`kjdms serve` keeps each serving process's request threads on a CPU of its own when told to, or sized to the CPUs."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import urllib3

from tests.s3server import _free_ports

# This checkout's kjdms, whichever checkout the virtual environment was installed from.
ROOT = Path(__file__).resolve().parents[2]
KJDMS = [sys.executable, "-m", "kjdms"]
EVERY_CPU = frozenset(os.sched_getaffinity(0))

pytestmark = pytest.mark.skipif(len(EVERY_CPU) < 2, reason="pinning needs two CPUs or more")


def threads_by_cpus(pid: int) -> dict[frozenset, int]:
    """Return how many of pid's threads may run on each set of CPUs."""
    counted: dict[frozenset, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        cpus = frozenset(os.sched_getaffinity(int(task.name)))
        counted[cpus] = counted.get(cpus, 0) + 1
    return counted


def serving_children(pid: int) -> list[int]:
    """Return the worker processes of the serving parent pid."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


@pytest.fixture
def start_server(tmp_path, sqlite_template):
    """Start `kjdms serve` with the given arguments on a copy of the migrated database; stop them all at the end."""
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    env = {key: value for key, value in os.environ.items() if not key.startswith("KJDMS_")}
    env.update(KJDMS_STORAGE_DIR=str(tmp_path), KJDMS_SECRET_KEY="cpu-test", KJDMS_ID_HASH_KEY="cpu-test",
               KJDMS_OCR="0")
    started = []

    def start(*args: str, worker: str = "thread") -> tuple[subprocess.Popen, str]:
        port = _free_ports(1)[0]
        log = tmp_path / f"serve-{port}.log"
        process = subprocess.Popen([*KJDMS, "serve", "--port", str(port), "--threads", "3", *args], cwd=ROOT,
                                   env={**env, "KJDMS_WORKER": worker}, stdout=log.open("w"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        started.append(process)
        return process, f"http://127.0.0.1:{port}/", log

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        process.wait(timeout=20)


def wait_until_serving(address: str, process: subprocess.Popen, log: Path, workers: int = 1) -> None:
    """Wait until address answers and the workers have started."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            answered = urllib3.request("GET", address, retries=False, timeout=2).status == 200
        except urllib3.exceptions.HTTPError:
            answered = False
        if answered and (workers == 1 or len(serving_children(process.pid)) == workers):
            return
        time.sleep(0.2)
    pytest.fail(f"{address} did not answer: {log.read_text()}")


def test_two_workers_each_run_every_thread_on_a_cpu_of_their_own_and_say_so(start_server):
    # --pin-cpus: pinned on a machine with more than two CPUs too (by default only as many workers as CPUs are)
    process, address, log = start_server("--workers", "2", "--pin-cpus", worker="external")
    wait_until_serving(address, process, log, workers=2)
    cpus = sorted(EVERY_CPU)[:2]
    placed = {}
    for child in serving_children(process.pid):
        # A worker's only thread at the fork pins itself: waitress's loop and its 3 threads follow.
        (cpu_set, count), = threads_by_cpus(child).items()
        assert count >= 4
        placed[child] = cpu_set
    assert sorted(placed.values(), key=min) == [{cpus[0]}, {cpus[1]}]
    assert threads_by_cpus(process.pid) == {EVERY_CPU: 1}  # the parent only waits
    assert f"每个进程固定在一个 CPU 上（CPU {cpus[0]}、{cpus[1]}）" in log.read_text()


def test_one_process_runs_its_request_threads_on_one_cpu_and_its_background_work_on_every_cpu(start_server):
    process, address, log = start_server("--pin-cpus")
    wait_until_serving(address, process, log)
    placed = threads_by_cpus(process.pid)
    cpu = min(EVERY_CPU)
    assert placed[frozenset({cpu})] >= 4  # the serving thread and waitress's 3
    assert placed.get(EVERY_CPU, 0) >= 1  # the background worker, started before the pin (OCR inherits it)
    assert set(placed) == {frozenset({cpu}), EVERY_CPU}
    assert f"请求线程固定在 CPU {cpu} 上" in log.read_text()


def test_one_process_on_a_machine_of_several_cpus_is_not_pinned_unless_told(start_server):
    # It may be one of several instances on the host, or a container that sees every CPU: each would take CPU 0.
    process, address, log = start_server()
    wait_until_serving(address, process, log)
    assert set(threads_by_cpus(process.pid)) == {EVERY_CPU}
    assert "固定" not in log.read_text()


def test_no_pin_cpus_leaves_every_process_on_every_cpu(start_server):
    process, address, log = start_server("--workers", "2", "--no-pin-cpus", worker="external")
    wait_until_serving(address, process, log, workers=2)
    for child in serving_children(process.pid):
        assert set(threads_by_cpus(child)) == {EVERY_CPU}
    assert "固定" not in log.read_text()
