"""How long a saved change takes to reach search, under a steady stream of changes: kjdms's indexer against FTS5.

Part of bench/search.py (which builds both indexes). kjdms: a real instance on SQLite whose index is a
copy of the built Whoosh index; its first dossiers are real rows (they replace the generated documents
of the same ids), changed one at a time through services.dossiers.update_basic_information at a fixed
rate while the embedded default's worker threads run (worker.start_thread: the indexer drains in the
background, in batches). A change's latency runs from the moment its commit returned (the request is
done) to the moment its outbox row was marked indexed, which follows the Whoosh commit that made it
searchable. FTS5: the same changes at the same rate, each written through to the trigram table in its
own transaction (what a synchronous index costs): from the start of the write to its commit.
The two alternate in rounds, so the machine's load falls on both alike.
"""
from __future__ import annotations

import logging
import shutil
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

# Dossiers the stream changes in turn (real rows, the rest of the index generated).
DOSSIERS = 50
EMPLOYER_WORDS = "安百诚达丰富广和恒华佳建锦康利隆茂明鹏祺瑞盛顺泰通鑫兴旭永裕元源泽正志中"


def employer(number: int) -> str:
    """Return the number-th distinct employer name (three changing characters)."""
    base = len(EMPLOYER_WORDS)
    word = "".join(EMPLOYER_WORDS[number // base ** power % base] for power in range(3))
    return f"朝阳市{word}会计服务有限公司"


def make_instance(folder: Path, whoosh_folder: Path, id_hash_key: str):
    """Return a kjdms app on a new SQLite database in folder, its index a copy of whoosh_folder, with DOSSIERS dossiers."""
    from kjdms import create_app
    from kjdms.backends import get_drainer
    from kjdms.config import Config
    from kjdms.extensions import db
    from kjdms.schema import upgrade_schema
    from kjdms.services.dossiers import register_person
    from kjdms.services.reference import load_regions
    from kjdms.validators import id_number_check_digit

    logging.getLogger("alembic").setLevel(logging.WARNING)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copytree(whoosh_folder, folder / "index", symlinks=True)
    app = create_app(Config(environ={}, STORAGE_DIR=folder, SECRET_KEY="bench", ID_HASH_KEY=id_hash_key, OCR="0"))
    with app.app_context():
        upgrade_schema()
        load_regions(db.session)
        for number in range(DOSSIERS):
            body = f"211302199001{number % 28 + 1:02d}{number:03d}"
            name = "测试" + EMPLOYER_WORDS[number % len(EMPLOYER_WORDS)] + EMPLOYER_WORDS[number // len(EMPLOYER_WORDS)]
            register_person(db.session, name=name, id_number=body + id_number_check_digit(body),
                            employer_name=employer(number), employer_region="211302", household_region="211302")
        get_drainer().drain()
        db.session.remove()
    return app


def steady(changes: int, rate: float):
    """Yield 0 .. changes-1, each at its time on a fixed schedule of rate a second (late ones at once)."""
    started = time.perf_counter()
    for number in range(changes):
        wait = started + number / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        yield number


def kjdms_round(app, changes: int, rate: float, first: int) -> list[float]:
    """Make changes at rate per second with the worker threads running; return each one's latency in ms."""
    from sqlalchemy import select

    from kjdms.backends import get_drainer, get_workflow
    from kjdms.extensions import db
    from kjdms.models import Dossier, IndexOutbox, as_utc
    from kjdms.services.dossiers import update_basic_information
    from kjdms.services.indexing import queued_count
    from kjdms.worker import start_thread

    with app.app_context():
        mark = db.session.scalar(select(IndexOutbox.id).order_by(IndexOutbox.id.desc()).limit(1)) or 0
        dossiers = db.session.scalars(select(Dossier).order_by(Dossier.id)).all()
        thread, stop = start_thread(app)
        saved = []
        for number in steady(changes, rate):
            dossier = dossiers[number % len(dossiers)]
            update_basic_information(db.session, get_workflow(), dossier, {"employer_name": employer(first + number)},
                                     dossier.person.user)
            saved.append((dossier.id, datetime.now(timezone.utc)))
        while queued_count(db.session):
            db.session.rollback()  # a fresh snapshot for the next look
            time.sleep(0.05)
        stop.set()
        get_drainer().wake.set()  # the worker sleeps until woken; it then sees stop
        thread.join()
        rows = db.session.execute(select(IndexOutbox.dossier_id, IndexOutbox.indexed_at)
                                  .where(IndexOutbox.id > mark).order_by(IndexOutbox.id)).all()
        db.session.remove()
    # One commit, one row per change, in order: a single thread made them.
    assert [row.dossier_id for row in rows] == [dossier_id for dossier_id, _ in saved], "one outbox row per change"
    return [(as_utc(row.indexed_at) - at).total_seconds() * 1000 for row, (_, at) in zip(rows, saved)]


def fts_round(connection, documents: list[dict], changes: int, rate: float, first: int, write, stamp) -> list[float]:
    """Write the same changes to FTS5 at rate per second, each in its own transaction; return each one's ms."""
    latencies = []
    for number in steady(changes, rate):
        document = dict(documents[number % len(documents)], employer=employer(first + number))
        stamp(document)
        began = time.perf_counter()
        write(connection, [document], True)
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def stale_dossiers(app) -> int:
    """Return how many of the instance's dossiers the index holds other than the database says (0 when all caught up)."""
    from sqlalchemy import select

    from kjdms.backends import get_config, get_search_index
    from kjdms.extensions import db
    from kjdms.models import Dossier
    from kjdms.services.indexing import documents_for

    with app.app_context():
        ids = list(db.session.scalars(select(Dossier.id)))
        documents, _ = documents_for(db.session, ids, get_config().ID_HASH_KEY)
        stamps = get_search_index().stamps()
        db.session.remove()
        return sum(stamps.get(document["dossier_id"]) != document["stamp"] for document in documents)


def measure(folder: Path, whoosh_folder: Path, connection, generated: list[dict], *, changes: int, rounds: int,
            rate: float, id_hash_key: str, write, stamp) -> dict:
    """Run rounds of changes on kjdms and FTS5 alternately; return the latencies and the segment counts."""
    from kjdms.backends import get_search_index

    app = make_instance(folder, whoosh_folder, id_hash_key)
    documents = generated[:DOSSIERS]
    times = {"ours": [], "fts5": []}
    per_round = max(1, changes // rounds)
    for number in range(rounds):
        first = DOSSIERS + number * per_round
        runs = [("ours", lambda: kjdms_round(app, per_round, rate, first)),
                ("fts5", lambda: fts_round(connection, documents, per_round, rate, first, write, stamp))]
        for engine, run in runs if number % 2 == 0 else runs[::-1]:
            times[engine] += run()
    with app.app_context():
        segments = len(get_search_index()._live()._segments())
    return {**times, "stale": stale_dossiers(app), "segments": segments, "rate": rate}


def summary(latencies: list[float], percentile) -> tuple[float, float]:
    """Return (p50, p99) of latencies in ms."""
    return statistics.median(latencies), percentile(latencies, 0.99)
