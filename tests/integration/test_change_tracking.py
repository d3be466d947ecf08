"""services/change_tracking.py: one commit queues the index outbox rows and writes the revisions, a rollback neither."""
from sqlalchemy import func, select

from kjdms.extensions import db
from kjdms.models import DossierRevision, IndexOutbox
from kjdms.services.change_tracking import touched_dossier_ids
from tests.helpers import applicant


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
