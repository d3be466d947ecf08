"""Time `kjdms backup create` and `restore` and their peak RSS against copying the same database and files by hand.

    .venv/bin/python bench/backup.py --dossiers 100000 --files 2000 [--database postgresql+psycopg://…]

The baseline in the same run: SQLite's online backup API on the database file plus a plain copy of the blob folder
(on PostgreSQL, `pg_dump -Fc` of the schema plus the same copy). Each command runs in a child process, so its
peak RSS is its own.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from stats import load  # noqa: E402  (bench/stats.py: bulk persons and dossiers over every region)

from kjdms import create_app  # noqa: E402
from kjdms.backends import get_blob_store  # noqa: E402
from kjdms.config import Config  # noqa: E402
from kjdms.extensions import db  # noqa: E402
from kjdms.models import Attachment, AttachmentVersion  # noqa: E402
from kjdms.schema import upgrade_schema  # noqa: E402
from kjdms.services.reference import load_regions  # noqa: E402

KJDMS = str(Path(sys.executable).with_name("kjdms"))


def add_files(count: int, size: int) -> None:
    """Store count distinct files of size bytes and give each to a dossier as a document version."""
    store = get_blob_store()
    for start in range(0, count, 500):
        attachments, versions = [], []
        for i in range(start, min(count, start + 500)):
            data = hashlib.sha256(str(i).encode()).digest() * (size // 32)
            info = store.put(data)
            attachments.append({"id": i + 1, "dossier_id": i + 1, "slot": "education_certificate"})
            versions.append({"id": i + 1, "attachment_id": i + 1, "number": 1, "sha256": info.sha256,
                             "size": info.size, "media_type": "application/pdf", "text_status": "done"})
        db.session.execute(sa.insert(Attachment), attachments)
        db.session.execute(sa.insert(AttachmentVersion), versions)
        db.session.commit()


def timed_child(command: list[str], env: dict) -> tuple[float, int]:
    """Run command; return (seconds, its peak RSS in MiB)."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed: {child.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - started, usage.ru_maxrss // 1024


def baseline(config: Config, target: Path, schema: str | None) -> float:
    """Copy the database (SQLite's backup API, or pg_dump) and the blob folder by hand; return seconds."""
    started = time.perf_counter()
    if schema is None:
        source = sqlite3.connect(config.DATABASE_URL.removeprefix("sqlite:///"))
        copy = sqlite3.connect(target / "copy.sqlite3")
        source.backup(copy)
        copy.close()
        source.close()
    else:
        subprocess.run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-Fc", "-n", schema, "-f",
                        str(target / "copy.dump"), "test"], check=True)
    shutil.copytree(config.BLOB_DIR, target / "blobs")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--file-size", type=int, default=64 * 1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (a schema is made and dropped)")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kjdms-bench-backup-"))
    schema, url = None, None
    if arguments.database:
        schema = f"bench_backup_{uuid.uuid4().hex[:8]}"
        with sa.create_engine(arguments.database).begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{arguments.database}{'&' if '?' in arguments.database else '?'}options=-csearch_path%3D{schema}"
    try:
        config = Config(environ={}, STORAGE_DIR=work / "source", DATABASE_URL=url, TESTING=True)
        app = create_app(config)
        with app.app_context():
            upgrade_schema()
            load_regions(db.session)
            db.session.commit()
            load(arguments.dossiers)
            add_files(arguments.files, arguments.file_size)
            db.session.remove()
            db.engine.dispose()
        source_env = {**os.environ, "KJDMS_STORAGE_DIR": str(work / "source"), "KJDMS_OCR": "0",
                      **({"KJDMS_DATABASE_URL": url} if url else {})}
        runs = {"backup": [], "backup again (no new files)": [], "restore": [], "by hand": []}
        peak = {"backup": 0, "restore": 0}
        for run in range(arguments.repeat):
            destination = work / f"backup-{run}"
            seconds, rss = timed_child([KJDMS, "backup", "create", str(destination)], source_env)
            runs["backup"].append(seconds)
            peak["backup"] = max(peak["backup"], rss)
            time.sleep(1)  # snapshots are named by the second
            runs["backup again (no new files)"].append(
                timed_child([KJDMS, "backup", "create", str(destination)], source_env)[0])
            target = work / f"restored-{run}"
            target_env = {**os.environ, "KJDMS_STORAGE_DIR": str(target), "KJDMS_OCR": "0",
                          "KJDMS_DATABASE_URL": f"sqlite:///{target / 'kjdms.sqlite3'}"}
            seconds, rss = timed_child([KJDMS, "backup", "restore", str(destination)], target_env)
            runs["restore"].append(seconds)
            peak["restore"] = max(peak["restore"], rss)
            by_hand = work / f"by-hand-{run}"
            by_hand.mkdir()
            runs["by hand"].append(baseline(config, by_hand, schema))
            for folder in (destination, target, by_hand):
                shutil.rmtree(folder)
        hand = statistics.median(runs["by hand"])
        print(f"{arguments.dossiers} dossiers, {arguments.files} files of {arguments.file_size // 1024} KiB, "
              f"{'PostgreSQL' if schema else 'SQLite'} source (restore into SQLite), load {os.getloadavg()[0]:.2f}")
        for name, seconds in runs.items():
            extra = f"   peak RSS {peak[name]} MiB" if name in peak else ""
            print(f"  {name:<30} median {statistics.median(seconds):7.2f} s   "
                  f"{statistics.median(seconds) / hand:5.2f}x by hand{extra}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if schema:
            with sa.create_engine(arguments.database).begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
