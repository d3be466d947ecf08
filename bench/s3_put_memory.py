"""Memory and time of S3BlobStore.put for a stream held in memory (under 8 MiB), on a real SeaweedFS.

    PYTHONPATH=. .venv/bin/python bench/s3_put_memory.py [--puts 10] [--megabytes 6]

Starts SeaweedFS (tests/s3server.py) and puts fresh random streams: first each under tracemalloc (the peak of
Python allocations during the put, as a multiple of the blob), then each again without it, timed (this
process's CPU and the wall clock). Run it with PYTHONPATH at another tree to compare the code there.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or str(Path(__file__).resolve().parents[1]))

from kjdms.blobs.s3 import S3BlobStore  # noqa: E402
from tests.s3server import SeaweedServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=10)
    parser.add_argument("--megabytes", type=float, default=6)
    arguments = parser.parse_args()
    size = int(arguments.megabytes * 1024 * 1024)
    folder = Path(tempfile.mkdtemp(prefix="kjdms-bench-weed-"))
    server = SeaweedServer(folder)
    try:
        server.wait_until_ready()
        store = S3BlobStore.from_settings(endpoint_url=server.endpoint, bucket=server.BUCKET, prefix="bench",
                                          access_key="bench", secret_key="bench")
        store.put(io.BytesIO(os.urandom(size)))  # warm up: the client's connection, the volume
        peaks, cpu, wall = [], [], []
        for _ in range(arguments.puts):
            stream = io.BytesIO(os.urandom(size))
            tracemalloc.start()
            store.put(stream)
            peaks.append(tracemalloc.get_traced_memory()[1] / size)
            tracemalloc.stop()
        for _ in range(arguments.puts):
            stream = io.BytesIO(os.urandom(size))
            started, started_cpu = time.perf_counter(), time.process_time()
            store.put(stream)
            cpu.append(time.process_time() - started_cpu)
            wall.append(time.perf_counter() - started)
        print(f"{arguments.puts} puts of {size / 1024 / 1024:.1f} MiB, load {os.getloadavg()[0]:.1f}: "
              f"peak {statistics.median(peaks):.2f} × the blob, CPU {statistics.median(cpu) * 1000:.1f} ms, "
              f"wall {statistics.median(wall) * 1000:.1f} ms (medians)")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
