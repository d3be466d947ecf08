"""services/change_tracking.py: one commit queues the index outbox rows and writes the revisions, a rollback neither."""
import json

import pytest
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from kjdms.backends import get_blob_store, get_workflow
from kjdms.extensions import db
from kjdms.models import Dossier, DossierRevision, IndexOutbox, User, WorkflowHistory
from kjdms.services.change_tracking import touched_dossier_ids
from kjdms.samples import sample_pdf
from kjdms.services.attachments import add_attachment_version
from kjdms.services.lifecycle import ConflictError, fire_transition
from kjdms.services.revisions import snapshot_attachments, snapshot_fields
from tests.helpers import applicant, upload_required


def counts(dossier_id):
    return (db.session.scalar(select(func.count()).select_from(IndexOutbox).where(IndexOutbox.dossier_id == dossier_id)),
            db.session.scalar(select(func.count()).select_from(DossierRevision)
                              .where(DossierRevision.dossier_id == dossier_id)))


def test_a_commit_queues_one_outbox_row_and_one_revision_per_flush_and_commit(app):
    dossier, _ = applicant()
    before = counts(dossier.id)
    dossier.phone = "13900000001"
    db.session.flush()
    dossier.person.name = "张小伟"  # a second flush in the same transaction: one more row, still one revision
    db.session.commit()
    outbox, revisions = counts(dossier.id)
    assert (outbox - before[0], revisions - before[1]) == (2, 1)


def test_a_rollback_leaves_neither_outbox_rows_nor_a_revision(app):
    dossier, _ = applicant()
    before = counts(dossier.id)
    dossier.phone = "13900000002"
    db.session.flush()
    db.session.rollback()
    db.session.commit()  # an empty commit after the rollback writes nothing left over from it
    assert counts(dossier.id) == before


def test_the_person_touches_each_of_their_dossiers(app):
    dossier, _ = applicant()
    assert touched_dossier_ids(dossier.person) == {dossier.id}


def test_a_transition_queues_one_outbox_row_and_one_revision_and_a_stale_one_none(app):
    # On PostgreSQL the outbox row is written by the statement that moves the state (services/transition_rows.py).
    workflow, blobs = get_workflow(), get_blob_store()
    dossier, owner = applicant()
    upload_required(workflow, blobs, dossier, owner)
    before = counts(dossier.id)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    assert tuple(now - then for now, then in zip(counts(dossier.id), before)) == (1, 1)
    queued = db.session.execute(select(IndexOutbox.queued_at, IndexOutbox.attempts)
                                .where(IndexOutbox.dossier_id == dossier.id).order_by(IndexOutbox.id.desc())).first()
    stored = db.session.execute(select(WorkflowHistory.created_at).where(WorkflowHistory.dossier_id == dossier.id)
                                .order_by(WorkflowHistory.id.desc())).scalar()
    assert queued.attempts == 0 and queued.queued_at >= stored  # queued at the change or just after
    other = Session(db.engine)
    try:
        stale, stale_owner = other.get(Dossier, dossier.id), other.get(User, owner.id)
        fire_transition(db.session, workflow, dossier, "retract", owner)
        after_retract = counts(dossier.id)
        with pytest.raises(ConflictError):
            fire_transition(other, workflow, stale, "retract", stale_owner)
    finally:
        other.close()
    assert counts(dossier.id) == after_retract
    assert db.session.scalar(select(func.count()).select_from(WorkflowHistory)
                             .where(WorkflowHistory.dossier_id == dossier.id)) == 2


def stored_revision(dossier_id):
    """Return the newest revision of dossier_id with its JSON columns as stored text."""
    return db.session.execute(select(cast(DossierRevision.fields, Text), cast(DossierRevision.attachments, Text),
                                     DossierRevision.state, DossierRevision.is_legacy, DossierRevision.to_confirm)
                              .where(DossierRevision.dossier_id == dossier_id)
                              .order_by(DossierRevision.id.desc()).limit(1)).one()


def test_a_revision_is_stored_as_its_snapshot_serialized_on_its_own(app):
    # PostgreSQL inserts a commit's revisions from one JSON array (services/stats_counters.py); each column must hold
    # the text json.dumps gives for it alone, as the row-by-row insert stores it: no documents, then several versions.
    workflow, blobs = get_workflow(), get_blob_store()
    dossier, owner = applicant()
    dossier.phone = "13900000003"
    db.session.commit()
    expected = lambda: (json.dumps(snapshot_fields(dossier)), json.dumps(snapshot_attachments(dossier)),  # noqa: E731
                        dossier.state, dossier.person.is_legacy, dossier.to_confirm)
    assert stored_revision(dossier.id) == expected()
    upload_required(workflow, blobs, dossier, owner)
    add_attachment_version(db.session, workflow, blobs, dossier, "basic_info_form", sample_pdf("第二版"), owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    assert stored_revision(dossier.id) == expected()
    assert json.loads(stored_revision(dossier.id)[1])["basic_info_form"]["number"] == 2
