"""Time the reviewer's queue (GET /review/) on a fresh instance holding many submitted dossiers.

Run by hand, not by the test suite:

    .venv/bin/python bench/worklist.py [--dossiers 10000] [--requests 30] [--database-url URL] [--profile]

SQLite in a temporary folder by default; a postgresql URL gets a fresh schema, dropped afterwards.
Every number is measured with time.perf_counter; nothing is asserted about speed.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import html.parser
import io
import math
import pstats
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kjdms import create_app  # noqa: E402
from kjdms.schema import upgrade_schema  # noqa: E402
from kjdms.config import Config  # noqa: E402
from kjdms.extensions import db  # noqa: E402
from kjdms.models import Dossier, Person, Region, User, utcnow  # noqa: E402
from kjdms.services.accounts import assign_role, hash_password  # noqa: E402
from kjdms.services.reference import load_regions, region_by_code  # noqa: E402
from kjdms.validators import id_number_check_digit  # noqa: E402

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REVIEWER, PASSWORD = "bench_reviewer", "bench-pass-123"
CITY = "211300"  # 朝阳市: the reviewer's role covers its 8 offices
SHUANGTA = "211302"
# The first six digits of an ID number issued in each office (市本级 has no code of its own).
ID_PREFIX = {"211300-BJ": "211301"}
BATCH = 1000
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉建国志红梅"
EMPLOYERS = ("朝阳市双塔区示范会计服务有限公司", "朝阳市龙城区示范机械制造有限公司", "朝阳市示范事业单位",
             "凌源市示范商贸有限公司", "北票市示范农业合作社")


# ---------------------------------------------------------------- the instance

@contextlib.contextmanager
def database(url: str | None, folder: Path):
    """Yield (url, label) of an empty database: a SQLite file in folder, or a fresh PostgreSQL schema."""
    if not url:
        yield f"sqlite:///{folder / 'kjdms.sqlite3'}", "sqlite"
        return
    if not url.startswith("postgresql"):
        yield url, url.split(":", 1)[0]
        return
    schema = f"kjdms_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as error:
        raise SystemExit(f"PostgreSQL not reachable at {url}: {error.orig}") from None
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}", f"postgresql (schema {schema})"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_app(folder: Path, url: str):
    """Return the application on url, configured like the tests' make_config (no environment)."""
    return create_app(Config(environ={}, STORAGE_DIR=folder, DATABASE_URL=url,
                             SECRET_KEY="bench-secret-key", ID_HASH_KEY="bench-id-hash-key"))


def migrate_and_load(app) -> None:
    """Bring the database to the newest schema and load the region tree (as tests/conftest.py does)."""
    with app.app_context():
        upgrade_schema()
        load_regions(db.session)
        db.session.remove()


def create_reviewer() -> None:
    """Create the reviewer holding the reviewer role on 朝阳市."""
    user = User(username=REVIEWER, display_name="压测审核员", password_hash=hash_password(PASSWORD))
    db.session.add(user)
    assign_role(db.session, user, "reviewer", region_by_code(db.session, CITY))
    db.session.commit()


# ---------------------------------------------------------------- the data

def fake_people(count: int, prefixes: list[str], rng: random.Random):
    """Yield (id_number, name, sex, birth_date) with distinct, valid 18-digit ID numbers."""
    seen = set()
    while len(seen) < count:
        prefix = rng.choice(prefixes)
        birth = date(1960, 1, 1) + timedelta(days=rng.randrange(40 * 365))
        body = f"{prefix}{birth:%Y%m%d}{rng.randrange(1000):03d}"
        if body in seen:
            continue
        seen.add(body)
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        yield body + id_number_check_digit(body), name, "male" if int(body[16]) % 2 else "female", birth


def insert_dossiers(count: int, seed: int = 2019) -> float:
    """Insert count persons with a submitted dossier each over Chaoyang's offices; return the seconds taken."""
    rng = random.Random(seed)
    offices = db.session.scalars(select_children(CITY)).all()
    by_prefix = {ID_PREFIX.get(office.code, office.code): office.id for office in offices}
    prefixes = list(by_prefix)
    now = utcnow()
    people = fake_people(count, prefixes, rng)
    started = time.perf_counter()
    done = 0
    while done < count:
        batch = [next(people) for _ in range(min(BATCH, count - done))]
        person_rows = [dict(id_number=id_number, name=name, sex=sex, birth_date=birth, created_at=now)
                       for id_number, name, sex, birth in batch]
        person_ids = db.session.scalars(
            sa.insert(Person).returning(Person.id, sort_by_parameter_order=True), person_rows).all()
        dossier_rows = []
        for person_id, (id_number, *_rest) in zip(person_ids, batch):
            region_id = by_prefix[id_number[:6]]
            changed = now - timedelta(seconds=rng.uniform(0, 60 * 86400))
            dossier_rows.append(dict(
                person_id=person_id, state="submitted", state_changed_at=changed, region_id=region_id,
                phone=f"139{rng.randrange(10 ** 8):08d}", education=rng.choice(("bachelor", "college", "master")),
                scope_category="in_accounting_work", job_types=["cashier"],
                employer_name=rng.choice(EMPLOYERS) if rng.random() < 0.2 else None,
                employer_region_id=region_id, household_region_id=region_id, qualification_level="none",
                created_at=changed, updated_at=changed, lock_version=1,
            ))
        db.session.execute(sa.insert(Dossier), dossier_rows)
        db.session.commit()
        done += len(batch)
        elapsed = time.perf_counter() - started
        line = f"  inserting dossiers: {done:>7}/{count} ({done * 100 // count:3d}%) {elapsed:6.1f} s"
        if sys.stderr.isatty():
            print("\r" + line, end="", file=sys.stderr, flush=True)
        elif done == count or done // BATCH % 5 == 0:
            print(line, file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return time.perf_counter() - started


def select_children(code: str):
    """Return a select of the regions directly below the region with code."""
    parent = sa.select(Region.id).where(Region.code == code).scalar_subquery()
    return sa.select(Region).where(Region.parent_id == parent).order_by(Region.sort_order)


# ---------------------------------------------------------------- the requests

class _Inputs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.values = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name"):
            self.values[attrs["name"]] = attrs.get("value") or ""


def sign_in(client) -> None:
    """Sign the reviewer in through the real staff form (GET /login, then POST /login/staff)."""
    page = client.get("/login")
    parser = _Inputs()
    parser.feed(page.get_data(as_text=True))
    token = parser.values.get("staff-csrf_token")
    if not token:
        raise SystemExit("no staff-csrf_token on /login")
    response = client.post("/login/staff", data={
        "staff-csrf_token": token, "staff-username": REVIEWER, "staff-password": PASSWORD})
    if response.status_code != 302 or not response.location.endswith("/review/"):
        raise SystemExit(f"sign-in failed: {response.status_code} {response.location}")


class QueryCounter:
    """Count the SQL statements an engine runs, and keep each one with its time in milliseconds."""

    def __init__(self, engine):
        self.statements: list[tuple[str, float]] = []
        self._started = 0.0
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        self._started = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append((statement, (time.perf_counter() - self._started) * 1000))

    def reset(self) -> None:
        self.statements = []


ROW = '<a href="/review/'


def timed(client, url: str, requests: int, counter: QueryCounter) -> dict:
    """Warm url up once, then time requests GETs; return the statistics in milliseconds."""
    client.get(url)
    times, sizes, statuses = [], set(), set()
    for _ in range(requests):
        counter.reset()
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        sizes.add(len(response.data))
        statuses.add(response.status_code)
    body = response.get_data(as_text=True)
    times.sort()
    return dict(url=url, status="/".join(map(str, sorted(statuses))), rows=count_rows(body),
                total=badge_total(body), median=statistics.median(times),
                p90=times[max(0, math.ceil(0.9 * len(times)) - 1)], min=times[0], max=times[-1],
                size=max(sizes), queries=len(counter.statements))


def count_rows(body: str) -> int:
    """Return how many dossier rows the page lists (links to /review/<id>)."""
    return sum(1 for chunk in body.split(ROW)[1:] if chunk[:1].isdigit())


def badge_total(body: str) -> str:
    """Return the queue total shown in the heading's badge."""
    marker = 'badge text-bg-primary">'
    start = body.find(marker)
    return body[start + len(marker):body.find("<", start + len(marker))] if start >= 0 else "?"


def profile(client, url: str, counter: QueryCounter, top: int = 15) -> str:
    """Return the cProfile of one GET of url (top by cumulative time) and the SQL it ran."""
    client.get(url)
    counter.reset()
    profiler = cProfile.Profile()
    profiler.enable()
    client.get(url)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    out.write("The same request by own time (tottime):\n")
    stats.sort_stats("tottime").print_stats(top)
    total = sum(ms for _statement, ms in counter.statements)
    out.write(f"SQL statements of that request ({len(counter.statements)}, {total:.1f} ms in the driver):\n")
    for statement, ms in counter.statements:
        out.write(f"  {ms:6.1f} ms  " + " ".join(statement.split())[:130] + "\n")
    return out.getvalue()


# ---------------------------------------------------------------- main

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=10000, help="submitted dossiers to insert (10000)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per URL (30)")
    parser.add_argument("--database-url", help=f"an empty database; postgresql gets a fresh schema, e.g. {POSTGRES_URL}")
    parser.add_argument("--postgres", action="store_true", help=f"shorthand for --database-url {POSTGRES_URL}")
    parser.add_argument("--after-load", action="append", default=[], metavar="SQL",
                        help="SQL to run after the insert, e.g. a candidate index (repeatable)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one GET /review/ (top 15 cumulative)")
    args = parser.parse_args(argv)
    url = args.database_url or (POSTGRES_URL if args.postgres else None)

    with tempfile.TemporaryDirectory(prefix="kjdms-bench-") as tmp, database(url, Path(tmp)) as (db_url, label):
        folder = Path(tmp)
        app = make_app(folder, db_url)
        try:
            run(app, label, args)
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def run(app, label: str, args) -> None:
    print(f"kjdms worklist bench: {label}, {args.dossiers} submitted dossiers, {args.requests} requests per URL")
    started = time.perf_counter()
    migrate_and_load(app)
    migrate_seconds = time.perf_counter() - started
    with app.app_context():
        create_reviewer()
        insert_seconds = insert_dossiers(args.dossiers)
        print(f"  migrate + regions {migrate_seconds:.2f} s; insert {args.dossiers} persons + dossiers "
              f"{insert_seconds:.2f} s ({args.dossiers / max(insert_seconds, 1e-9):,.0f} dossiers/s)")
        for statement in args.after_load:
            started = time.perf_counter()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(sa.text(statement))  # autocommit: VACUUM refuses a transaction
            print(f"  after load: {statement} ({time.perf_counter() - started:.2f} s)")
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(sa.text("ANALYZE"))  # what autovacuum would soon do after a bulk load
        shuangta = region_by_code(db.session, SHUANGTA).id
        counter = QueryCounter(db.engine)
        db.session.remove()

    client = app.test_client()
    sign_in(client)
    urls = ["/review/", f"/review/?region={shuangta}", "/review/?waited=30", "/review/?page=100"]
    results = [timed(client, url, args.requests, counter) for url in urls]

    header = (f"{'GET':<22}{'status':>7}{'rows':>6}{'total':>7}{'median':>9}{'p90':>9}{'min':>9}{'max':>9}"
              f"{'bytes':>9}{'SQL':>5}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['url']:<22}{r['status']:>7}{r['rows']:>6}{r['total']:>7}{r['median']:>9.1f}{r['p90']:>9.1f}"
              f"{r['min']:>9.1f}{r['max']:>9.1f}{r['size']:>9}{r['queries']:>5}")
    print("  times in ms (time.perf_counter around client.get); rows = dossiers listed; "
          "total = the queue badge; SQL = statements per request")

    if args.profile:
        print()
        print("cProfile of one GET /review/:")
        print(profile(client, "/review/", counter))


if __name__ == "__main__":
    main()
