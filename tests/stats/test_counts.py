"""Every count on the statistics page equals a brute-force count in Python, for any region and day; scope never leaks."""
from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.local_time import local_date, local_today
from kjdms.models import Dossier, Region, WorkflowHistory, utcnow
from kjdms.services.revisions import dossier_as_of
from kjdms.services.statistics import (AGE_LIMITS, UNKNOWN, WORKFORCE_DIMENSIONS, cross_tab, drill_down, full_scope,
                                      region_tree, statistics_scope, workflow_names)
from kjdms.services.stats_page import compute_statistics
from kjdms.vocabulary import EDUCATION_LEVELS, JOB_TYPES, QUALIFICATION_LEVELS, SCOPE_CATEGORIES
from tests.conftest import empty_tables
from tests.helpers import staff
from tests.stats_data import REGION_CODES, Spec, insert

STATES = ("draft", "submitted", "approved", "rejected", "archived", "purged")
LEVELS = tuple(QUALIFICATION_LEVELS)

revision = st.tuples(st.integers(1, 60), st.sampled_from(STATES), st.sampled_from(REGION_CODES), st.sampled_from(LEVELS),
                     st.booleans())
specs = st.builds(
    Spec, region=st.sampled_from(REGION_CODES), state=st.sampled_from(STATES),
    sex=st.sampled_from(["male", "female", None]), birth=st.dates(date(1950, 1, 1), date(2004, 12, 31)),
    education=st.sampled_from([*EDUCATION_LEVELS, None]), scope_category=st.sampled_from([*SCOPE_CATEGORIES, None]),
    qualification_level=st.sampled_from(LEVELS),
    job_types=st.lists(st.sampled_from(sorted(JOB_TYPES)), max_size=3, unique=True),
    is_student=st.booleans(), employer_name=st.sampled_from(["某单位", "", None]), is_legacy=st.booleans(),
    to_confirm=st.booleans(), created_days_ago=st.integers(0, 70),
    revisions=st.lists(revision, max_size=3).map(lambda rows: sorted(rows, key=lambda row: -row[0])), bulk=st.booleans())


def age_band(birth: str | None, day: date) -> str | None:
    """Return the age band of an ISO birth date at day, counted the long way."""
    if not birth:
        return None
    born = date.fromisoformat(birth)
    age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    return next((band for band, limit in AGE_LIMITS if age < limit), "60_over")


def brute_force(workflow, groups, day):
    """Return dimension → Counter of (row, column) from each dossier's dossier_as_of, one by one."""
    names = workflow_names(workflow)
    region_ids = {code: region_id for region_id, code in db.session.execute(select(Region.id, Region.code))}
    counts = {name: Counter() for name in WORKFORCE_DIMENSIONS}
    counts["state"], counts["legacy"] = Counter(), Counter()
    for dossier in db.session.scalars(select(Dossier).where(Dossier.baseline_id.is_(None))):
        then = dossier_as_of(db.session, dossier, day)
        if not then.found:
            continue
        fields = then.fields
        key = groups.key_of(region_ids.get(fields.get("region")) if fields.get("region") else None)
        if key is None:
            continue
        counts["state"][(then.state, "count")] += 1
        # The old-system flags of that day: the revision's, or today's for a dossier never revised.
        flags = then.revision or dossier
        is_legacy = then.revision.is_legacy if then.revision else dossier.person.is_legacy
        if is_legacy:
            status = "purged" if then.state == names.purged else "to_confirm" if flags.to_confirm else "confirmed"
            counts["legacy"][(status, "count")] += 1
        if then.state != names.approved:
            continue
        values = {
            "region": key, "scope_category": fields["scope_category"], "education": fields["education"],
            "qualification_level": fields["qualification_level"], "sex": fields["sex"],
            "age_band": age_band(fields["birth_date"], day), "is_student": "1" if fields["is_student"] else "0",
            "has_employer": "1" if fields["employer_name"] else "0",
            "origin": "legacy" if is_legacy else "new",
        }
        for name, value in values.items():
            counts[name][(value if value is not None else UNKNOWN, "count")] += 1
        for job in fields["job_types"]:
            counts["job_type"][(job, "count")] += 1
    return counts


def nonzero(cells):
    return {key: n for key, n in cells.items() if n}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.lists(specs, min_size=1, max_size=12), days_back=st.integers(0, 70),
       focus_code=st.sampled_from([None, "210000", "211300", "211302", "210200"]))
def test_every_count_equals_a_brute_force_count(app, workflow, data, days_back, focus_code):
    empty_tables()
    for spec in data:
        insert(spec)
    tree = region_tree(db.session)
    scope = full_scope(tree)
    focus = db.session.scalar(select(Region.id).where(Region.code == focus_code)) if focus_code else None
    day = local_today() - timedelta(days=days_back)
    stats = compute_statistics(db.session, workflow, scope, tree, focus, day)
    expected = brute_force(workflow, stats.groups, day)
    for table in stats.workforce:
        name = table.key.removeprefix("workforce_")
        assert nonzero(table.cells) == dict(expected[name]), table.title
    by_state = next(t for t in stats.collection if t.key == "collection_state")
    assert nonzero(by_state.cells) == dict(expected["state"])
    legacy = next(t for t in stats.collection if t.key == "collection_legacy")
    assert nonzero(legacy.cells) == dict(expected["legacy"])
    # A cross-tab's margins are the single counts.
    table = cross_tab(db.session, workflow, scope, tree, focus, day, "region", "qualification_level")
    margins = Counter()
    for (row, _), n in table.cells.items():
        margins[(row, "count")] += n
    assert nonzero(margins) == dict(expected["region"])
    jobs = cross_tab(db.session, workflow, scope, tree, focus, day, "job_type", "sex")
    job_margins = Counter()
    for (row, _), n in jobs.cells.items():
        job_margins[(row, "count")] += n
    assert nonzero(job_margins) == dict(expected["job_type"])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.lists(specs, min_size=1, max_size=10), days_back=st.integers(0, 40),
       asked=st.sampled_from([None, "210000", "211300", "211303", "210100", "211302"]))
def test_a_county_reviewer_never_sees_a_count_from_elsewhere(app, workflow, data, days_back, asked):
    empty_tables()
    user = staff("reviewer_shuangta_stats", "reviewer", "211302")
    for spec in data:
        insert(spec)
    tree = region_tree(db.session)
    scope = statistics_scope(tree, user)
    shuangta = db.session.scalar(select(Region.id).where(Region.code == "211302"))
    assert scope.regions == {shuangta}
    focus = db.session.scalar(select(Region.id).where(Region.code == asked)) if asked else None
    day = local_today() - timedelta(days=days_back)
    stats = compute_statistics(db.session, workflow, scope, tree, focus, day)
    assert stats.groups.keys == (f"r{shuangta}",)
    expected = brute_force(workflow, drill_down(tree, scope, shuangta), day)
    for table in stats.workforce:
        assert nonzero(table.cells) == dict(expected[table.key.removeprefix("workforce_")])
    for table in stats.collection + stats.credit:
        if table.row_title == "地区":
            assert {row for row, _ in table.rows} <= {f"r{shuangta}"}


def test_a_value_outside_the_vocabulary_is_counted_under_its_own_code(app, workflow):
    # Data from before a vocabulary change: the one-scan sums cannot name it, its dimension counts it by GROUP BY.
    empty_tables()
    insert(Spec(education="technical_secondary_old"))
    insert(Spec(education="bachelor"))
    insert(Spec(education=None))
    tree = region_tree(db.session)
    stats = compute_statistics(db.session, workflow, full_scope(tree), tree, None)
    table = next(t for t in stats.workforce if t.key == "workforce_education")
    assert nonzero(table.cells) == {("technical_secondary_old", "count"): 1, ("bachelor", "count"): 1,
                                    (UNKNOWN, "count"): 1}
    assert [code for code, _ in table.rows][-2:] == ["technical_secondary_old", UNKNOWN]
    sexes = next(t for t in stats.workforce if t.key == "workforce_sex")
    assert nonzero(sexes.cells) == {("female", "count"): 3}


def test_the_queue_shows_how_many_wait_and_the_median_and_90th_percentile_of_their_waiting_days(app, workflow):
    empty_tables()
    # Three waiting in 双塔区 since 1, 5 and 9 days; one approved there, one waiting elsewhere: neither counts here.
    waiting = [insert(Spec(state="submitted", created_days_ago=20)) for _ in range(3)]
    others = [insert(Spec(state="approved", created_days_ago=20)), insert(Spec(state="submitted", region="210100"))]
    now = utcnow()
    for dossier, days in zip([*waiting, *others], (1, 5, 9, 2, 3)):
        # An earlier stay in the queue, rejected since: the wait counts from the latest entry.
        db.session.add(WorkflowHistory(dossier_id=dossier.id, action="submit", from_state="draft", to_state="submitted",
                                       actor_role="applicant", created_at=now - timedelta(days=days + 10)))
        db.session.add(WorkflowHistory(dossier_id=dossier.id, action="submit", from_state="rejected",
                                       to_state="submitted", actor_role="applicant", created_at=now - timedelta(days=days)))
    db.session.commit()
    tree = region_tree(db.session)
    shuangta = db.session.scalar(select(Region.id).where(Region.code == "211302"))
    stats = compute_statistics(db.session, workflow, full_scope(tree), tree, shuangta)
    queue = next(t for t in stats.collection if t.key == "collection_queue")
    # Nearest rank: the median of 1, 5, 9 is the 2nd shortest wait, the 90th percentile the 3rd.
    assert nonzero(queue.cells) == {(f"r{shuangta}", "waiting"): 3, (f"r{shuangta}", "p50"): 5.0,
                                    (f"r{shuangta}", "p90"): 9.0}


def test_the_weekly_flow_and_the_reviewers_count_each_action_once_within_the_weeks_shown(app, workflow):
    empty_tables()
    first, second = staff("reviewer_weekly_a", "reviewer", "211302"), staff("reviewer_weekly_b", "reviewer", "211300")
    here, elsewhere = insert(Spec()), insert(Spec(region="210100"))
    now = utcnow()
    rows = [(here, "submit", None, 1), (here, "approve", first, 1), (here, "approve", first, 8),
            (here, "reject", second, 1), (elsewhere, "approve", first, 1), (here, "approve", second, 7 * 13)]
    for dossier, action, actor, days in rows:
        db.session.add(WorkflowHistory(dossier_id=dossier.id, action=action, from_state="submitted",
                                       to_state="approved", actor_id=actor.id if actor else None,
                                       actor_role="reviewer" if actor else "applicant",
                                       created_at=now - timedelta(days=days)))
    db.session.commit()
    tree = region_tree(db.session)
    chaoyang = db.session.scalar(select(Region.id).where(Region.code == "211300"))
    stats = compute_statistics(db.session, workflow, full_scope(tree), tree, chaoyang)
    weekly = next(t for t in stats.collection if t.key == "collection_weekly")
    reviewers = next(t for t in stats.collection if t.key == "collection_reviewers")

    def monday(days):
        day = local_date(now - timedelta(days=days))
        return (day - timedelta(days=day.weekday())).isoformat()
    expected = Counter({(monday(1), "submit"): 1, (monday(1), "approve"): 1, (monday(8), "approve"): 1,
                        (monday(1), "reject"): 1})
    assert nonzero(weekly.cells) == dict(expected)
    names = {first.id: first.display_name or first.username, second.id: second.display_name or second.username}
    assert nonzero(reviewers.cells) == {(names[first.id], "approve"): 2, (names[second.id], "reject"): 1}
    assert [who for who, _ in reviewers.rows] == [names[first.id], names[second.id]]
