"""The statistics counters stay equal to the raw counts through any sequence of changes; check and rebuild mend them."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, update

from kjdms.extensions import db
from kjdms.local_time import local_today
from kjdms.models import Dossier, Person, Region, StatsCounter, StatsMember
from kjdms.services.statistics import AGE_LIMITS, _years_before, full_scope, region_tree
from kjdms.services.change_tracking import known_baselines
from kjdms.services.stats_counters import differences, expected_counters, stored_counters, with_baselines
from kjdms.services.stats_page import compute_statistics
from kjdms.services.working_copy import open_working_copy
from kjdms.vocabulary import EDUCATION_LEVELS, JOB_TYPES
from tests.conftest import empty_tables
from tests.stats.test_counts import STATES, age_band, brute_force, nonzero, specs
from tests.stats_data import REGION_CODES, Spec, insert


def counters_agree() -> None:
    with db.engine.connect() as connection:
        assert differences(connection) == []


# An operation: (which dossier, what to change, the new value).
operations = st.tuples(st.integers(0, 7), st.sampled_from(["state", "region", "education", "birth", "sex", "jobs",
                                                             "legacy", "to_confirm", "employer", "copy", "student"]),
                       st.integers(0, 10_000))


def apply(dossier: Dossier, what: str, n: int, regions: dict) -> None:
    """Change dossier (or its person) through the ORM and commit, as a service would."""
    if what == "state":
        dossier.state = STATES[n % len(STATES)]
    elif what == "region":
        dossier.region_id = regions.get(REGION_CODES[n % len(REGION_CODES)])
    elif what == "education":
        dossier.education = [*EDUCATION_LEVELS, None][n % (len(EDUCATION_LEVELS) + 1)]
    elif what == "birth":
        dossier.person.birth_date = date(1950, 1, 1) + timedelta(days=n * 2)
    elif what == "sex":
        dossier.person.sex = ["male", "female", None][n % 3]
    elif what == "jobs":
        dossier.job_types = sorted(JOB_TYPES)[n % 5: n % 5 + n % 3]
    elif what == "legacy":
        dossier.person.is_legacy = not dossier.person.is_legacy
    elif what == "to_confirm":
        dossier.to_confirm = not dossier.to_confirm
    elif what == "employer":
        dossier.employer_name = ["某单位", "", None][n % 3]
    elif what == "student":
        dossier.is_student = not dossier.is_student
    elif open_working_copy(db.session, dossier) is None:  # a working copy (one at a time): never counted itself
        copy = Dossier(person=dossier.person, baseline_id=dossier.id, state="draft", region_id=dossier.region_id,
                       qualification_level="senior", job_types=["cashier"])
        db.session.add(copy)
        db.session.commit()
        if n % 2:
            db.session.delete(copy)
    db.session.commit()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.lists(specs, min_size=1, max_size=8), steps=st.lists(operations, max_size=15),
       focus_code=st.sampled_from([None, "211300", "211302"]))
def test_after_any_changes_the_counters_equal_the_raw_counts(app, workflow, data, steps, focus_code):
    empty_tables()
    dossiers = [insert(spec) for spec in data]
    regions = {code: region_id for region_id, code in db.session.execute(select(Region.id, Region.code))}
    for index, what, n in steps:
        apply(dossiers[index % len(dossiers)], what, n, regions)
    counters_agree()
    # And the page that reads them agrees with the dossiers counted one by one.
    tree = region_tree(db.session)
    scope = full_scope(tree)
    stats = compute_statistics(db.session, workflow, scope, tree, regions.get(focus_code), local_today())
    expected = brute_force(workflow, stats.groups, local_today())
    for table in stats.workforce:
        assert nonzero(table.cells) == dict(expected[table.key.removeprefix("workforce_")]), table.title
    assert nonzero(next(t for t in stats.collection if t.key == "collection_state").cells) == dict(expected["state"])
    assert nonzero(next(t for t in stats.collection if t.key == "collection_legacy").cells) == dict(expected["legacy"])
    for row, column, name in (("region", "education", "region"), ("sex", "region", "sex"),
                              ("region", "job_type", "region"), ("has_employer", "region", "has_employer")):
        table = compute_statistics(db.session, workflow, scope, tree, regions.get(focus_code), local_today(),
                                   cross=(row, column)).crosstab
        margins = Counter()
        for (key, _), n in table.cells.items():
            margins[(key, "count")] += n
        if name != "region" or column != "job_type":  # a person holds several job types
            assert nonzero(margins) == dict(expected[name]), (row, column)


def test_age_bands_split_the_edge_month_by_the_birth_day(app, workflow):
    empty_tables()
    today = local_today()
    births = []
    for _, limit in AGE_LIMITS:
        edge = _years_before(today, limit)
        births += [edge - timedelta(days=1), edge, edge + timedelta(days=1), edge.replace(day=1)]
    for birth in births:
        insert(Spec(birth=birth))
    tree = region_tree(db.session)
    stats = compute_statistics(db.session, workflow, full_scope(tree), tree, None, today)
    bands = next(t for t in stats.workforce if t.key == "workforce_age_band")
    assert nonzero(bands.cells) == dict(Counter((age_band(b.isoformat(), today), "count") for b in births))


def test_check_names_a_wrong_counter_and_rebuild_mends_it(app, workflow):
    empty_tables()
    for spec in (Spec(), Spec(education="master"), Spec(state="submitted", region="210100")):
        insert(spec)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["stats", "check"]).exit_code == 0
    shuangta = db.session.scalar(select(Region.id).where(Region.code == "211302"))
    db.session.execute(update(StatsCounter).where(
        StatsCounter.region_id == shuangta, StatsCounter.state == "approved", StatsCounter.dimension == "education",
        StatsCounter.value == "master").values(count=StatsCounter.count + 5))
    # A dossier whose member row went missing (written past the hooks) is found too.
    db.session.execute(StatsMember.__table__.delete().where(StatsMember.dossier_id == db.session.scalar(
        select(Dossier.id).where(Dossier.region_id != shuangta))))
    db.session.commit()
    result = runner.invoke(args=["stats", "check"])
    assert result.exit_code == 1
    assert "维度 education，值 master：计数器 6，档案实际 1" in result.output
    assert "双塔区" in result.output
    result = runner.invoke(args=["stats", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "1 份档案" in result.output
    assert runner.invoke(args=["stats", "check"]).output.strip().endswith("计数器与档案一致")
    # Run again (as after an interruption): nothing left to move.
    assert "0 份档案" in runner.invoke(args=["stats", "rebuild"]).output
    counters_agree()


def test_a_purge_of_a_person_and_a_bulk_import_move_the_counters(app, workflow):
    empty_tables()
    dossier = insert(Spec(is_legacy=True, to_confirm=True, state="draft"))
    with db.engine.connect() as connection:
        assert stored_counters(connection)[(dossier.region_id, "draft", "legacy_to_confirm", "1")] == 1
    dossier.state, dossier.to_confirm = "purged", False
    dossier.person.birth_date = None
    db.session.commit()
    with db.engine.connect() as connection:
        stored = stored_counters(connection)
        assert stored == expected_counters(connection)
    assert stored[(dossier.region_id, "purged", "birth_month", "")] == 1
    assert (dossier.region_id, "draft", "all", "") not in stored


def test_a_working_copys_baseline_comes_from_the_session_when_held_and_is_read_otherwise(app, workflow):
    empty_tables()
    dossier = insert(Spec(state="approved"))
    copy = Dossier(person=dossier.person, baseline_id=dossier.id, state="draft", region_id=dossier.region_id)
    db.session.add(copy)
    db.session.commit()
    dossier_id, copy_id = dossier.id, copy.id
    statements = []

    def count(connection, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        held = known_baselines(db.session, [dossier_id, copy_id, 10**9])
        with db.engine.connect() as connection:
            assert held == {dossier_id: None, copy_id: dossier_id}  # not held: left to the read
            assert with_baselines(connection, [copy_id], held) == {copy_id, dossier_id}
            assert statements == []
            # Not held: read, to the same answer.
            assert with_baselines(connection, [copy_id], {}) == {copy_id, dossier_id}
            assert len(statements) == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # A copy deleted in the transaction is no stored row: the read decides, as before (it finds none).
    db.session.delete(copy)
    db.session.flush()
    assert known_baselines(db.session, [copy_id]) == {}
    db.session.commit()
    counters_agree()


@pytest.mark.postgres
def test_concurrent_changes_in_one_county_keep_the_counters_exact(app, workflow):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    empty_tables()
    ids = [insert(Spec(state="submitted")).id for _ in range(12)]
    person_ids = [db.session.get(Dossier, i).person_id for i in ids]
    db.session.remove()
    barrier = threading.Barrier(4)
    errors = []

    def work(part):
        with app.app_context():
            try:
                barrier.wait()
                for n, (dossier_id, person_id) in enumerate(zip(ids, person_ids)):
                    # Two threads on each dossier: one moves its state, the other its person.
                    if part % 2 == 0 and n % 2 == part // 2:
                        db.session.get(Dossier, dossier_id).state = "approved"
                    elif part % 2 == 1 and n % 2 == part // 2:
                        db.session.get(Person, person_id).sex = "male"
                    else:
                        continue
                    db.session.commit()
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(part,)) for part in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counters_agree()
    with db.engine.connect() as connection:
        stored = stored_counters(connection)
    shuangta = db.session.scalar(select(Region.id).where(Region.code == "211302"))
    assert stored[(shuangta, "approved", "sex", "male")] == 12


@pytest.mark.postgres
def test_two_transactions_counting_one_uncounted_dossier_count_it_once(app, workflow):
    """Neither finds a member row to lock: the second's insert waits for the first, then diffs against its row."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    from kjdms.services.stats_counters import recount
    empty_tables()
    dossier_id = insert(Spec(state="approved")).id
    db.session.remove()
    with db.engine.begin() as connection:
        connection.execute(StatsMember.__table__.delete())
        connection.execute(StatsCounter.__table__.delete())
    first = db.engine.connect()
    first.begin()
    assert recount(first, [dossier_id]) == 1
    errors, moved = [], []

    engine = db.engine

    def second():
        try:
            with engine.begin() as connection:
                moved.append(recount(connection, [dossier_id]))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    thread = threading.Thread(target=second)
    thread.start()
    with db.engine.connect() as watcher:
        # Commit the first only once the second waits on its uncommitted member row.
        while thread.is_alive() and not watcher.exec_driver_sql(
                "SELECT 1 FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'").first():
            thread.join(0.02)
    first.commit()
    first.close()
    thread.join()
    assert errors == [] and moved == [0]
    counters_agree()


def test_an_import_from_the_old_system_is_counted_in_its_transaction(app, workflow, tmp_path):
    from kjdms.services.legacy_import import import_legacy
    from tests.integration.test_legacy_import import row, write_csv

    empty_tables()
    import_legacy(db.session, write_csv(tmp_path / "old.csv", [row("刘洋"), row("陈静", 所在地区代码="211303")]))
    counters_agree()
    with db.engine.connect() as connection:
        stored = stored_counters(connection)
    waiting = {key[0]: n for key, n in stored.items() if key[1:] == ("draft", "legacy_to_confirm", "1")}
    assert sorted(waiting.values()) == [1, 1]
