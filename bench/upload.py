"""Upload throughput through the documents page against sha256 + write + fsync of the same bytes, same disk.

    .venv/bin/python bench/upload.py [--uploads 15] [--megabytes 2.5] [--drain off|inline]

An instance on SQLite in a temporary folder, its blobs in the local store there. Alternates: one upload of a
fresh scanned-looking PDF through POST /me/documents/other (Flask's test client with the request body encoded
beforehand, so the time is the server's: the multipart parse, the CSRF check, the sniffing, the hashing, the
blob written and synced, the rows and the commit; no network), then the baseline: the same bytes hashed with
SHA-256, written to a new file in the same folder and fsynced. Medians, MB/s and their ratio. `--drain inline` drains the search index in the request after the
commit (KJDMS_INDEX_AFTER_COMMIT=1, the default before issue 15); `off`, now the default, leaves it to the indexer.
"""
from __future__ import annotations

import hashlib
import os
import shutil
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


def main() -> None:
    parser = upload_arguments(__doc__.splitlines()[0], uploads=15)
    parser.add_argument("--drain", choices=("off", "inline"), default="off",
                        help="off (the default, as the embedded default since KJDMS_INDEX_AFTER_COMMIT=0): the indexer drains; inline: the request drains")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kjdms-bench-upload-"))
    try:
        app = create_app(Config(environ={}, STORAGE_DIR=work, TESTING=True, OCR="0", MAX_UPLOAD_BYTES=20 * 1024 * 1024,
                                SECRET_KEY="bench-secret-key", ID_HASH_KEY="bench-id-hash-key",
                                INDEX_AFTER_COMMIT="1" if arguments.drain == "inline" else "0"))
        baseline_folder = work / "baseline"
        baseline_folder.mkdir()
        page, raw, sizes = [], [], []
        with app.app_context():
            browser = applicant_browser(app)
            token = browser.csrf_token("/me/documents")
            browser.open(upload_request(token, scanned_pdf(0.1), "预热.pdf"))  # warm up: templates, statements
            for number in range(arguments.uploads):
                data = scanned_pdf(arguments.megabytes)
                sizes.append(len(data))
                request = upload_request(token, data, f"扫描件{number}.pdf")
                started = time.perf_counter()
                response = browser.open(request)
                page.append(time.perf_counter() - started)
                assert response.status_code == 302 and "已上传" in browser.get("/me/documents").get_data(as_text=True)
                started = time.perf_counter()
                hash_write_sync(data, baseline_folder / str(number))
                raw.append(time.perf_counter() - started)
            db.session.remove()
            db.engine.dispose()
        print_comparison(f"drain {arguments.drain}", sizes, page, "sha256 + write + fsync", raw)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
