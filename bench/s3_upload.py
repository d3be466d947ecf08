"""Upload throughput onto S3 through the documents page against boto3's own PUT of the same bytes, same server.

    .venv/bin/python bench/s3_upload.py [--uploads 20] [--megabytes 2.5]

Starts SeaweedFS (tests/s3server.py) in a temporary folder, an instance on SQLite whose blobs live in it, and
alternates: one upload of a fresh scanned-looking PDF through POST /me/documents/other (Flask's test client with
the request body encoded beforehand, so the time is the server's: the multipart parse, the CSRF check, the
sniffing, the hashing, the S3 store, the rows and the commit; no network between browser and server), then one
put_object of the same bytes by a boto3 client with its default settings. Medians, MB/s, and their ratio.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from kjdms import create_app  # noqa: E402
from kjdms.config import Config  # noqa: E402
from kjdms.extensions import db  # noqa: E402
from kjdms.schema import upgrade_schema  # noqa: E402
from kjdms.services.reference import load_regions  # noqa: E402
from tests.helpers import applicant  # noqa: E402
from tests.s3server import SeaweedServer  # noqa: E402
from tests.webclient import WebClient  # noqa: E402


def scanned_pdf(megabytes: float) -> bytes:
    """Return a one-page PDF holding a noisy image of about megabytes (noise does not compress)."""
    side = int((megabytes * 2.6 * 1024 * 1024 / 3) ** 0.5)  # Pillow stores it as a JPEG: noise keeps ~40%
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    output = io.BytesIO()
    image.save(output, format="PDF", quality=95)
    return output.getvalue()


def print_comparison(setting: str, sizes: list[int], page: list[float], baseline: str, raw: list[float]) -> None:
    """Print the medians of the uploads through the page and of the baseline, their MB/s and the ratio."""
    size = statistics.median(sizes) / 1024 / 1024
    through_page, by_baseline = size / statistics.median(page), size / statistics.median(raw)
    print(f"{len(sizes)} uploads of {size:.2f} MB each, {setting}, load {os.getloadavg()[0]:.2f}")
    print(f"  through /me/documents/other  median {statistics.median(page) * 1000:7.1f} ms   {through_page:6.1f} MB/s")
    print(f"  {baseline:<28} median {statistics.median(raw) * 1000:7.1f} ms   {by_baseline:6.1f} MB/s")
    print(f"  ratio                        {through_page / by_baseline:.2f} (target ≥ 0.5)")


def upload_request(token: str, data: bytes, filename: str) -> dict:
    """Return the WSGI environ of the documents page's upload form posting data, its body already encoded."""
    builder = EnvironBuilder(path="/me/documents/other", method="POST", content_type="multipart/form-data",
                             data={"csrf_token": token, "comment": "", "file": (io.BytesIO(data), filename)})
    try:
        return builder.get_environ()
    finally:
        builder.close()


def upload_arguments(description: str, uploads: int) -> argparse.ArgumentParser:
    """Return a parser with the options every upload benchmark takes: how many uploads, how large."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--uploads", type=int, default=uploads)
    parser.add_argument("--megabytes", type=float, default=2.5)
    return parser


def applicant_browser(app) -> WebClient:
    """Migrate app's fresh database, register an applicant and return a browser signed in as them."""
    upgrade_schema()
    load_regions(db.session)
    _, owner = applicant()
    db.session.commit()
    app.test_client_class = WebClient
    return app.test_client().enter_as(owner)


def main() -> None:
    parser = upload_arguments(__doc__.splitlines()[0], uploads=20)
    parser.add_argument("--index-after-commit", choices=("0", "1"), default="0",
                        help="1: the request drains the index outbox itself (0, the default: the indexer does)")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kjdms-bench-s3-"))
    server = SeaweedServer(work / "seaweedfs")
    try:
        server.wait_until_ready()
        app = create_app(Config(environ={}, STORAGE_DIR=work, TESTING=True, BLOB_STORE="s3", OCR="0",
                                S3_ENDPOINT_URL=server.endpoint, S3_BUCKET=server.BUCKET, S3_PREFIX="bench",
                                S3_ACCESS_KEY="kjdms", S3_SECRET_KEY="kjdms", MAX_UPLOAD_BYTES=20 * 1024 * 1024,
                                INDEX_AFTER_COMMIT=arguments.index_after_commit))
        client = server.client()
        page, raw, sizes, cpu = [], [], [], {"page": [], "put": []}
        with app.app_context():
            browser = applicant_browser(app)
            token = browser.csrf_token("/me/documents")
            browser.open(upload_request(token, scanned_pdf(0.1), "预热.pdf"))  # warm up: templates, statements
            client.put_object(Bucket=server.BUCKET, Key="raw/warm-up", Body=scanned_pdf(0.1))
            for number in range(arguments.uploads):
                data = scanned_pdf(arguments.megabytes)
                sizes.append(len(data))
                request = upload_request(token, data, f"扫描件{number}.pdf")
                started, started_cpu = time.perf_counter(), time.process_time()
                response = browser.open(request)
                page.append(time.perf_counter() - started)
                cpu["page"].append(time.process_time() - started_cpu)
                assert response.status_code == 302 and "已上传" in browser.get("/me/documents").get_data(as_text=True)
                started, started_cpu = time.perf_counter(), time.process_time()
                client.put_object(Bucket=server.BUCKET, Key=f"raw/{number}", Body=data)
                raw.append(time.perf_counter() - started)
                cpu["put"].append(time.process_time() - started_cpu)
            db.session.remove()
            db.engine.dispose()
        print_comparison(f"KJDMS_INDEX_AFTER_COMMIT={arguments.index_after_commit}", sizes, page,
                         "boto3 put_object", raw)
        # The server's CPU is SeaweedFS's, not in these; on a loaded machine they move less than the wall clock.
        print(f"  CPU of this process          page {statistics.median(cpu['page']) * 1000:.1f} ms, "
              f"put_object {statistics.median(cpu['put']) * 1000:.1f} ms")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
