"""Time /stats/'s counts against raw SQL GROUP BYs of the same numbers in the same run, and the MoF report.

    .venv/bin/python bench/stats.py --dossiers 500000 --repeat 5
    .venv/bin/python bench/stats.py --dossiers 500000 --database postgresql://postgres@127.0.0.1:5432/test

SQLite runs in a temporary folder, PostgreSQL in a schema of its own; both are removed at the end. The data: persons with
one dossier each over every region, their workflow history (submit, approve, reject over the last 300 days), a
revision for a fifth of them (for a past day's snapshot), a few reviewers and credit findings. Figures are medians
of --repeat runs; the page and the raw queries alternate, so a load from elsewhere weighs on both alike.
"""
from __future__ import annotations

import argparse
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
import uuid
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy import and_, case, func, insert, select, text  # noqa: E402
from sqlalchemy.orm import aliased  # noqa: E402

from kjdms import create_app  # noqa: E402
from kjdms.backends import get_config, get_signing_key, get_workflow  # noqa: E402
from kjdms.config import Config  # noqa: E402
from kjdms.extensions import db  # noqa: E402
from kjdms.local_time import end_of_day, local_today  # noqa: E402
from kjdms.models import (CreditRecord, Dossier, DossierRevision, Person, Region, User, WorkflowHistory,  # noqa: E402
                          utcnow)
from kjdms.schema import upgrade_schema  # noqa: E402
from kjdms.services.mof_report import reported_states, write_report  # noqa: E402
from kjdms.services.reference import load_regions  # noqa: E402
from kjdms.services.stats_counters import rebuild  # noqa: E402
from kjdms.services.statistics import AGE_LIMITS, WEEKS_SHOWN, full_scope, region_tree  # noqa: E402
from kjdms.services.stats_page import compute_statistics  # noqa: E402
from kjdms.validators import id_number_check_digit  # noqa: E402
from kjdms.vocabulary import EDUCATION_LEVELS, JOB_TYPES, QUALIFICATION_LEVELS, SCOPE_CATEGORIES  # noqa: E402

BATCH = 10_000
REVIEWERS = 20


def load(n: int) -> None:
    """Bulk-insert n persons with one dossier each, their history, some revisions, reviewers and credit findings."""
    rng = random.Random(13)
    regions = db.session.execute(select(Region.id, Region.code)).all()
    now = utcnow()
    db.session.execute(insert(User), [{"id": i, "username": f"reviewer{i}", "display_name": f"审核员{i}",
                                       "created_at": now} for i in range(1, REVIEWERS + 1)])
    history_id = 0
    for start in range(0, n, BATCH):
        persons, dossiers, history, revisions = [], [], [], []
        for i in range(start, min(n, start + BATCH)):
            born = date(1960, 1, 1) + timedelta(days=rng.randrange(15000))
            body = f"{210000 + i // 1000:06d}{born:%Y%m%d}{i % 1000:03d}"
            region_id, code = rng.choice(regions)
            legacy = rng.random() < .3
            state = rng.choices(["approved", "submitted", "draft", "rejected", "archived"], [78, 10, 7, 3, 2])[0]
            created = now - timedelta(days=rng.randrange(300), minutes=rng.randrange(1440))
            record = {"education": rng.choice(list(EDUCATION_LEVELS)),
                      "scope_category": rng.choice(list(SCOPE_CATEGORIES)),
                      "qualification_level": rng.choice(list(QUALIFICATION_LEVELS)),
                      "job_types": rng.sample(list(JOB_TYPES), rng.randrange(1, 4)),
                      "employer_name": "某单位" if rng.random() < .95 else None, "is_student": rng.random() < .02}
            sex = rng.choice(["male", "female"])
            persons.append({"id": i + 1, "id_number": body + id_number_check_digit(body), "name": f"人员{i}",
                            "sex": sex, "birth_date": born, "is_legacy": legacy, "created_at": created})
            dossiers.append({"id": i + 1, "person_id": i + 1, "state": state, "region_id": region_id,
                             "to_confirm": legacy and state == "draft", "created_at": created,
                             "state_changed_at": created, "updated_at": created, "lock_version": 1, **record})
            moment = created
            for action, to_state in _history_of(state, rng):
                moment += timedelta(days=rng.random() * 10)
                history_id += 1
                history.append({"id": history_id, "dossier_id": i + 1, "action": action,
                                "from_state": "submitted" if action != "submit" else "draft", "to_state": to_state,
                                "actor_id": None if action == "submit" else rng.randrange(1, REVIEWERS + 1),
                                "actor_role": "applicant" if action == "submit" else "reviewer",
                                "created_at": min(moment, now)})
            if rng.random() < .2:
                fields = {**record, "region": code, "sex": sex, "birth_date": born.isoformat(), "name": f"人员{i}"}
                revisions.append({"dossier_id": i + 1, "state": state, "fields": fields, "attachments": {},
                                  "is_legacy": legacy, "to_confirm": legacy and state == "draft",
                                  "recorded_at": now - timedelta(days=rng.randrange(60))})
        for model, rows in ((Person, persons), (Dossier, dossiers), (WorkflowHistory, history),
                            (DossierRevision, revisions)):
            bulk_insert(model, rows)
        db.session.commit()
    db.session.execute(insert(CreditRecord), [
        {"person_id": rng.randrange(1, n + 1), "subject_name": "某人", "subject_id_hash": "0" * 64, "action": "record",
         "kind": rng.choice(["falsified_information", "false_report"]),
         "finding": "虚报学历", "legal_basis": "辽财会〔2019〕116号 四（二）", "evidence": [], "found_on": date.today(),
         "office_region_id": rng.choice(regions)[0], "recorded_by_label": "信用管理员", "recorded_at": now}
        for _ in range(max(1, n // 200))])
    db.session.commit()


def bulk_insert(model, rows: list[dict]) -> None:
    """Insert rows into model's table: executemany on SQLite, COPY on PostgreSQL (ten times faster there)."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(model), rows)
        return
    table = model.__table__
    names = list(rows[0])
    as_json = {name for name in names if isinstance(table.c[name].type, sa.JSON)}
    quoted = ", ".join(f'"{name}"' for name in names)
    with connection.connection.driver_connection.cursor() as cursor, \
            cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([json.dumps(row[name], ensure_ascii=False) if name in as_json else row[name]
                            for name in names])


def _history_of(state: str, rng: random.Random) -> list[tuple[str, str]]:
    """Return the transitions that brought a dossier to state (an earlier rejection now and then)."""
    rounds = [("submit", "submitted"), ("reject", "rejected")] if rng.random() < .1 else []
    tail = {"draft": [], "submitted": [("submit", "submitted")], "rejected": [("submit", "submitted"),
            ("reject", "rejected")], "approved": [("submit", "submitted"), ("approve", "approved")],
            "archived": [("submit", "submitted"), ("approve", "approved"), ("archive", "archived")]}[state]
    return (rounds if state != "draft" else []) + tail


def raw_group_by(regions: list[int] | None, dialect: str, day: date) -> None:
    """The page's numbers by hand-written GROUP BYs on the current tables, one query per table on the page."""
    effective = and_(Dossier.baseline_id.is_(None), *([Dossier.region_id.in_(regions)] if regions else []))
    approved = select().select_from(Dossier).join(Person).where(effective, Dossier.state == "approved")
    has_employer = case((func.coalesce(Dossier.employer_name, "") != "", 1), else_=0)
    limits = [(Person.birth_date > day.replace(year=day.year - limit), band) for band, limit in AGE_LIMITS]
    age = case(*limits, else_="60_over")
    for column in (Dossier.region_id, Dossier.scope_category, Dossier.qualification_level, Dossier.education,
                   Person.sex, age, Dossier.is_student, has_employer, Person.is_legacy):
        db.session.execute(approved.add_columns(column, func.count()).group_by(column)).all()
    array = (func.json_each(Dossier.job_types) if dialect == "sqlite" else
             func.jsonb_array_elements_text(sa.cast(Dossier.job_types, sa.dialects.postgresql.JSONB)))
    job = array.table_valued("value").alias("job")
    jobs = select(job.c.value, func.count()).select_from(Dossier).join(job, sa.true())
    db.session.execute(jobs.where(effective, Dossier.state == "approved").group_by(job.c.value)).all()
    db.session.execute(select(Dossier.region_id, Dossier.state, func.count()).where(effective)
                       .group_by(Dossier.region_id, Dossier.state)).all()
    db.session.execute(select(Dossier.state, Dossier.to_confirm, func.count()).join(Person)
                       .where(effective, Person.is_legacy.is_(True)).group_by(Dossier.state, Dossier.to_confirm)).all()
    cutoff = end_of_day(day)
    since = cutoff - timedelta(weeks=WEEKS_SHOWN)
    window = and_(WorkflowHistory.created_at >= since, WorkflowHistory.created_at < cutoff)
    week = (func.date(WorkflowHistory.created_at, "+8 hours", "weekday 0", "-6 days") if dialect == "sqlite" else
            func.date_trunc("week", func.timezone("Asia/Shanghai", WorkflowHistory.created_at)))
    flow = select(WorkflowHistory.action, func.count()).join(Dossier).where(effective, window)
    db.session.execute(flow.add_columns(week).where(WorkflowHistory.action.in_(["submit", "approve", "reject"]))
                       .group_by(week, WorkflowHistory.action)).all()
    db.session.execute(flow.add_columns(WorkflowHistory.actor_id).where(
        WorkflowHistory.action.in_(["approve", "reject"])).group_by(WorkflowHistory.actor_id,
                                                                    WorkflowHistory.action)).all()
    waiting = db.session.execute(
        select(Dossier.region_id, func.max(WorkflowHistory.created_at)).join(Dossier)
        .where(effective, Dossier.state == "submitted", WorkflowHistory.to_state == "submitted")
        .group_by(WorkflowHistory.dossier_id, Dossier.region_id)).all()
    by_region: dict = {}
    for region_id, entered in waiting:
        by_region.setdefault(region_id, []).append(entered)
    for times in by_region.values():  # nearest-rank median and 90th percentile, as the page takes them
        ordered = sorted(times, key=str)
        ordered[(50 * len(ordered) + 99) // 100 - 1], ordered[(90 * len(ordered) + 99) // 100 - 1]
    later = aliased(CreditRecord)
    db.session.execute(select(CreditRecord.office_region_id, CreditRecord.kind, func.count()).where(
        CreditRecord.action != "revoke", ~sa.exists().where(later.supersedes_id == CreditRecord.id),
        *([CreditRecord.office_region_id.in_(regions)] if regions else []))
        .group_by(CreditRecord.office_region_id, CreditRecord.kind)).all()


def paired(page, raw, repeat: int) -> tuple[float, float]:
    """Return the medians of page and raw, run alternately repeat times each (after one warm-up of each)."""
    page(), raw()
    pages, raws = [], []
    for _ in range(repeat):
        for function, times in ((page, pages), (raw, raws)):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
    return statistics.median(pages), statistics.median(raws)


def report_in_a_fresh_process(url: str, folder: str, queue) -> None:
    """Write the full MoF report in this (spawned) process and put (persons, seconds, peak RSS MB) on queue."""
    app = create_app(bench_config(Path(folder), url))
    with app.app_context():
        started = time.perf_counter()
        result = write_report(db.session, day=local_today(), out=Path(folder) / "mof", signing_key=get_signing_key(),
                              id_hash_key=get_config().ID_HASH_KEY, reported_states=reported_states(get_workflow()),
                              approved_state="approved")
        seconds = time.perf_counter() - started
    queue.put((result.counts["persons"], seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def bench_config(folder: Path, url: str) -> Config:
    return Config(environ={}, STORAGE_DIR=folder, DATABASE_URL=url, SECRET_KEY="bench", ID_HASH_KEY="bench")


def postgres_schema(url: str) -> tuple[str, str]:
    """Create a schema of the bench's own; return (its name, the URL that uses it)."""
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"kjdms_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return schema, f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def drop_schema(url: str, schema: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dossiers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kjdms-bench-stats-"))
    schema = None
    if args.database:
        schema, url = postgres_schema(args.database)
    else:
        url = f"sqlite:///{folder / 'kjdms.sqlite3'}"
    try:
        run(args, folder, url)
    finally:
        if schema:
            drop_schema(args.database, schema)
        shutil.rmtree(folder, ignore_errors=True)


def analyze() -> None:
    """Refresh the planner's statistics of the bench's own tables (a bare ANALYZE on PostgreSQL would lock every
    schema of the database, other users' too)."""
    for table in db.metadata.sorted_tables:
        db.session.execute(text(f'ANALYZE "{table.name}"'))
    db.session.commit()


def run(args, folder: Path, url: str) -> None:
    app = create_app(bench_config(folder, url))
    with app.app_context():
        upgrade_schema()
        load_regions(db.session)
        dialect = db.engine.dialect.name
        started = time.perf_counter()
        load(args.dossiers)
        analyze()
        print(f"{dialect}: loaded {args.dossiers} dossiers in {time.perf_counter() - started:.0f} s; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        # The bulk load bypasses change tracking, as a restore or an import by hand would: count it once.
        started = time.perf_counter()
        rebuild(db.engine.begin)
        analyze()
        print(f"{dialect}: statistics counters rebuilt in {time.perf_counter() - started:.0f} s", flush=True)
        tree, workflow = region_tree(db.session), get_workflow()
        scope = full_scope(tree)
        county = db.session.scalar(select(Region.id).where(Region.code == "211302"))
        today = local_today()
        for label, focus, regions in (("province", None, None), ("county 211302", county, sorted(tree.subtree(county)))):
            page, raw = paired(lambda: compute_statistics(db.session, workflow, scope, tree, focus, today),
                               lambda: raw_group_by(regions, dialect, today), args.repeat)
            print(f"stats {label}: page p50 {page * 1000:.0f} ms; raw GROUP BY p50 {raw * 1000:.0f} ms; "
                  f"ratio {page / raw:.2f}; load average {os.getloadavg()[0]:.2f}", flush=True)
        # A past day reads the revisions: no raw query on the current tables computes its numbers.
        past = today - timedelta(days=30)
        page, _ = paired(lambda: compute_statistics(db.session, workflow, scope, tree, None, past), lambda: None,
                         args.repeat)
        print(f"stats province on {past}: page p50 {page * 1000:.0f} ms", flush=True)
        db.session.remove()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=report_in_a_fresh_process, args=(url, str(folder), queue))
    child.start()
    persons, seconds, peak = queue.get()
    child.join()
    print(f"MoF full report (fresh process): {persons} persons in {seconds:.1f} s; peak RSS {peak:.0f} MB; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
