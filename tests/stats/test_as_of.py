"""A past as-of day counts the old-system flags of that day, written into each revision by the real services."""
from __future__ import annotations

from datetime import date

from sqlalchemy import select

from kjdms.extensions import db
from kjdms.models import DossierRevision
from kjdms.services.dossiers import register_person
from kjdms.services.lifecycle import fire_transition
from kjdms.services.statistics import full_scope, region_tree
from kjdms.services.stats_page import compute_statistics, materialized_snapshot
from tests.helpers import complete_fields, make_id_number, upload_required, writer_turn_is_free
from tests.integration.test_revisions import clock  # noqa: F401  (the frozen clock fixture)


def counts(workflow, day, key):
    """Return the nonzero cells of one table of the province's statistics at the end of day."""
    tree = region_tree(db.session)
    stats = compute_statistics(db.session, workflow, full_scope(tree), tree, None, day)
    table = next(t for t in stats.tables if t.key == key)
    return {cell: n for cell, n in table.cells.items() if n}


def legacy_person_ready_to_submit(workflow, blobs, name, sequence):
    """Register an old-system person still to confirm, with every required document uploaded; return (dossier, owner)."""
    dossier = register_person(db.session, name=name, id_number=make_id_number(sequence=sequence), is_legacy=True,
                              to_confirm=True, **complete_fields())
    owner = dossier.person.user
    upload_required(workflow, blobs, dossier, owner)
    return dossier, owner


def test_a_legacy_person_counts_as_to_confirm_before_confirming_and_confirmed_after(app, workflow, blobs, people,
                                                                                    clock):
    clock("2020-05-04 09:00")
    dossier, owner = legacy_person_ready_to_submit(workflow, blobs, "孙丽", 7)
    clock("2020-05-06 10:00")
    fire_transition(db.session, workflow, dossier, "submit", owner)  # the person's confirmation (二（三）)
    clock("2020-05-08 10:00")
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"], "属实")

    flags = db.session.execute(select(DossierRevision.recorded_at, DossierRevision.to_confirm, DossierRevision.is_legacy)
                               .where(DossierRevision.dossier_id == dossier.id)
                               .order_by(DossierRevision.id)).all()
    assert [to_confirm for _, to_confirm, _ in flags][0] is True and flags[-1][1] is False
    assert all(is_legacy for _, _, is_legacy in flags)

    # people["dossier"] is a new registrant's draft of the same days: it never counts as legacy.
    assert counts(workflow, date(2020, 5, 3), "collection_legacy") == {}
    assert counts(workflow, date(2020, 5, 5), "collection_legacy") == {("to_confirm", "count"): 1}
    assert counts(workflow, date(2020, 5, 6), "collection_legacy") == {("confirmed", "count"): 1}
    assert counts(workflow, date(2020, 5, 7), "workforce_origin") == {}
    assert counts(workflow, date(2020, 5, 8), "workforce_origin") == {("legacy", "count"): 1}


def test_a_retract_before_approval_makes_the_person_to_confirm_again_from_that_day(app, workflow, blobs, people,
                                                                                   clock):
    clock("2020-06-01 09:00")
    dossier, owner = legacy_person_ready_to_submit(workflow, blobs, "赵六", 8)
    clock("2020-06-02 09:00")
    fire_transition(db.session, workflow, dossier, "submit", owner)
    clock("2020-06-03 09:00")
    fire_transition(db.session, workflow, dossier, "retract", owner)
    assert counts(workflow, date(2020, 6, 2), "collection_legacy") == {("confirmed", "count"): 1}
    assert counts(workflow, date(2020, 6, 3), "collection_legacy") == {("to_confirm", "count"): 1}


def test_a_past_days_statistics_keep_no_writer_waiting(app, workflow, people):
    # The snapshot is written into a temporary table: on SQLite that must not take the writers' turn, which the
    # request would otherwise hold (and every upload and transition wait for) until its panels are done.
    tree = region_tree(db.session)
    with materialized_snapshot(db.session, date(2020, 5, 5)):
        if db.engine.dialect.name == "sqlite":
            assert writer_turn_is_free(db.engine.url.database)
        compute_statistics(db.session, workflow, full_scope(tree), tree, None, date(2020, 5, 5))
    db.session.rollback()
