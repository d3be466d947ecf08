"""Working copies: the approved dossier stays effective until the copy is approved, then takes its content."""
import pytest
from sqlalchemy import func, select

from kjdms.extensions import db
from kjdms.models import Dossier, WorkflowHistory
from kjdms.permissions import SYSTEM, PermissionDenied
from kjdms.samples import sample_pdf
from kjdms.services.attachments import add_attachment_version
from kjdms.services.dossiers import update_basic_information
from kjdms.services.lifecycle import fire_transition, purge_dossier
from kjdms.services.working_copy import (cancel_working_copy, changes, effective_and_open_copy, open_working_copy,
                                         start_working_copy)
from kjdms.workflow import TransitionRefused
from tests.helpers import upload_required


@pytest.fixture
def approved(app, workflow, blobs, people):
    """The people fixture's dossier, submitted and approved."""
    dossier = people["dossier"]
    upload_required(workflow, blobs, dossier, people["owner"])
    fire_transition(db.session, workflow, dossier, "submit", people["owner"])
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    return dossier


def test_only_the_owner_of_an_approved_dossier_starts_one_and_only_one(app, workflow, people, approved):
    with pytest.raises(PermissionDenied):
        start_working_copy(db.session, workflow, approved, people["reviewer"])
    copy = start_working_copy(db.session, workflow, approved, people["owner"])
    assert (copy.state, copy.baseline_id, copy.number) == ("draft", approved.id, approved.number)
    assert start_working_copy(db.session, workflow, approved, people["owner"]).id == copy.id
    assert people["dossier"].person.dossier.id == approved.id  # the effective one is still the baseline
    # The copy shares the baseline's blobs: same hashes, no new content stored.
    assert {a.slot: a.current.sha256 for a in copy.attachments} == {a.slot: a.current.sha256 for a in approved.attachments}


def test_the_effective_dossier_and_its_open_copy_are_read_together(app, workflow, people, approved):
    owner, person_id = people["owner"], approved.person_id
    assert effective_and_open_copy(db.session, person_id) == (approved, None)
    copy = start_working_copy(db.session, workflow, approved, owner)
    db.session.expire_all()
    assert effective_and_open_copy(db.session, person_id) == (approved, copy)
    # Checked in (approved), it is no longer open; a newer copy is.
    fire_transition(db.session, workflow, copy, "submit", owner)
    fire_transition(db.session, workflow, copy, "approve", people["reviewer"])
    assert effective_and_open_copy(db.session, person_id) == (approved, None)
    newer = start_working_copy(db.session, workflow, approved, owner)
    assert effective_and_open_copy(db.session, person_id) == (approved, newer)
    assert effective_and_open_copy(db.session, None) == (None, None)


def test_a_draft_dossier_cannot_be_copied(app, workflow, people):
    with pytest.raises(PermissionDenied, match="审核确认后"):
        start_working_copy(db.session, workflow, people["dossier"], people["owner"])


def test_approval_checks_the_copy_in_and_keeps_both_histories(app, workflow, blobs, people, approved):
    owner, reviewer = people["owner"], people["reviewer"]
    copy = start_working_copy(db.session, workflow, approved, owner)
    update_basic_information(db.session, workflow, copy, {"employer_name": "朝阳市新单位有限公司"}, owner)
    new_form = add_attachment_version(db.session, workflow, blobs, copy, "basic_info_form",
                                      sample_pdf("the new form"), owner, filename="新表.pdf")
    assert [change.label for change in changes(copy)] == ["工作单位名称", "基本信息表"]
    assert changes(copy)[0].before == "朝阳市双塔区示范会计服务有限公司" and changes(copy)[0].after == "朝阳市新单位有限公司"
    fire_transition(db.session, workflow, copy, "submit", owner)
    db.session.expire_all()
    assert db.session.get(Dossier, approved.id).employer_name == "朝阳市双塔区示范会计服务有限公司"

    fire_transition(db.session, workflow, copy, "approve", reviewer)
    db.session.expire_all()
    baseline = db.session.get(Dossier, approved.id)
    assert baseline.employer_name == "朝阳市新单位有限公司" and baseline.state == "approved"
    form = baseline.attachment("basic_info_form")
    assert (len(form.versions), form.current.sha256) == (2, new_form.sha256)
    assert [row.action for row in baseline.history] == ["submit", "approve", "check_in"]
    assert [row.action for row in db.session.get(Dossier, copy.id).history] == ["submit", "approve"]
    assert open_working_copy(db.session, baseline) is None
    with pytest.raises(TransitionRefused, match="已审核确认并入档案"):
        fire_transition(db.session, workflow, db.session.get(Dossier, copy.id), "archive", people["archivist"])


def test_a_rejected_copy_leaves_the_baseline_alone(app, workflow, blobs, people, approved):
    owner, reviewer = people["owner"], people["reviewer"]
    copy = start_working_copy(db.session, workflow, approved, owner)
    update_basic_information(db.session, workflow, copy, {"phone": "13900000000"}, owner)
    with pytest.raises(TransitionRefused, match="重新打印、签字盖章的基本信息表"):
        fire_transition(db.session, workflow, copy, "submit", owner)
    add_attachment_version(db.session, workflow, blobs, copy, "basic_info_form",
                           sample_pdf("signed again"), owner, filename="新表.pdf")
    fire_transition(db.session, workflow, copy, "submit", owner)
    fire_transition(db.session, workflow, copy, "reject", reviewer, "电话号码无法接通")
    db.session.expire_all()
    assert db.session.get(Dossier, approved.id).phone == "13904211234"
    fire_transition(db.session, workflow, copy, "revise", owner)
    assert copy.state == "draft"


def test_cancel_deletes_only_a_draft_copy(app, workflow, people, approved):
    owner = people["owner"]
    copy = start_working_copy(db.session, workflow, approved, owner)
    with pytest.raises(PermissionDenied):
        cancel_working_copy(db.session, workflow, copy, people["reviewer"])
    cancel_working_copy(db.session, workflow, copy, owner)
    assert open_working_copy(db.session, approved) is None
    assert db.session.scalar(select(func.count()).select_from(Dossier)) == 1


def test_purge_takes_the_working_copies_with_it(app, workflow, blobs, people, approved):
    owner = people["owner"]
    copy = start_working_copy(db.session, workflow, approved, owner)
    only_in_copy = add_attachment_version(db.session, workflow, blobs, copy, "other",
                                          sample_pdf("only in the copy"), owner, filename="说明.pdf").sha256
    copy_id = copy.id
    with pytest.raises(TransitionRefused):
        purge_dossier(db.session, workflow, blobs, copy, SYSTEM, "逾期", id_hash_key="k")
    purge_dossier(db.session, workflow, blobs, approved, SYSTEM, "逾期未确认", id_hash_key="k")
    assert db.session.get(Dossier, copy_id) is None
    assert not blobs.exists(only_in_copy)
    assert db.session.scalar(select(func.count()).select_from(WorkflowHistory)
                             .where(WorkflowHistory.dossier_id == copy_id)) == 0
