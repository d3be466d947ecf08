"""The history's counters (weekly flow, reviewers, rejection items, late updates) equal the raw counts after any changes;
the two migrations that count count the same; check reads one snapshot."""
from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

import kjdms
from kjdms.extensions import db
from kjdms.local_time import local_today
from kjdms.models import Dossier, DossierRevision, Region, StatsCounter, StatsMember, WorkflowHistory, utcnow
from kjdms.services.compliance_stats import late_registrations_and_updates, rejection_reasons
from kjdms.services.revisions import snapshot_fields
from kjdms.services.statistics import (drill_down, flow_tables, full_scope, queue_waiting, region_tree, snapshot,
                                      workflow_names)
from kjdms.services.stats_page import compute_statistics
from kjdms.services.transaction import read_snapshot
from kjdms.vocabulary import REJECTABLE_ITEMS
from tests.conftest import empty_tables
from tests.helpers import staff
from tests.stats.test_counts import STATES
from tests.stats.test_stats_counters import counters_agree
from tests.stats_data import REGION_CODES, Spec, insert

ITEMS = sorted(REJECTABLE_ITEMS)[:4] + ["not_an_item"]
# Around the twelve weeks shown (84 days) and the one-month rule.
DAYS = st.sampled_from([0, 1, 6, 7, 30, 33, 82, 83, 84, 85, 120])
flagged = st.lists(st.sampled_from(ITEMS), max_size=3)
rejections = st.lists(st.tuples(DAYS, flagged), max_size=2)
changes = st.none() | st.tuples(st.integers(1, 60), st.none() | DAYS, st.none() | DAYS, rejections)
specs = st.builds(Spec, region=st.sampled_from(REGION_CODES), state=st.sampled_from(STATES),
                  is_legacy=st.booleans(), created_days_ago=st.integers(0, 120),
                  job_started_days_ago=st.none() | DAYS, changed_days_ago=st.none() | DAYS,
                  submitted_days_ago=st.none() | DAYS, rejections=rejections, change=changes)
# (which dossier, what to do, a number choosing how)
operations = st.tuples(st.integers(0, 5), st.sampled_from(["history", "region", "state", "drop_copy", "revision",
                                                             "copy_date", "drop_history"]), st.integers(0, 1000))
ACTIONS = ("submit", "approve", "reject", "retract", "archive")


def apply(dossier: Dossier, what: str, n: int, regions: dict, actors: list) -> None:
    """Change dossier's history, copies or revisions through the ORM and commit, as a service or a repair would."""
    copy = db.session.scalar(select(Dossier).where(Dossier.baseline_id == dossier.id))
    target = copy if copy is not None and n % 3 == 0 else dossier
    if what == "history":
        action = ACTIONS[n % len(ACTIONS)]
        actor = actors[n % len(actors)] if action != "submit" else None
        db.session.add(WorkflowHistory(dossier_id=target.id, action=action, from_state="submitted", to_state="approved",
                                       actor_id=actor.id if actor else None,
                                       actor_role="reviewer" if actor else "owner",
                                       flagged=[ITEMS[n % len(ITEMS)]] if action == "reject" and n % 2 else [],
                                       created_at=utcnow() - timedelta(days=n % 100, hours=n % 24)))
    elif what == "region":
        dossier.region_id = regions.get(REGION_CODES[n % len(REGION_CODES)])
    elif what == "state":
        dossier.state = STATES[n % len(STATES)]
    elif what == "drop_copy" and copy is not None:
        db.session.delete(copy)
    elif what == "revision":
        db.session.add(DossierRevision(dossier_id=dossier.id, recorded_at=utcnow() - timedelta(days=n % 90),
                                       state=dossier.state, fields={**snapshot_fields(dossier),
                                                                    "information_changed_on": None},
                                       attachments={}, is_legacy=False, to_confirm=False))
    elif what == "copy_date" and copy is not None:
        copy.information_changed_on = local_today() - timedelta(days=n % 100)
    elif what == "drop_history":
        row = db.session.scalar(select(WorkflowHistory).where(WorkflowHistory.dossier_id == target.id)
                                .order_by(WorkflowHistory.id).limit(1))
        if row is not None:
            db.session.delete(row)
    db.session.commit()


def scanned_panels(workflow, focus):
    """Return the history panels of today computed by scanning the history (the raw counts), by key."""
    tree = region_tree(db.session)
    groups = drill_down(tree, full_scope(tree), focus)
    names, day = workflow_names(workflow), local_today()
    snap = snapshot(db.session, day)
    weekly, reviewers = flow_tables(db.session, snap, groups, day, names)
    return {table.key: table for table in (weekly, reviewers, queue_waiting(db.session, snap, groups, day, names),
                                           rejection_reasons(db.session, snap, groups, day, names),
                                           late_registrations_and_updates(db.session, snap, groups, day, names))}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.lists(specs, min_size=1, max_size=6), steps=st.lists(operations, max_size=12),
       focus_code=st.sampled_from([None, "211300", "211302"]))
def test_the_history_counters_equal_the_raw_counts_after_any_changes(app, workflow, data, steps, focus_code):
    empty_tables()
    actors = [staff(f"审核员{i}", "reviewer", "211302") for i in range(2)]
    dossiers = [insert(spec) for spec in data]
    regions = {code: region_id for region_id, code in db.session.execute(select(Region.id, Region.code))}
    for index, what, n in steps:
        apply(dossiers[index % len(dossiers)], what, n, regions, actors)
    counters_agree()
    focus = regions.get(focus_code)
    tree = region_tree(db.session)
    counted = {table.key: table for table in compute_statistics(db.session, workflow, full_scope(tree), tree, focus,
                                                                local_today()).collection}
    for key, scanned in scanned_panels(workflow, focus).items():
        assert counted[key].cells == scanned.cells, key
        assert counted[key].rows == scanned.rows or key == "collection_reviewers", key
    # The reviewers' order among equals is free; their counts are not.
    assert sorted(counted["collection_reviewers"].rows) == sorted(scanned_panels(workflow, focus)[
        "collection_reviewers"].rows)


def migration(name: str):
    """Return the module of a migration file (their names start with a digit)."""
    path = Path(kjdms.__file__).parent / "migrations" / "versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_frozen_counts_of_migrations_0018_and_0019_equal_todays_counters(app, workflow):
    empty_tables()
    reviewer = staff("审核员", "reviewer", "211302")
    for spec in (Spec(submitted_days_ago=10, rejections=[(5, ["phone"]), (3, [])], job_started_days_ago=100),
                 Spec(state="submitted", region="210100", is_legacy=True, to_confirm=True, submitted_days_ago=2),
                 Spec(changed_days_ago=70, change=(30, 70, 1, [(0, ["employer_name"])])),
                 Spec(region=None, change=(9, 50, 2, [])), Spec(state="purged", bulk=True)):
        insert(spec)
    # A reviewer's name on the rejections, written past the hooks: the rebuild counts it.
    db.session.execute(update(WorkflowHistory).where(WorkflowHistory.action == "reject").values(actor_id=reviewer.id))
    db.session.commit()
    assert app.test_cli_runner().invoke(args=["stats", "rebuild"]).exit_code == 0
    with db.engine.connect() as connection:
        before = connection.execute(select(StatsCounter.__table__)).all()
    assert any(row.dimension == "flow" for row in before)
    with db.engine.begin() as connection:
        connection.execute(delete(StatsCounter.__table__))
        connection.execute(delete(StatsMember.__table__))
        migration("0018_stats_counters").count_all(connection)
        migration("0019_stats_history_counters").add_history_keys(connection)
    counters_agree()
    with db.engine.connect() as connection:
        assert sorted(connection.execute(select(StatsCounter.__table__).where(StatsCounter.count != 0)).all()) == \
            sorted(row for row in before if row.count)


def test_check_names_a_wrong_history_counter_and_rebuild_mends_it(app, workflow):
    empty_tables()
    insert(Spec(submitted_days_ago=3, rejections=[(2, ["phone"])]))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["stats", "check"]).exit_code == 0
    db.session.execute(update(StatsCounter).where(StatsCounter.dimension == "items",
                                                  StatsCounter.value == "reject|phone").values(count=7))
    db.session.commit()
    result = runner.invoke(args=["stats", "check"])
    assert result.exit_code == 1
    assert "维度 items，值 reject|phone：计数器 7，档案实际 1" in result.output
    assert runner.invoke(args=["stats", "rebuild"]).exit_code == 0
    assert runner.invoke(args=["stats", "check"]).output.strip().endswith("计数器与档案一致")


def test_a_read_snapshot_does_not_see_a_commit_made_while_it_reads(app):
    empty_tables()
    insert(Spec())
    with read_snapshot(db.engine) as connection:
        first = connection.scalar(select(func.count()).select_from(Dossier))
        insert(Spec())  # committed by the application's own session meanwhile
        assert connection.scalar(select(func.count()).select_from(Dossier)) == first
    with db.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Dossier)) == first + 1
