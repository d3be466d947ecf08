"""The suite's SeaweedFS leaves nothing running: it dies with its test process, and a later run removes orphans."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.s3server import OWNER_FILE, SeaweedServer, remove_orphans, start_time

PROJECT = Path(__file__).resolve().parents[2]
# A stand-in for a pytest process: starts the server the way the s3_server fixture does, then waits to be killed.
TEST_PROCESS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tests.s3server import SeaweedServer

    server = SeaweedServer(Path(sys.argv[1]), die_with_parent=sys.argv[2] == "die")
    print(server.process.pid, flush=True)
    time.sleep(600)
""")
PATIENCE = 30  # seconds a killed process may take to be gone on a loaded machine; no time is asserted


def killed_test_process(folder: Path, die_with_parent: bool) -> int:
    """Start a test process with its server, kill it with SIGKILL (nothing of its own runs); return weed's pid."""
    environment = {**os.environ, "PYTHONPATH": str(PROJECT)}
    child = subprocess.Popen([sys.executable, "-c", TEST_PROCESS, str(folder), "die" if die_with_parent else "stay"],
                             stdout=subprocess.PIPE, text=True, env=environment, cwd=PROJECT)
    try:
        weed = int(child.stdout.readline())
        assert start_time(weed) is not None
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    return weed


def gone(pid: int) -> bool:
    """Wait until process pid has ended (or is a zombie nobody reaps); tell whether it did."""
    deadline = time.monotonic() + PATIENCE
    while start_time(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    return start_time(pid) is None


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_weed_dies_with_a_test_process_killed_by_sigkill(tmp_path):
    weed = killed_test_process(tmp_path / "weed", die_with_parent=True)
    try:
        assert gone(weed)
    finally:
        kill(weed)


def test_the_next_server_removes_an_orphan_and_its_folder(tmp_path):
    folder = tmp_path / "weed"
    weed = killed_test_process(folder, die_with_parent=False)  # as on a system without prctl
    try:
        assert start_time(weed) is not None and (folder / OWNER_FILE).exists()
        assert weed in remove_orphans()
        assert gone(weed)
        assert not folder.exists()
    finally:
        kill(weed)


def test_a_live_test_process_keeps_its_server(tmp_path):
    server = SeaweedServer(tmp_path / "weed")
    try:
        assert server.process.pid not in remove_orphans()
        assert start_time(server.process.pid) is not None and (tmp_path / "weed" / OWNER_FILE).exists()
    finally:
        server.stop()
