"""Time the downstream status lookup: one batch of 1,000 persons, against 1,000 single lookups and a bare SQL read.

Run by hand, not by the test suite:

    .venv/bin/python bench/api_lookup.py [--dossiers 10000] [--rounds 5] [--postgres | --database-url URL]

The three are interleaved round by round, so the machine's load falls on each alike; the medians and their ratios
are printed. Nothing is asserted about speed.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kjdms.extensions import db  # noqa: E402
from kjdms.models import Dossier, Person  # noqa: E402
from kjdms.permissions import SYSTEM  # noqa: E402
from kjdms.services.api_clients import create_client  # noqa: E402
from kjdms.services.reference import region_by_code  # noqa: E402
from worklist import POSTGRES_URL, database, insert_dossiers, make_app, migrate_and_load  # noqa: E402

BATCH = 1000


def persons_to_ask(seed: int) -> list[dict]:
    """Return 1,000 queries: 900 persons as registered, 50 with another name, 50 nobody's ID numbers."""
    rng = random.Random(seed)
    people = db.session.execute(sa.select(Person.name, Person.id_number)).all()
    chosen = rng.sample(people, BATCH - 50)
    queries = [{"name": name, "id_number": number} for name, number in chosen[:900]]
    queries += [{"name": "欧阳" + name[-1], "id_number": number} for name, number in chosen[900:]]
    queries += [{"name": "张伟", "id_number": f"21130219700101{900 + index:03d}0"} for index in range(50)]
    return queries


def fix_check_digits(queries: list[dict]) -> list[dict]:
    """Give the made-up ID numbers their right check digit (the API refuses a wrong one with 422)."""
    from kjdms.validators import id_number_check_digit
    for query in queries:
        body = query["id_number"][:17]
        query["id_number"] = body + id_number_check_digit(body)
    return queries


def bare_sql(queries: list[dict]) -> None:
    """The least work that answers the batch: one indexed read of the persons and their dossiers."""
    db.session.execute(sa.select(Person.name, Dossier.state, Dossier.region_id)
                       .join(Dossier, (Dossier.person_id == Person.id) & Dossier.baseline_id.is_(None))
                       .where(Person.id_number.in_([query["id_number"] for query in queries]))).all()
    db.session.rollback()


def main(argv=None) -> None:
    """Build the instance, then time the three ways round by round and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help=f"use {POSTGRES_URL}")
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, \
            database(args.database_url or (POSTGRES_URL if args.postgres else None), Path(folder)) as (url, label):
        app = make_app(Path(folder), url)
        migrate_and_load(app)
        with app.app_context():
            inserted = insert_dossiers(args.dossiers)
            _, key = create_client(db.session, SYSTEM, name="压测调用方", purpose="压测", may_see_credit=True,
                                   regions=[region_by_code(db.session, "211300")], rate_per_minute=100_000)
            queries = fix_check_digits(persons_to_ask(2019))
            client = app.test_client()
            headers = {"Authorization": f"Bearer {key}"}
            found = client.post("/api/v1/status-lookups/batch", json={"persons": queries}, headers=headers)
            assert found.status_code == 200, found.get_data(as_text=True)
            hits = sum(result["found"] for result in found.get_json()["results"])
            times: dict[str, list[float]] = {"batch": [], "singles": [], "sql": []}
            for _ in range(args.rounds):
                started = time.perf_counter()
                client.post("/api/v1/status-lookups/batch", json={"persons": queries}, headers=headers)
                times["batch"].append(time.perf_counter() - started)
                started = time.perf_counter()
                for query in queries:
                    client.post("/api/v1/status-lookups", json=query, headers=headers)
                times["singles"].append(time.perf_counter() - started)
                started = time.perf_counter()
                bare_sql(queries)
                times["sql"].append(time.perf_counter() - started)
        medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
        print(f"{label}: {args.dossiers} dossiers inserted in {inserted:.1f} s; {BATCH} persons asked, {hits} found; "
              f"{args.rounds} rounds")
        for name, title in (("batch", "one batch request of 1,000"), ("singles", "1,000 single requests"),
                            ("sql", "bare SQL read (baseline)")):
            print(f"  {title:<28} median {medians[name]:9.1f} ms   (min {min(times[name]) * 1000:9.1f} ms)")
        print(f"  ratio batch / bare SQL: {medians['batch'] / medians['sql']:.1f}x; "
              f"singles / batch: {medians['singles'] / medians['batch']:.1f}x")


if __name__ == "__main__":
    main()
