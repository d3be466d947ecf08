"""A pytest plugin printing each test's CPU time (setup + call + teardown, this process only).

Use: PYTHONPATH=.:bench python -m pytest -p testclock -s tests/... (CPU time, unlike --durations, barely moves with
the machine's load).
"""
import time

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started = time.process_time()
    yield
    print(f"\nCPU {time.process_time() - started:7.2f} s {item.nodeid}")
