"""Time the rule panels of /stats/ (rejection reasons by item, late registrations and updates) on loaded data."""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select, text  # noqa: E402

from bench.stats import load, timed  # noqa: E402
from kjdms import create_app  # noqa: E402
from kjdms.backends import get_workflow  # noqa: E402
from kjdms.config import Config  # noqa: E402
from kjdms.extensions import db  # noqa: E402
from kjdms.local_time import local_today  # noqa: E402
from kjdms.models import Dossier, Region, WorkflowHistory, utcnow  # noqa: E402
from kjdms.schema import upgrade_schema  # noqa: E402
from kjdms.services.compliance_stats import compliance_tables  # noqa: E402
from kjdms.services.reference import load_regions  # noqa: E402
from kjdms.services.statistics import drill_down, full_scope, region_tree, snapshot, workflow_names  # noqa: E402
from kjdms.services.stats_page import compute_statistics  # noqa: E402
from kjdms.vocabulary import REJECTABLE_ITEMS  # noqa: E402


def add_rule_data(n: int, rejected_share: float) -> int:
    """Give every dossier a job start date, and a share of them a submission and a rejection with flagged items."""
    rng = random.Random(11)
    today = local_today()
    db.session.execute(text("UPDATE dossiers SET job_started_on = :day"), {"day": today - timedelta(days=400)})
    now, codes, rows = utcnow(), sorted(REJECTABLE_ITEMS), []
    for dossier_id in range(1, n + 1):
        if rng.random() < rejected_share:
            at = now - timedelta(days=rng.randrange(200))
            rows.append({"dossier_id": dossier_id, "action": "submit", "from_state": "draft", "to_state": "submitted",
                         "actor_role": "owner", "flagged": [], "created_at": at})
            rows.append({"dossier_id": dossier_id, "action": "reject", "from_state": "submitted",
                         "to_state": "rejected", "actor_role": "reviewer", "comment": "不符",
                         "flagged": rng.sample(codes, rng.randrange(3)), "created_at": at + timedelta(days=1)})
    for start in range(0, len(rows), 10000):
        db.session.execute(insert(WorkflowHistory), rows[start:start + 10000])
    db.session.commit()
    return len(rows) // 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dossiers", type=int, default=20_000)
    parser.add_argument("--rejected", type=float, default=0.2, help="share of dossiers with a rejection")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (an empty database); SQLite by default")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kjdms-bench-rules-"))
    app = create_app(Config(environ={}, STORAGE_DIR=folder, SECRET_KEY="bench", ID_HASH_KEY="bench",
                            DATABASE_URL=args.database_url or f"sqlite:///{folder / 'kjdms.sqlite3'}"))
    with app.app_context():
        upgrade_schema()
        load_regions(db.session)
        load(args.dossiers)
        rejections = add_rule_data(args.dossiers, args.rejected)
        print(f"{args.dossiers} dossiers, {rejections} rejections, {db.session.query(Dossier).count()} rows")
        tree, workflow = region_tree(db.session), get_workflow()
        scope, names = full_scope(tree), workflow_names(workflow)
        county = db.session.scalar(select(Region.id).where(Region.code == "211302"))
        for label, focus in (("province", None), ("county 211302", county)):
            for day in (local_today(), local_today() - timedelta(days=30)):
                groups = drill_down(tree, scope, focus)
                rules = timed(lambda: compliance_tables(db.session, snapshot(db.session, day), groups, day, names),
                              args.repeat)
                page = timed(lambda: compute_statistics(db.session, workflow, scope, tree, focus, day), args.repeat)
                print(f"{label}, as of {day}: rule panels p50 {rules * 1000:.0f} ms of the page's "
                      f"{page * 1000:.0f} ms ({rules / page:.0%})")


if __name__ == "__main__":
    main()
