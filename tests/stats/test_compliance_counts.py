"""Rejection reasons by item and late registrations and updates equal a brute-force count, for any region and day."""
from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import literal, select

from kjdms.extensions import db
from kjdms.local_time import end_of_day, local_date
from kjdms.models import Dossier, DossierRevision, Region, WorkflowHistory, as_utc
from kjdms.services.compliance_stats import NO_ITEM, more_than_a_month_after
from kjdms.services.revisions import dossier_as_of
from kjdms.services.statistics import drill_down, full_scope, region_tree, statistics_scope
from kjdms.services.stats_page import compute_statistics
from kjdms.services.time_rules import one_month_after
from kjdms.vocabulary import REJECTABLE_ITEMS
from tests.conftest import empty_tables
from tests.helpers import staff
from tests.stats_data import REGION_CODES, Spec, fresh_data, insert

STATES = ("draft", "submitted", "approved", "rejected", "archived", "purged")
# Few distinct days, so that a copy often repeats its baseline's change date and month ends are crossed.
DAYS = st.integers(0, 75)
rejection = st.tuples(DAYS, st.lists(st.sampled_from(sorted(REJECTABLE_ITEMS)), max_size=3, unique=True))
change = st.tuples(DAYS, st.one_of(st.none(), st.sampled_from([10, 40, 41, 70])), st.one_of(st.none(), DAYS),
                   st.lists(rejection, max_size=2))
revision = st.tuples(st.integers(1, 60), st.sampled_from(STATES), st.sampled_from(REGION_CODES), st.just("junior"))
specs = st.builds(
    Spec, region=st.sampled_from(REGION_CODES), state=st.sampled_from(STATES), is_legacy=st.booleans(),
    created_days_ago=st.integers(0, 70), bulk=st.booleans(),
    revisions=st.lists(revision, max_size=2).map(lambda rows: sorted(rows, key=lambda row: -row[0])),
    job_started_days_ago=st.one_of(st.none(), st.integers(0, 150)),
    changed_days_ago=st.one_of(st.none(), st.sampled_from([10, 40, 41, 70])),
    submitted_days_ago=st.one_of(st.none(), DAYS), rejections=st.lists(rejection, max_size=3),
    change=st.one_of(st.none(), change))


def brute_force(groups, day):
    """Return (rejections, late) Counters of (row, column), dossier by dossier with dossier_as_of."""
    cutoff = end_of_day(day)
    region_ids = {code: region_id for region_id, code in db.session.execute(select(Region.id, Region.code))}

    def key_then(dossier):
        then = dossier_as_of(db.session, dossier, day)
        if not then.found:
            return None
        return groups.key_of(region_ids.get(then.fields["region"]) if then.fields.get("region") else None)

    rejections, late = Counter(), Counter()
    for row in db.session.scalars(select(WorkflowHistory).where(WorkflowHistory.action == "reject")):
        if as_utc(row.created_at) >= cutoff:
            continue
        dossier = db.session.get(Dossier, row.dossier_id)
        key = key_then(dossier.baseline or dossier)
        if key is not None:
            for code in row.flagged or [NO_ITEM]:
                rejections[(code, key)] += 1
    for dossier in db.session.scalars(select(Dossier)):
        if dossier.baseline is None:
            key = key_then(dossier)
            if key is None or dossier.person.is_legacy or dossier.job_started_on is None:
                continue
            late[(key, "registered")] += 1
            late[(key, "late_registration")] += local_date(dossier.created_at) > one_month_after(dossier.job_started_on)
            continue
        submits = [as_utc(r.created_at) for r in dossier.history if r.action == "submit" and as_utc(r.created_at) < cutoff]
        key = key_then(dossier.baseline)
        if not submits or key is None or dossier.information_changed_on is None:
            continue
        before = [r for r in db.session.scalars(select(DossierRevision).where(
            DossierRevision.dossier_id == dossier.baseline_id)) if as_utc(r.recorded_at) <= as_utc(dossier.created_at)]
        prior = max(before, key=lambda r: (as_utc(r.recorded_at), r.id)).fields["information_changed_on"] if before else None
        if prior == dossier.information_changed_on.isoformat():
            continue
        late[(key, "updates")] += 1
        late[(key, "late_update")] += local_date(min(submits)) > one_month_after(dossier.information_changed_on)
    return rejections, late


def nonzero(cells):
    return {key: n for key, n in cells.items() if n}


def panels(stats):
    tables = {table.key: table for table in stats.collection}
    return tables["collection_rejection_items"], tables["collection_late"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.lists(specs, min_size=1, max_size=10), days_back=st.integers(0, 70),
       focus_code=st.sampled_from([None, "210000", "211300", "211302", "210200"]))
def test_every_rule_count_equals_a_brute_force_count(app, workflow, data, days_back, focus_code):
    tree, focus, day = fresh_data(data, focus_code, days_back)
    stats = compute_statistics(db.session, workflow, full_scope(tree), tree, focus, day)
    rejections, late = panels(stats)
    expected_rejections, expected_late = brute_force(stats.groups, day)
    assert nonzero(rejections.cells) == dict(expected_rejections)
    assert nonzero(late.cells) == nonzero(expected_late)
    assert [key for key, _ in late.rows] == [key for key, _ in rejections.columns] == list(stats.groups.keys)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.lists(specs, min_size=1, max_size=8), days_back=st.integers(0, 40),
       asked=st.sampled_from([None, "210000", "211300", "211303"]))
def test_a_county_reviewer_sees_only_its_own_rejections_and_late_counts(app, workflow, data, days_back, asked):
    tree, focus, day = fresh_data(data, asked, days_back)
    scope = statistics_scope(tree, staff("reviewer_shuangta_rules", "reviewer", "211302"))
    shuangta = db.session.scalar(select(Region.id).where(Region.code == "211302"))
    rejections, late = panels(compute_statistics(db.session, workflow, scope, tree, focus, day))
    assert [key for key, _ in rejections.columns] == [key for key, _ in late.rows] == [f"r{shuangta}"]
    expected_rejections, expected_late = brute_force(drill_down(tree, scope, shuangta), day)
    assert nonzero(rejections.cells) == dict(expected_rejections)
    assert nonzero(late.cells) == nonzero(expected_late)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(earlier=st.dates(date(2019, 1, 1), date(2021, 12, 31)), gap=st.integers(0, 70))
def test_the_sql_month_rule_is_time_rules_one_month_after(app, earlier, gap):
    """Month ends included: 1月31日 → 2月28日 (29日 in a leap year), as the reviewer's flags count."""
    later = earlier + timedelta(days=gap)
    late = db.session.scalar(select(more_than_a_month_after(literal(later.isoformat()), literal(earlier.isoformat()))))
    assert bool(late) == (later > one_month_after(earlier))


def test_a_worked_example(app, workflow):
    """Two registrations (one late), three changes (one late, one in time, one repeating the old date), three rejections."""
    empty_tables()
    insert(Spec(job_started_days_ago=100, created_days_ago=20,
                rejections=[(5, ["phone", "attachment:education_certificate"]), (3, [])]))
    insert(Spec(job_started_days_ago=25, created_days_ago=20, changed_days_ago=70, revisions=[(60, "approved", "211302", "junior")],
                change=(50, 70, 45, [(44, ["employer_name"])])))
    insert(Spec(is_legacy=True, job_started_days_ago=400, changed_days_ago=10, change=(9, 80, 8, [])))
    insert(Spec(region="211303", changed_days_ago=10, change=(9, 12, 2, [])))
    tree = region_tree(db.session)
    chaoyang = db.session.scalar(select(Region.id).where(Region.code == "211300"))
    shuangta, longcheng = (f"r{db.session.scalar(select(Region.id).where(Region.code == code))}"
                           for code in ("211302", "211303"))
    rejections, late = panels(compute_statistics(db.session, workflow, full_scope(tree), tree, chaoyang))
    assert nonzero(rejections.cells) == {("phone", shuangta): 1, ("attachment:education_certificate", shuangta): 1,
                                         (NO_ITEM, shuangta): 1, ("employer_name", shuangta): 1}
    assert nonzero(late.cells) == {(shuangta, "registered"): 2, (shuangta, "late_registration"): 1,
                                   (shuangta, "updates"): 1, (shuangta, "late_update"): 1,
                                   (longcheng, "updates"): 1}
