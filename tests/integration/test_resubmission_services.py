"""What a resubmission changed against the rejected submission, for a first registration and for a working copy."""
from sqlalchemy import delete, func, select

from kjdms.extensions import db
from kjdms.models import Dossier, DossierRevision
from kjdms.samples import sample_pdf
from kjdms.services.attachments import add_attachment_version
from kjdms.services.dossiers import update_basic_information
from kjdms.services.lifecycle import fire_transition
from kjdms.services.resubmission import resubmission
from kjdms.services.working_copy import cancel_working_copy, start_working_copy
from tests.helpers import upload_required

REASON = "电话号码无法接通；基本信息表未盖章"
FLAGS = ["phone", "attachment:basic_info_form"]


def reject_then_fix(workflow, blobs, people, dossier):
    """Submit dossier, reject it with REASON and FLAGS, then change the phone and the form and submit it again."""
    owner, reviewer = people["owner"], people["reviewer"]
    fire_transition(db.session, workflow, dossier, "submit", owner)
    fire_transition(db.session, workflow, dossier, "reject", reviewer, REASON, flagged=FLAGS)
    rejected_form = dossier.attachment("basic_info_form").current
    fire_transition(db.session, workflow, dossier, "revise", owner)
    update_basic_information(db.session, workflow, dossier, {"phone": "13912345678"}, owner)
    add_attachment_version(db.session, workflow, blobs, dossier, "basic_info_form", sample_pdf("form stamped after the rejection"),
                           owner, filename="基本信息表-盖章.pdf")
    fire_transition(db.session, workflow, dossier, "submit", owner)
    return rejected_form


def assert_compared_with_the_rejected_submission(found, rejected_form, dossier):
    assert found.rejection.comment == REASON and list(found.rejection.flagged) == FLAGS
    by_field = {change.field: change for change in found.changes}
    assert set(by_field) == {"phone", "attachment:basic_info_form"}
    assert (by_field["phone"].before, by_field["phone"].after) == ("13904211234", "13912345678")
    document = by_field["attachment:basic_info_form"]
    assert document.before.id == rejected_form.id and document.after.id == dossier.attachment("basic_info_form").current.id


def approved_copy(workflow, blobs, people):
    """Return a working copy of the people fixture's dossier, approved first, with a new form: ready to submit."""
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    copy = start_working_copy(db.session, workflow, dossier, owner)
    update_basic_information(db.session, workflow, copy, {"employer_name": "朝阳市双塔区新华会计师事务所有限公司"}, owner)
    add_attachment_version(db.session, workflow, blobs, copy, "basic_info_form", sample_pdf("form of the change"),
                           owner, filename="基本信息表-变更.pdf")
    return copy


def test_a_first_registration_is_compared_with_its_rejected_submission(app, workflow, blobs, people):
    dossier = people["dossier"]
    upload_required(workflow, blobs, dossier, people["owner"])
    rejected_form = reject_then_fix(workflow, blobs, people, dossier)
    assert_compared_with_the_rejected_submission(resubmission(db.session, dossier), rejected_form, dossier)


def test_a_working_copy_is_compared_with_its_rejected_content_not_with_the_approved_dossier(app, workflow, blobs,
                                                                                            people):
    copy = approved_copy(workflow, blobs, people)
    rejected_form = reject_then_fix(workflow, blobs, people, copy)
    found = resubmission(db.session, copy)
    # The new employer was in the rejected change already: only what was fixed after the rejection shows.
    assert_compared_with_the_rejected_submission(found, rejected_form, copy)
    assert rejected_form.number == 2 and found.changes[-1].after.number == 3


def test_a_first_submission_and_an_unanswered_rejection_are_no_resubmission(app, workflow, blobs, people):
    copy = approved_copy(workflow, blobs, people)
    fire_transition(db.session, workflow, copy, "submit", people["owner"])
    assert resubmission(db.session, copy) is None
    fire_transition(db.session, workflow, copy, "reject", people["reviewer"], REASON)
    assert resubmission(db.session, copy) is None


def test_a_rejection_without_recorded_content_is_named_without_a_comparison(app, workflow, blobs, people):
    copy = approved_copy(workflow, blobs, people)
    reject_then_fix(workflow, blobs, people, copy)
    # As a working copy rejected before its rejected content was kept.
    db.session.execute(delete(DossierRevision).where(DossierRevision.dossier_id == copy.id))
    db.session.commit()
    found = resubmission(db.session, copy)
    assert found.rejection.comment == REASON and found.changes is None


def test_cancelling_a_copy_once_rejected_deletes_its_rejected_content_with_it(app, workflow, blobs, people):
    copy = approved_copy(workflow, blobs, people)
    owner = people["owner"]
    fire_transition(db.session, workflow, copy, "submit", owner)
    fire_transition(db.session, workflow, copy, "reject", people["reviewer"], REASON)
    fire_transition(db.session, workflow, copy, "revise", owner)
    copy_id = copy.id
    cancel_working_copy(db.session, workflow, copy, owner)
    assert db.session.get(Dossier, copy_id) is None
    assert db.session.scalar(select(func.count()).select_from(DossierRevision)
                             .where(DossierRevision.dossier_id == copy_id)) == 0

