"""Time /stats/'s counts against the raw SQL GROUP BY of the same numbers, and the MoF report's time and peak RSS."""
from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select  # noqa: E402

from kjdms import create_app  # noqa: E402
from kjdms.backends import get_config, get_signing_key, get_workflow  # noqa: E402
from kjdms.config import Config  # noqa: E402
from kjdms.extensions import db  # noqa: E402
from kjdms.models import Dossier, Person, Region, utcnow  # noqa: E402
from kjdms.schema import upgrade_schema  # noqa: E402
from kjdms.services.mof_report import reported_states, write_report  # noqa: E402
from kjdms.services.reference import load_regions  # noqa: E402
from kjdms.services.statistics import (WORKFORCE_DIMENSIONS, compute_statistics, full_scope,  # noqa: E402
                                       region_tree)
from kjdms.validators import id_number_check_digit  # noqa: E402
from kjdms.vocabulary import EDUCATION_LEVELS, JOB_TYPES, QUALIFICATION_LEVELS, SCOPE_CATEGORIES  # noqa: E402


def load(n: int) -> None:
    """Bulk-insert n persons with one dossier each, mostly approved, spread over every region."""
    rng = random.Random(13)
    regions = db.session.scalars(select(Region.id)).all()
    now = utcnow()
    for start in range(0, n, 5000):
        persons, dossiers = [], []
        for i in range(start, min(n, start + 5000)):
            born = date(1960, 1, 1) + timedelta(days=rng.randrange(15000))
            body = f"{210000 + i // 1000:06d}{born:%Y%m%d}{i % 1000:03d}"
            persons.append({"id": i + 1, "id_number": body + id_number_check_digit(body), "name": f"人员{i}",
                            "sex": rng.choice(["male", "female"]), "birth_date": born, "is_legacy": rng.random() < .3,
                            "created_at": now})
            dossiers.append({"id": i + 1, "person_id": i + 1, "state": rng.choices(
                ["approved", "submitted", "draft", "rejected"], [80, 10, 7, 3])[0], "region_id": rng.choice(regions),
                "education": rng.choice(list(EDUCATION_LEVELS)), "scope_category": rng.choice(list(SCOPE_CATEGORIES)),
                "qualification_level": rng.choice(list(QUALIFICATION_LEVELS)),
                "job_types": rng.sample(list(JOB_TYPES), 2), "employer_name": "某单位", "is_student": False,
                "to_confirm": False, "created_at": now - timedelta(days=rng.randrange(300)),
                "state_changed_at": now, "updated_at": now, "lock_version": 1})
        db.session.execute(insert(Person), persons)
        db.session.execute(insert(Dossier), dossiers)
        db.session.commit()


def raw_group_by() -> None:
    """The same workforce numbers by hand-written GROUP BY on the current tables (one query per dimension)."""
    base = select().select_from(Dossier).join(Person).where(Dossier.baseline_id.is_(None), Dossier.state == "approved")
    for column in (Dossier.region_id, Dossier.scope_category, Dossier.qualification_level, Dossier.education,
                   Person.sex, Person.birth_date, Dossier.is_student, Dossier.employer_name, Person.is_legacy):
        db.session.execute(base.add_columns(column, func.count()).group_by(column)).all()
    db.session.execute(base.add_columns(Dossier.job_types, func.count()).group_by(Dossier.job_types)).all()
    db.session.execute(select(Dossier.state, Dossier.region_id, func.count()).group_by(Dossier.state,
                                                                                      Dossier.region_id)).all()


def timed(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kjdms-bench-stats-"))
    app = create_app(Config(environ={}, STORAGE_DIR=folder, DATABASE_URL=f"sqlite:///{folder / 'kjdms.sqlite3'}",
                            SECRET_KEY="bench", ID_HASH_KEY="bench"))
    with app.app_context():
        upgrade_schema()
        load_regions(db.session)
        started = time.perf_counter()
        load(args.dossiers)
        print(f"loaded {args.dossiers} dossiers in {time.perf_counter() - started:.1f} s")
        tree, workflow = region_tree(db.session), get_workflow()
        scope = full_scope(tree)
        county = db.session.scalar(select(Region.id).where(Region.code == "211302"))
        for label, focus in (("province", None), ("county 211302", county)):
            page = timed(lambda: compute_statistics(db.session, workflow, scope, tree, focus), args.repeat)
            raw = timed(raw_group_by, args.repeat)
            print(f"stats {label}: p50 {page * 1000:.0f} ms; raw GROUP BY {raw * 1000:.0f} ms; ratio {page / raw:.2f}")
        print(f"({len(WORKFORCE_DIMENSIONS)} workforce dimensions, collection and credit panels included in the page)")
        started = time.perf_counter()
        result = write_report(db.session, day=date.today(), out=folder / "mof", signing_key=get_signing_key(),
                              id_hash_key=get_config().ID_HASH_KEY, reported_states=reported_states(workflow),
                              approved_state="approved")
        print(f"MoF full report: {result.counts['persons']} persons in {time.perf_counter() - started:.1f} s; "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
