"""Time the report to the Ministry of Finance alone: full, then incremental after changes, purges and approvals.

    .venv/bin/python bench/mof_report.py --persons 500000
    .venv/bin/python bench/mof_report.py --persons 500000 --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/mof_report.py --persons 500000 --keep /tmp/mof500k     # a second run reuses the data

The data is bench/stats.py's (its load function, by import), then filled in the way a province's would be: every
national data item (phone, qualification certificate number where qualified, an employer of 2,000 with a valid
unified social credit code and organisation code), and 0.5% of the approved persons purged (tombstone, revisions
gone). Every report runs in a fresh spawned process, so its peak RSS (VmHWM) is its own: the figure includes
the process's start (importing kjdms and creating the app), printed apart as "start". CPU is the report process's
own (user + system); the database server's is not in it. The baseline, in the same run, streams the same columns in
the same order and writes them as JSON Lines with nothing else (no approval dates, no hashing, no CSV, no manifest).
Between the full and the incremental report 1% of the approved persons change employer, 0.5% are purged and 1% of
the submitted are approved. With --keep DIR the loaded database stays (SQLite file or PostgreSQL schema named in
DIR) and a later run with the same DIR reuses it; its changes accumulate from run to run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import stats  # noqa: E402  (bench/stats.py: the loading, the configuration, the PostgreSQL schema)
from sqlalchemy import bindparam, delete, func, insert, select, text, update  # noqa: E402

from kjdms import create_app  # noqa: E402
from kjdms.backends import get_config, get_signing_key, get_workflow  # noqa: E402
from kjdms.extensions import db  # noqa: E402
from kjdms.local_time import local_today  # noqa: E402
from kjdms.models import Dossier, DossierRevision, Person, Region, Tombstone, WorkflowHistory, utcnow  # noqa: E402
from kjdms.schema import upgrade_schema  # noqa: E402
from kjdms.services.identity import id_number_hash  # noqa: E402
from kjdms.services.mof_report import COLUMNS, reported_states, write_report  # noqa: E402
from kjdms.services.reference import load_regions  # noqa: E402
from kjdms.validators import org_code_check_char, uscc_check_char  # noqa: E402

EMPLOYERS = 2000
LOADED = "loaded.json"  # in --keep DIR: the database URL, the PostgreSQL schema and the persons loaded


def peak_mb() -> float:
    """Return this process's peak RSS in MB: VmHWM, not ru_maxrss, which a spawned child inherits from its parent
    (Linux keeps the forked copy's high-water mark across exec: 289 MB "at start" after loading 500k here)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def employers() -> list[dict]:
    """Return EMPLOYERS employers, each with a name, a valid USCC and the organisation code inside it."""
    rng = random.Random(7)
    result = []
    for number in range(EMPLOYERS):
        org_body = "".join(rng.choice("0123456789") for _ in range(8))
        org_code = org_body + org_code_check_char(org_body)
        first17 = f"9121{rng.randrange(1, 15):02d}{rng.randrange(0, 99):02d}{org_code}"
        result.append({"name": f"朝阳市第{number + 1}会计服务有限公司", "uscc": first17 + uscc_check_char(first17),
                       "org_code": org_code})
    return result


def advance_sequences() -> None:
    """Move PostgreSQL's id sequences past the ids bench/stats.py's COPY wrote, for the rows added later."""
    if db.engine.dialect.name != "postgresql":
        return
    for table in ("users", "persons", "dossiers", "workflow_history"):
        db.session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                f'(SELECT max(id) FROM "{table}"))'))
    db.session.commit()


def fill_national_items(n: int) -> None:
    """Give every loaded dossier the national data items bench/stats.py leaves empty, in batches of stats.BATCH."""
    rng = random.Random(11)
    companies = employers()
    statement = (update(Dossier).where(Dossier.id == bindparam("b_id"))
                 .values(phone=bindparam("b_phone"), employer_name=bindparam("b_name"),
                         employer_uscc=bindparam("b_uscc"), employer_org_code=bindparam("b_org"),
                         qualification_certificate_number=bindparam("b_cert"),
                         legacy_certificate_number=bindparam("b_legacy")))
    levels = dict(db.session.execute(select(Dossier.id, Dossier.qualification_level)).all())
    for start in range(1, n + 1, stats.BATCH):
        rows = []
        for dossier_id in range(start, min(n, start + stats.BATCH - 1) + 1):
            company = companies[rng.randrange(EMPLOYERS)]
            level = levels[dossier_id]
            rows.append({"b_id": dossier_id, "b_phone": f"13{rng.randrange(10**9):09d}", "b_name": company["name"],
                         "b_uscc": company["uscc"], "b_org": company["org_code"],
                         "b_cert": None if level == "none" else f"{2005 + rng.randrange(15)}21{dossier_id:08d}",
                         "b_legacy": f"210{dossier_id:09d}" if rng.random() < .3 else None})
        db.session.connection().execute(statement, rows)
        db.session.commit()


def purge(dossier_ids: list[int], id_hash_key: str) -> None:
    """Purge the dossiers as lifecycle.purge_dossier leaves them: a tombstone, no personal data, no revisions."""
    people = db.session.execute(select(Dossier.id, Dossier.person_id, Person.id_number)
                                .join(Person, Person.id == Dossier.person_id).where(Dossier.id.in_(dossier_ids))).all()
    now = utcnow()
    db.session.execute(insert(Tombstone), [
        {"dossier_id": dossier_id, "id_number_hash": id_number_hash(id_hash_key, number), "purged_at": now,
         "actor_label": "system", "reason": "逾期未更新确认（bench）"} for dossier_id, _, number in people])
    db.session.execute(update(Person).where(Person.id.in_([person_id for _, person_id, _ in people]))
                       .values(id_number=None, name=None, sex=None, birth_date=None))
    db.session.execute(update(Dossier).where(Dossier.id.in_(dossier_ids)).values(
        state="purged", phone=None, employer_name=None, employer_uscc=None, employer_org_code=None, job_types=[],
        qualification_level="none", qualification_certificate_number=None, updated_at=now))
    db.session.execute(delete(DossierRevision).where(DossierRevision.dossier_id.in_(dossier_ids)))
    db.session.commit()


def pick(state: str, share: float, rng: random.Random) -> list[int]:
    """Return a share of the effective dossiers in state, at random."""
    ids = db.session.scalars(select(Dossier.id).where(Dossier.state == state, Dossier.baseline_id.is_(None))).all()
    return sorted(rng.sample(ids, int(len(ids) * share)))


def change_since_the_full_report(id_hash_key: str) -> dict:
    """Change employers, purge and approve as weeks of work would between two reports; return how many of each."""
    rng = random.Random()  # a kept database changes anew on every run
    changed, purged = pick("approved", .01, rng), pick("approved", .005, rng)
    changed = sorted(set(changed) - set(purged))
    approved = pick("submitted", .01, rng)
    now = utcnow()
    for chunk in range(0, len(changed), stats.BATCH):
        db.session.execute(update(Dossier).where(Dossier.id.in_(changed[chunk:chunk + stats.BATCH])).values(
            employer_name=func.coalesce(Dossier.employer_name, "") + "（新）", updated_at=now))
    for chunk in range(0, len(purged), stats.BATCH):
        purge(purged[chunk:chunk + stats.BATCH], id_hash_key)
    db.session.execute(update(Dossier).where(Dossier.id.in_(approved)).values(state="approved", state_changed_at=now,
                                                                               updated_at=now))
    db.session.execute(insert(WorkflowHistory), [
        {"dossier_id": dossier_id, "action": "approve", "from_state": "submitted", "to_state": "approved",
         "actor_role": "reviewer", "created_at": now} for dossier_id in approved])
    db.session.commit()
    return {"changed": len(changed), "purged": len(purged), "approved": len(approved)}


def report_in_a_fresh_process(url: str, folder: str, since: str | None, days_back: int, trace: bool, queue) -> None:
    """Write one report in this (spawned) process; put its figures on queue."""
    app = create_app(stats.bench_config(Path(folder), url))
    start = peak_mb()
    with app.app_context():
        if trace:
            tracemalloc.start()
        cpu, started = cpu_seconds(), time.perf_counter()
        result = write_report(db.session, day=local_today() - timedelta(days=days_back), out=Path(folder) / "mof",
                              signing_key=get_signing_key(), id_hash_key=get_config().ID_HASH_KEY,
                              reported_states=reported_states(get_workflow()), approved_state="approved",
                              since=since)
        db.session.commit()
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    manifest = (result.folder / "manifest.json").read_bytes()
    queue.put({"report_id": result.report_id, "counts": result.counts, "seconds": seconds, "cpu": cpu,
               "start_mb": start, "peak_mb": peak_mb(), "traced_mb": traced,
               "manifest_sha256": hashlib.sha256(manifest).hexdigest()})


def raw_in_a_fresh_process(url: str, folder: str, queue) -> None:
    """The floor: stream the report's columns in the report's order and write them as JSON Lines, nothing else."""
    app = create_app(stats.bench_config(Path(folder), url))
    start = peak_mb()
    with app.app_context():
        cpu, started, rows = cpu_seconds(), time.perf_counter(), 0
        query = (select(*COLUMNS).join(Person, Person.id == Dossier.person_id)
                 .outerjoin(Region, Region.id == Dossier.region_id)
                 .where(Dossier.baseline_id.is_(None), Dossier.state.in_(reported_states(get_workflow())))
                 .order_by(Dossier.id).execution_options(yield_per=stats.BATCH))
        with open(Path(folder) / "raw.jsonl", "w", encoding="utf-8") as target:
            for row in db.session.execute(query):
                target.write(json.dumps(dict(row._mapping), ensure_ascii=False, default=str) + "\n")
                rows += 1
        db.session.rollback()
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    os.unlink(Path(folder) / "raw.jsonl")
    queue.put({"rows": rows, "seconds": seconds, "cpu": cpu, "start_mb": start, "peak_mb": peak_mb()})


def in_a_fresh_process(target, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(*args, queue))
    child.start()
    figures = queue.get()
    child.join()
    return figures


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def show(label: str, figures: dict, raw: dict | None = None) -> None:
    persons = figures["counts"]["persons"]
    line = (f"{label}: {persons} persons ({json.dumps(figures['counts'])}) in {figures['seconds']:.1f} s, "
            f"CPU {figures['cpu']:.1f} s, {persons / figures['seconds']:,.0f} rows/s; peak RSS "
            f"{figures['peak_mb']:.0f} MB (start {figures['start_mb']:.0f} MB)")
    if figures["traced_mb"] is not None:
        line += f"; tracemalloc peak {figures['traced_mb']:.1f} MB"
    if raw:
        line += f"; {figures['seconds'] / raw['seconds']:.2f}× the raw stream"
    print(f"{line}; load average {load_average()}", flush=True)


def prepare(args, folder: Path) -> tuple[str, str | None]:
    """Return (database URL, PostgreSQL schema or None) with the data loaded, reusing what --keep kept."""
    loaded = folder / LOADED
    if loaded.is_file():
        kept = json.loads(loaded.read_text())
        print(f"reusing {kept['persons']} persons loaded earlier in {folder}", flush=True)
        return kept["url"], kept["schema"]
    schema = None
    if args.database:
        schema, url = stats.postgres_schema(args.database)
    else:
        url = f"sqlite:///{folder / 'kjdms.sqlite3'}"
    app = create_app(stats.bench_config(folder, url))
    with app.app_context():
        upgrade_schema()
        load_regions(db.session)
        started = time.perf_counter()
        stats.load(args.persons)
        advance_sequences()
        fill_national_items(args.persons)
        purge(pick("approved", .005, random.Random(5)), get_config().ID_HASH_KEY)
        stats.analyze()
        print(f"{db.engine.dialect.name}: loaded {args.persons} persons in {time.perf_counter() - started:.0f} s; "
              f"load average {load_average()}", flush=True)
        db.session.remove()
    loaded.write_text(json.dumps({"url": url, "schema": schema, "persons": args.persons}))
    return url, schema


def run(args, folder: Path, url: str) -> None:
    shutil.rmtree(folder / "mof", ignore_errors=True)
    raws = [in_a_fresh_process(raw_in_a_fresh_process, url, str(folder)) for _ in range(args.repeat)]
    raw = {"seconds": statistics.median(r["seconds"] for r in raws), "rows": raws[0]["rows"]}
    print(f"raw stream: {raw['rows']} rows in {raw['seconds']:.1f} s (median of {args.repeat}), CPU "
          f"{statistics.median(r['cpu'] for r in raws):.1f} s; peak RSS {max(r['peak_mb'] for r in raws):.0f} MB; "
          f"load average {load_average()}", flush=True)
    fulls = [in_a_fresh_process(report_in_a_fresh_process, url, str(folder), None, 0, False)
             for _ in range(args.repeat)]
    full = min(fulls, key=lambda f: abs(f["seconds"] - statistics.median(x["seconds"] for x in fulls)))
    show(f"full report (median of {args.repeat})", full, raw)
    identical = {f["manifest_sha256"] for f in fulls}
    print(f"full report runs write the same bytes: {len(identical) == 1} ({len(fulls)} runs)", flush=True)
    if args.tracemalloc:
        show("full report under tracemalloc", in_a_fresh_process(report_in_a_fresh_process, url, str(folder), None,
                                                                 0, True))
    if args.past_day:
        show(f"full report as of {args.past_day} days ago", in_a_fresh_process(
            report_in_a_fresh_process, url, str(folder), None, args.past_day, False), raw)
    app = create_app(stats.bench_config(folder, url))
    with app.app_context():
        done = change_since_the_full_report(get_config().ID_HASH_KEY)
        db.session.remove()
    print(f"changed since: {json.dumps(done)}", flush=True)
    show("incremental report", in_a_fresh_process(report_in_a_fresh_process, url, str(folder), full["report_id"], 0,
                                                  args.tracemalloc), raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of the full report and of the raw stream")
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in the folder)")
    parser.add_argument("--keep", type=Path, help="keep the loaded data in this folder and reuse it next time")
    parser.add_argument("--past-day", type=int, help="also a full report as of this many days ago (reads revisions)")
    parser.add_argument("--tracemalloc", action="store_true", help="also measure Python's own peak allocation")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="kjdms-bench-mof-"))
    folder.mkdir(parents=True, exist_ok=True)
    url, schema = prepare(args, folder)
    try:
        run(args, folder, url)
    finally:
        if not args.keep:
            if schema:
                stats.drop_schema(args.database, schema)
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
