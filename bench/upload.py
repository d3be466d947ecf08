"""Upload throughput through the documents page against sha256 + write + fsync of the same bytes, same disk.

    .venv/bin/python bench/upload.py [--uploads 15] [--megabytes 2.5] [--drain off|inline] [--store fresh|in-service]

An instance on SQLite in a temporary folder, its blobs in the local store there. Alternates: one upload of a
fresh scanned-looking PDF through POST /me/documents/other (Flask's test client with the request body encoded
beforehand, so the time is the server's: the multipart parse, the CSRF check, the sniffing, the hashing, the
blob written and synced, the rows and the commit; no network), then the baseline: the same bytes hashed with
SHA-256, written to a new file in the same folder and fsynced. Medians, MB/s and their ratio; then the CPU time of
each side (this process's, which a loaded machine moves less than the wall clock) and the fsyncs each made. `--drain inline` drains the search index in the request after the
commit (KJDMS_INDEX_AFTER_COMMIT=1, the default before issue 15); `off`, now the default, leaves it to the indexer.
`--store in-service` makes every fan-out folder of the blob store first, as a store holding a province's documents
has them: a new blob then syncs its own folder only, where a fresh store (the default) also makes and syncs one
or two folders for it, which is what most uploads of this run would otherwise pay.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s3_upload import applicant_browser, print_comparison, scanned_pdf, upload_arguments, upload_request  # noqa: E402

from kjdms import create_app  # noqa: E402
from kjdms.config import Config  # noqa: E402
from kjdms.extensions import db  # noqa: E402


def hash_write_sync(data: bytes, path: Path) -> None:
    """The baseline: hash the bytes, write them to a new file and fsync it."""
    hashlib.sha256(data).hexdigest()
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def make_fan_out(root: Path) -> None:
    """Make the blob store's 65,536 fan-out folders under root (root/ab/cd), as a store in service has them."""
    for first in range(256):
        for second in range(256):
            (root / f"{first:02x}" / f"{second:02x}").mkdir(parents=True, exist_ok=True)


class FsyncCounter:
    """Count the fsyncs this process makes, by wrapping os.fsync (every store and the baseline call it)."""

    def __init__(self) -> None:
        self.count, self._real = 0, os.fsync
        os.fsync = self._fsync

    def _fsync(self, descriptor: int) -> None:
        self.count += 1
        self._real(descriptor)


def main() -> None:
    parser = upload_arguments(__doc__.splitlines()[0], uploads=15)
    parser.add_argument("--drain", choices=("off", "inline"), default="off",
                        help="off (the default, as the embedded default since KJDMS_INDEX_AFTER_COMMIT=0): the indexer drains; inline: the request drains")
    parser.add_argument("--store", choices=("fresh", "in-service"), default="fresh",
                        help="fresh (the default): the blob store starts empty; in-service: its fan-out folders exist")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kjdms-bench-upload-"))
    try:
        config = Config(environ={}, STORAGE_DIR=work, TESTING=True, OCR="0", MAX_UPLOAD_BYTES=20 * 1024 * 1024,
                        SECRET_KEY="bench-secret-key", ID_HASH_KEY="bench-id-hash-key",
                        INDEX_AFTER_COMMIT="1" if arguments.drain == "inline" else "0")
        app = create_app(config)
        if arguments.store == "in-service":
            make_fan_out(config.BLOB_DIR)
        baseline_folder = work / "baseline"
        baseline_folder.mkdir()
        page, raw, sizes, cpu = [], [], [], {"page": [], "baseline": []}
        fsyncs = FsyncCounter()
        synced = {"page": 0, "baseline": 0}
        with app.app_context():
            browser = applicant_browser(app)
            token = browser.csrf_token("/me/documents")
            browser.open(upload_request(token, scanned_pdf(0.1), "预热.pdf"))  # warm up: templates, statements
            for number in range(arguments.uploads):
                data = scanned_pdf(arguments.megabytes)
                sizes.append(len(data))
                request = upload_request(token, data, f"扫描件{number}.pdf")
                started, started_cpu, before = time.perf_counter(), time.process_time(), fsyncs.count
                response = browser.open(request)
                page.append(time.perf_counter() - started)
                cpu["page"].append(time.process_time() - started_cpu)
                synced["page"] += fsyncs.count - before
                assert response.status_code == 302 and "已上传" in browser.get("/me/documents").get_data(as_text=True)
                started, started_cpu, before = time.perf_counter(), time.process_time(), fsyncs.count
                hash_write_sync(data, baseline_folder / str(number))
                raw.append(time.perf_counter() - started)
                cpu["baseline"].append(time.process_time() - started_cpu)
                synced["baseline"] += fsyncs.count - before
            db.session.remove()
            db.engine.dispose()
        print_comparison(f"drain {arguments.drain}, {arguments.store} store", sizes, page, "sha256 + write + fsync", raw)
        print(f"  CPU of this process          page {statistics.median(cpu['page']) * 1000:.1f} ms, "
              f"baseline {statistics.median(cpu['baseline']) * 1000:.1f} ms, "
              f"ratio {statistics.median(cpu['baseline']) / statistics.median(cpu['page']):.2f}")
        print(f"  fsyncs an upload             page {synced['page'] / arguments.uploads:.2f}, "
              f"baseline {synced['baseline'] / arguments.uploads:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
