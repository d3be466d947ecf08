"""Time /stats/'s counts against raw SQL GROUP BYs of the same numbers in the same run, and the MoF report.

    .venv/bin/python bench/stats.py --dossiers 500000 --repeat 5
    .venv/bin/python bench/stats.py --dossiers 500000 --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/stats.py --dossiers 500000 --keep /var/tmp/stats500k --no-report   # load once, reuse after

SQLite runs in a temporary folder, PostgreSQL in a schema of its own; both are removed at the end unless --keep names a
folder (then a second run with the same --keep reuses the instance; its schema is upgraded, so new migrations count).
The data: persons with one dossier each over every region, their workflow history over the last 300 days (submit,
then approve or reject with the items at fault, a tenth rejected once and resubmitted first; two reviewers per
region), changes of information through working copies for 4% of the approved, a revision for a fifth of them (for
a past day's snapshot), and credit findings for one person in 200, some corrected or revoked. Figures are medians
of --repeat runs; the page and the raw queries alternate, so a load from elsewhere weighs on both alike; the parts
of the page are timed one by one too (PANELS).
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
from kjdms.services.compliance_stats import _iso_day as iso_day, _local_day as local_day  # noqa: E402
from kjdms.services.compliance_stats import more_than_a_month_after  # noqa: E402
from kjdms.services.mof_report import reported_states, write_report  # noqa: E402
from kjdms.services.reference import load_regions  # noqa: E402
from kjdms.services.stats_counters import rebuild  # noqa: E402
from kjdms.services.statistics import AGE_LIMITS, WEEKS_SHOWN, full_scope, region_tree  # noqa: E402
from kjdms.services.stats_page import compute_statistics  # noqa: E402
from kjdms.validators import id_number_check_digit  # noqa: E402
from kjdms.vocabulary import (EDUCATION_LEVELS, JOB_TYPES, QUALIFICATION_LEVELS, REJECTABLE_ITEMS,  # noqa: E402
                              SCOPE_CATEGORIES)

BATCH = 10_000


REVIEWERS_PER_REGION = 2
# The share of dossiers whose person filed a change of information (a working copy) since approval.
CHANGED = .04


def load(n: int) -> None:
    """Bulk-insert n persons with one dossier each, their workflow history, changes, revisions and credit files.

    Each region has its own reviewers; a dossier's history is its submission, then an approval or a rejection with
    the items at fault (a tenth are rejected once and resubmitted first), spread over the last 300 days; approved
    dossiers now and then carry a change of information (a working copy, submitted and approved, or still waiting).
    """
    rng = random.Random(13)
    regions = db.session.execute(select(Region.id, Region.code)).all()
    now = utcnow()
    reviewers = {region_id: [n_region * REVIEWERS_PER_REGION + k + 1 for k in range(REVIEWERS_PER_REGION)]
                 for n_region, (region_id, _) in enumerate(regions)}
    db.session.execute(insert(User), [{"id": user_id, "username": f"reviewer{user_id}",
                                       "display_name": f"审核员{user_id}", "created_at": now}
                                      for ids in reviewers.values() for user_id in ids])
    items = list(REJECTABLE_ITEMS)
    history_id, copy_id = 0, n
    for start in range(0, n, BATCH):
        persons, dossiers, copies, history, revisions = [], [], [], [], []

        def add_history(dossier_id, moment, steps, actors):
            nonlocal history_id
            for action, source, target in steps:
                moment = min(moment + timedelta(days=rng.random() * 10), now)
                history_id += 1
                flagged = rng.sample(items, rng.randrange(0, 3)) if action == "reject" else []
                history.append({"id": history_id, "dossier_id": dossier_id, "action": action, "from_state": source,
                                "to_state": target, "actor_id": None if action == "submit" else rng.choice(actors),
                                "actor_role": "applicant" if action == "submit" else "reviewer",
                                "comment": "材料不符" if action == "reject" else None, "flagged": flagged,
                                "created_at": moment})
            return moment

        for i in range(start, min(n, start + BATCH)):
            born = date(1960, 1, 1) + timedelta(days=rng.randrange(15000))
            body = f"{210000 + i // 1000:06d}{born:%Y%m%d}{i % 1000:03d}"
            region_id, code = rng.choice(regions)
            legacy = rng.random() < .3
            state = rng.choices(["approved", "submitted", "draft", "rejected", "archived"], [78, 10, 7, 3, 2])[0]
            created = now - timedelta(days=rng.randrange(300), minutes=rng.randrange(1440))
            started = None if legacy else (created - timedelta(days=rng.randrange(90))).date()
            record = {"education": rng.choice(list(EDUCATION_LEVELS)),
                      "scope_category": rng.choice(list(SCOPE_CATEGORIES)),
                      "qualification_level": rng.choice(list(QUALIFICATION_LEVELS)),
                      "job_types": rng.sample(list(JOB_TYPES), rng.randrange(1, 4)),
                      "employer_name": "某单位" if rng.random() < .95 else None, "is_student": rng.random() < .02}
            sex = rng.choice(["male", "female"])
            persons.append({"id": i + 1, "id_number": body + id_number_check_digit(body), "name": f"人员{i}",
                            "sex": sex, "birth_date": born, "is_legacy": legacy, "created_at": created})
            moment = add_history(i + 1, created, _history_of(state, rng), reviewers[region_id])
            dossiers.append({"id": i + 1, "person_id": i + 1, "state": state, "region_id": region_id,
                             "to_confirm": legacy and state == "draft", "created_at": created,
                             "job_started_on": started, "state_changed_at": moment, "updated_at": moment,
                             "lock_version": 1, **record})
            if state == "approved" and moment < now - timedelta(days=2) and rng.random() < CHANGED:
                copy_id += 1
                opened = moment + (now - moment) * rng.random()
                waiting = rng.random() < .25
                steps = [("submit", "draft", "submitted")] + ([] if waiting else [("approve", "submitted", "approved")])
                done = add_history(copy_id, opened, steps, reviewers[region_id])
                copies.append({"id": copy_id, "person_id": i + 1, "baseline_id": i + 1,
                               "state": "submitted" if waiting else "approved", "region_id": region_id, "to_confirm": False,
                               "checked_in_at": None if waiting else done, "created_at": opened,
                               "information_changed_on": (opened - timedelta(days=rng.randrange(60))).date(),
                               "state_changed_at": done, "updated_at": done, "lock_version": 1, **record})
            if rng.random() < .2:
                fields = {**record, "region": code, "sex": sex, "birth_date": born.isoformat(), "name": f"人员{i}"}
                revisions.append({"dossier_id": i + 1, "state": state, "fields": fields, "attachments": {},
                                  "is_legacy": legacy, "to_confirm": legacy and state == "draft",
                                  "recorded_at": now - timedelta(days=rng.randrange(60))})
        for model, rows in ((Person, persons), (Dossier, dossiers), (Dossier, copies), (WorkflowHistory, history),
                            (DossierRevision, revisions)):
            bulk_insert(model, rows)
        db.session.commit()
    load_credit_files(n, rng, regions, now)


def load_credit_files(n: int, rng: random.Random, regions, now) -> None:
    """Record findings on one person in 200, a tenth of them corrected later and one in twenty revoked."""
    records, changes = [], []
    for record_id in range(1, max(1, n // 200) + 1):
        recorded = now - timedelta(days=rng.randrange(300))
        base = {"person_id": rng.randrange(1, n + 1), "subject_name": "某人", "subject_id_hash": "0" * 64,
                "kind": rng.choice(["falsified_information", "false_report", "other"]), "finding": "虚报学历",
                "legal_basis": "辽财会〔2019〕116号 四（二）", "evidence": [], "found_on": recorded.date(),
                "office_region_id": rng.choice(regions)[0], "recorded_by_label": "信用管理员"}
        records.append({**base, "id": record_id, "action": "record", "recorded_at": recorded})
        fate = rng.random()
        if fate < .15:
            changes.append({**base, "id": n + record_id, "action": "correct" if fate < .1 else "revoke", "supersedes_id": record_id,
                            "recorded_at": recorded + timedelta(days=1)})
    for rows in (records, changes):
        if rows:
            db.session.execute(insert(CreditRecord), rows)
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


def _history_of(state: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """Return the transitions (action, from, to) that brought a dossier to state (a rejection first now and then)."""
    submit, approve = ("submit", "draft", "submitted"), ("approve", "submitted", "approved")
    reject = ("reject", "submitted", "rejected")
    tail = {"draft": [], "submitted": [submit], "rejected": [submit, reject], "approved": [submit, approve],
            "archived": [submit, approve, ("archive", "approved", "archived")]}[state]
    if state != "draft" and rng.random() < .1:
        tail = [submit, reject, ("submit", "rejected", "submitted")] + tail[1:]
    return tail


def raw_group_by(regions: list[int] | None, dialect: str, day: date) -> None:
    """The page's numbers by hand-written GROUP BYs on the current tables, one query per table on the page (the
    queue's percentiles taken in Python; the one-month rule's date test is the page's own SQL expression)."""
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
    # Rejections by flagged item (a working copy's count for its baseline) and the one-month rule's registrations.
    dossier = aliased(Dossier)
    owner = func.coalesce(dossier.baseline_id, dossier.id)
    flagged = (func.json_each(WorkflowHistory.flagged) if dialect == "sqlite" else
               func.jsonb_array_elements_text(sa.cast(WorkflowHistory.flagged, sa.dialects.postgresql.JSONB)))
    item = flagged.table_valued("value").alias("item")
    db.session.execute(select(Dossier.region_id, item.c.value, func.count()).select_from(WorkflowHistory)
                       .join(item, sa.true()).join(dossier, dossier.id == WorkflowHistory.dossier_id)
                       .join(Dossier, Dossier.id == owner)
                       .where(effective, WorkflowHistory.action == "reject")
                       .group_by(Dossier.region_id, item.c.value)).all()
    late = more_than_a_month_after(local_day(dialect, Dossier.created_at), iso_day(dialect, Dossier.job_started_on))
    db.session.execute(select(Dossier.region_id, func.count(), func.sum(case((late, 1), else_=0))).join(Person)
                       .where(effective, Person.is_legacy.is_(False), Dossier.job_started_on.is_not(None))
                       .group_by(Dossier.region_id)).all()
    copy = aliased(Dossier)
    submitted = (select(WorkflowHistory.dossier_id, func.min(WorkflowHistory.created_at).label("first"))
                 .where(WorkflowHistory.action == "submit").group_by(WorkflowHistory.dossier_id).subquery())
    late = more_than_a_month_after(local_day(dialect, submitted.c.first), iso_day(dialect, copy.information_changed_on))
    db.session.execute(select(Dossier.region_id, func.count(), func.sum(case((late, 1), else_=0))).select_from(copy)
                       .join(submitted, submitted.c.dossier_id == copy.id).join(Dossier, Dossier.id == copy.baseline_id)
                       .where(effective, copy.information_changed_on.is_not(None))
                       .group_by(Dossier.region_id)).all()
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
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the loaded instance in DIR (a PostgreSQL schema named in DIR/instance.json); "
                             "when DIR already holds one, reuse it instead of loading")
    parser.add_argument("--recount", action="store_true", help="rebuild the statistics counters of a reused instance")
    parser.add_argument("--no-report", action="store_true", help="skip the MoF report")
    args = parser.parse_args()
    if args.keep:
        run(args, *kept_instance(args))
        return
    folder = Path(tempfile.mkdtemp(prefix="kjdms-bench-stats-"))
    schema = None
    if args.database:
        schema, url = postgres_schema(args.database)
    else:
        url = f"sqlite:///{folder / 'kjdms.sqlite3'}"
    try:
        run(args, folder, url, loaded=False)
    finally:
        if schema:
            drop_schema(args.database, schema)
        shutil.rmtree(folder, ignore_errors=True)


def kept_instance(args) -> tuple[Path, str, bool]:
    """Return (folder, URL, loaded already) of the instance kept in --keep, made there when it holds none."""
    folder = args.keep.resolve()
    described = folder / "instance.json"
    if described.exists():
        kept = json.loads(described.read_text())
        if kept["dossiers"] != args.dossiers:
            sys.exit(f"{folder} holds {kept['dossiers']} dossiers, not {args.dossiers}: use another folder")
        return folder, kept["url"], True
    folder.mkdir(parents=True, exist_ok=True)
    url = postgres_schema(args.database)[1] if args.database else f"sqlite:///{folder / 'kjdms.sqlite3'}"
    return folder, url, False


def analyze() -> None:
    """Refresh the planner's statistics of the bench's own tables (a bare ANALYZE on PostgreSQL would lock every
    schema of the database, other users' too)."""
    for table in db.metadata.sorted_tables:
        db.session.execute(text(f'ANALYZE "{table.name}"'))
    db.session.commit()


# The parts of today's page, timed one by one: (module, function, label).
PANELS = (("kjdms.services.stats_page", "Counts", "counters read (every counted panel, one statement)"),
          ("kjdms.services.counted_collection", "flow_tables", "weekly flow and reviewers"),
          ("kjdms.services.counted_collection", "queue_waiting", "queue waiting"),
          ("kjdms.services.counted_collection", "rejection_reasons", "rejection reasons"),
          ("kjdms.services.counted_collection", "late_registrations_and_updates", "late registrations and updates"),
          ("kjdms.services.stats_page", "credit_tables", "credit findings"))


def time_panels() -> dict[str, list[float]]:
    """Wrap each part of the page in PANELS with a timer; return label → the seconds of every call."""
    import importlib

    times: dict[str, list[float]] = {}
    for module_name, name, label in PANELS:
        module = importlib.import_module(module_name)
        function = getattr(module, name, None)
        if function is None:
            continue

        def timed(*args, _function=function, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _function(*args, **kwargs)
            finally:
                times.setdefault(_label, []).append(time.perf_counter() - started)
        setattr(module, name, timed)
    return times


def run(args, folder: Path, url: str, loaded: bool) -> None:
    app = create_app(bench_config(folder, url))
    with app.app_context():
        upgrade_schema()
        dialect = db.engine.dialect.name
        if not loaded:
            load_regions(db.session)
            started = time.perf_counter()
            load(args.dossiers)
            analyze()
            print(f"{dialect}: loaded {args.dossiers} dossiers in {time.perf_counter() - started:.0f} s; "
                  f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        if not loaded or args.recount:
            # The bulk load bypasses change tracking, as a restore or an import by hand would: count it once.
            started = time.perf_counter()
            rebuild(db.engine.begin)
            analyze()
            print(f"{dialect}: statistics counters rebuilt in {time.perf_counter() - started:.0f} s", flush=True)
        if args.keep and not loaded:
            (folder / "instance.json").write_text(json.dumps({"url": url, "dossiers": args.dossiers}))
        tree, workflow = region_tree(db.session), get_workflow()
        scope = full_scope(tree)
        county = db.session.scalar(select(Region.id).where(Region.code == "211302"))
        today = local_today()
        panels = time_panels()
        for label, focus, regions in (("province", None, None), ("county 211302", county, sorted(tree.subtree(county)))):
            panels.clear()
            page, raw = paired(lambda: compute_statistics(db.session, workflow, scope, tree, focus, today),
                               lambda: raw_group_by(regions, dialect, today), args.repeat)
            print(f"stats {label}: page p50 {page * 1000:.0f} ms; raw GROUP BY p50 {raw * 1000:.0f} ms; "
                  f"ratio {page / raw:.2f}; load average {os.getloadavg()[0]:.2f}", flush=True)
            print("  per panel p50: " + "; ".join(f"{name} {statistics.median(times) * 1000:.0f} ms"
                                                  for name, times in panels.items()), flush=True)
        # A past day reads the revisions: no raw query on the current tables computes its numbers.
        past = today - timedelta(days=30)
        page, _ = paired(lambda: compute_statistics(db.session, workflow, scope, tree, None, past), lambda: None,
                         args.repeat)
        print(f"stats province on {past}: page p50 {page * 1000:.0f} ms", flush=True)
        db.session.remove()
    if args.no_report:
        return
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
