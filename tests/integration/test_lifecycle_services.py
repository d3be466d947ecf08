"""Firing transitions and purging dossiers: one transaction each, stale writes refused as conflicts."""
import hashlib
import json

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from kjdms.backends import get_config
from kjdms.extensions import db
from kjdms.models import (Attachment, AttachmentVersion, AuditEvent, Dossier, Person, Tombstone, User,
                          WorkflowHistory)
from kjdms.permissions import SYSTEM
from kjdms.samples import sample_pdf, sample_png
from kjdms.services import audit_chain
from kjdms.services.attachments import add_attachment_version
from kjdms.services.identity import id_number_hash
from kjdms.services.lifecycle import (DEADLINE_LEGAL_BASIS, PERSONAL_DOSSIER_FIELDS, PERSONAL_PERSON_FIELDS,
                                      ConflictError, fire_transition, purge_dossier)
from kjdms.services.stats_counters import differences
from kjdms.workflow import TransitionRefused
from tests.helpers import CommitFailed, applicant, fail_next_commit, upload_required


def history(dossier_id) -> list[tuple]:
    rows = db.session.scalars(select(WorkflowHistory).filter_by(dossier_id=dossier_id).order_by(WorkflowHistory.id))
    return [(row.action, row.from_state, row.to_state, row.actor_role, row.comment) for row in rows]


def workflow_events(dossier_id) -> list[tuple]:
    rows = db.session.scalars(select(AuditEvent).where(
        AuditEvent.object_id == dossier_id, AuditEvent.action.startswith("workflow.")).order_by(AuditEvent.id))
    return [(row.action, row.detail) for row in rows]


def snapshot(dossier: Dossier) -> tuple:
    """Return what a transition changes, as the database holds it."""
    db.session.expire_all()
    return dossier.state, dossier.lock_version, history(dossier.id), workflow_events(dossier.id)


def submitted(people, workflow, blobs) -> Dossier:
    """Return the people fixture's dossier, uploaded and submitted by its owner."""
    upload_required(workflow, blobs, people["dossier"], people["owner"])
    fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
    return people["dossier"]


def refused(workflow, dossier, name, actor, comment=None, fragment="", field=None, error=TransitionRefused):
    """Fire expecting a refusal naming fragment; check the database is as it was."""
    before = snapshot(dossier)
    with pytest.raises(error) as caught:
        fire_transition(db.session, workflow, dossier, name, actor, comment)
    assert fragment in str(caught.value)
    if error is TransitionRefused:
        assert caught.value.field == field
    assert snapshot(dossier) == before
    return caught.value


class TestSubmit:
    def test_refused_while_documents_are_missing(self, app, workflow, people):
        refused(workflow, people["dossier"], "submit", people["owner"],
                fragment="尚不能提交，还缺少：基本信息表、单位代码证、学历证书")

    def test_the_refusal_lists_only_what_is_still_missing(self, app, workflow, blobs):
        dossier, owner = applicant(qualification_level="junior", qualification_certificate_number="2019211000001")
        add_attachment_version(db.session, workflow, blobs, dossier, "basic_info_form", sample_pdf(), owner,
                               filename="基本信息表.pdf")
        refused(workflow, dossier, "submit", owner,
                fragment="尚不能提交，还缺少：单位代码证、学历证书、会计专业技术资格证书")

    def test_missing_basic_information_comes_before_the_documents(self, app, workflow):
        dossier, owner = applicant(complete=False)
        refused(workflow, dossier, "submit", owner, fragment=(
            "尚不能提交，还缺少：联系电话、学历、人员类别、归属地区（工作单位、学籍或户籍所在地区）、基本信息表、学历证书"))

    def test_succeeds_once_everything_is_uploaded(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        upload_required(workflow, blobs, dossier, owner)
        version = dossier.lock_version

        result = fire_transition(db.session, workflow, dossier, "submit", owner)

        assert (result.from_state, result.to_state, result.transition.name) == ("draft", "submitted", "submit")
        state, lock_version, rows, events = snapshot(dossier)
        assert (state, lock_version) == ("submitted", version + 1)
        assert rows == [("submit", "draft", "submitted", "owner", None)]
        assert events == [("workflow.submit", {"from_state": "draft", "to_state": "submitted"})]
        row = db.session.scalar(select(WorkflowHistory).filter_by(dossier_id=dossier.id))
        event = db.session.scalar(select(AuditEvent).filter_by(action="workflow.submit"))
        assert row.actor_id == event.actor_id == owner.id
        assert event.actor_label == f"applicant:{owner.id}"


# (transition, actor, comment given, history row's actor role, comment stored)
PATHS = {
    "approve and archive": [("submit", "owner", None, "owner", None),
                            ("approve", "reviewer", " 材料齐全 ", "reviewer", "材料齐全"),
                            ("archive", "archivist", None, "archivist", None)],
    "reject and resubmit": [("submit", "owner", None, "owner", None),
                            ("reject", "city_reviewer", "学历证书照片不清晰", "reviewer", "学历证书照片不清晰"),
                            ("revise", "owner", None, "owner", None),
                            ("submit", "owner", "已重新上传", "owner", "已重新上传")],
    "retract": [("submit", "owner", None, "owner", None),
                ("retract", "owner", "   ", "owner", None)],
}


class TestTransitions:
    @pytest.mark.parametrize("path", list(PATHS.values()), ids=list(PATHS))
    def test_each_success_writes_one_history_row_and_one_audit_event(self, app, workflow, blobs, people, path):
        dossier = people["dossier"]
        upload_required(workflow, blobs, dossier, people["owner"])
        expected_rows, expected_events = [], []
        for name, who, comment, role, stored_comment in path:
            from_state = dossier.state
            result = fire_transition(db.session, workflow, dossier, name, people[who], comment)
            expected_rows.append((name, from_state, result.to_state, role, stored_comment))
            expected_events.append((f"workflow.{name}", {"from_state": from_state, "to_state": result.to_state}))
            state, _, rows, events = snapshot(dossier)
            assert state == result.to_state
            assert rows == expected_rows
            assert events == expected_events
        actor_ids = list(db.session.scalars(
            select(WorkflowHistory.actor_id).filter_by(dossier_id=dossier.id).order_by(WorkflowHistory.id)))
        assert actor_ids == [people[who].id for _, who, *_ in path]

    @pytest.mark.parametrize("comment", [None, "", "   "])
    def test_reject_without_a_reason_is_refused(self, app, workflow, blobs, people, comment):
        dossier = submitted(people, workflow, blobs)
        refused(workflow, dossier, "reject", people["reviewer"], comment,
                fragment="「退回」必须填写理由", field="comment")

    @pytest.mark.parametrize("who", ["other_reviewer", "credit_officer", "archivist", "owner"])
    def test_only_a_reviewer_of_the_dossier_region_may_approve(self, app, workflow, blobs, people, who):
        dossier = submitted(people, workflow, blobs)
        refused(workflow, dossier, "approve", people[who], fragment="您没有执行「审核确认」的权限")

    def test_a_reviewer_of_another_region_may_not_reject_either(self, app, workflow, blobs, people):
        dossier = submitted(people, workflow, blobs)
        refused(workflow, dossier, "reject", people["other_reviewer"], "不符合要求",
                fragment="您没有执行「退回」的权限")

    def test_a_transition_from_another_state_is_refused(self, app, workflow, people):
        refused(workflow, people["dossier"], "approve", people["reviewer"],
                fragment="「填报中」状态下不能执行「审核确认」")

    def test_an_unknown_transition_is_refused(self, app, workflow, people):
        refused(workflow, people["dossier"], "delete", people["owner"], fragment="没有名为「delete」的操作")

    def test_purge_is_not_fired_as_a_transition(self, app, workflow, people):
        refused(workflow, people["dossier"], "purge", SYSTEM, "逾期", fragment="删除个人信息须通过删除功能办理")

    def test_a_failure_at_commit_leaves_state_history_and_audit_unchanged(self, app, workflow, blobs, people,
                                                                          monkeypatch):
        dossier = submitted(people, workflow, blobs)
        before = snapshot(dossier)
        fail_next_commit(monkeypatch)

        with pytest.raises(CommitFailed):
            fire_transition(db.session, workflow, dossier, "approve", people["reviewer"], "材料齐全")

        assert snapshot(dossier) == before
        assert before[0] == "submitted"
        # The commit works again: the same transition now goes through, once.
        fire_transition(db.session, workflow, dossier, "approve", people["reviewer"], "材料齐全")
        assert [row[0] for row in snapshot(dossier)[2]] == ["submit", "approve"]


class TestRejectionFlags:
    """A rejection's items at fault are stored as codes on its history row, apart from the reason as typed."""

    def test_the_items_are_stored_in_the_vocabulary_order_once_each(self, app, workflow, blobs, people):
        dossier = submitted(people, workflow, blobs)
        fire_transition(db.session, workflow, dossier, "reject", people["reviewer"], "证书模糊",
                        flagged=["attachment:education_certificate", "phone", "phone"])
        row = db.session.scalars(select(WorkflowHistory).filter_by(dossier_id=dossier.id, action="reject")).one()
        assert (row.comment, row.flagged) == ("证书模糊", ["phone", "attachment:education_certificate"])
        assert workflow_events(dossier.id)[-1][1]["flagged"] == ["phone", "attachment:education_certificate"]

    def test_a_rejection_without_items_stores_an_empty_list(self, app, workflow, blobs, people):
        dossier = submitted(people, workflow, blobs)
        fire_transition(db.session, workflow, dossier, "reject", people["reviewer"], "材料不全")
        assert db.session.scalars(select(WorkflowHistory.flagged).filter_by(action="reject")).one() == []
        assert db.session.scalars(select(WorkflowHistory.flagged).filter_by(action="submit")).one() == []

    @pytest.mark.parametrize("codes", [["secret_column"], ["phone", "attachment:passport"], ["sex"]])
    def test_an_unknown_item_is_refused_naming_the_field(self, app, workflow, blobs, people, codes):
        dossier = submitted(people, workflow, blobs)
        before = snapshot(dossier)
        with pytest.raises(TransitionRefused) as caught:
            fire_transition(db.session, workflow, dossier, "reject", people["reviewer"], "不符", flagged=codes)
        assert caught.value.field == "fields" and "有问题的项目：没有" in caught.value.message
        assert snapshot(dossier) == before

    @pytest.mark.parametrize("name, who", [("approve", "reviewer"), ("retract", "owner")])
    def test_items_on_any_other_transition_are_refused(self, app, workflow, blobs, people, name, who):
        dossier = submitted(people, workflow, blobs)
        before = snapshot(dossier)
        with pytest.raises(TransitionRefused) as caught:
            fire_transition(db.session, workflow, dossier, name, people[who], "好", flagged=["phone"])
        assert caught.value.field == "fields" and caught.value.message == "有问题的项目：只有退回时才能勾选"
        assert snapshot(dossier) == before


class TestOptimisticLocking:
    def test_a_stale_expected_version_is_a_conflict_even_in_the_same_state(self, app, workflow, blobs, people):
        dossier, owner = submitted(people, workflow, blobs), people["owner"]
        seen_by_reviewer = dossier.lock_version
        # Meanwhile the owner retracts and submits again: the state is the same, the dossier is not.
        fire_transition(db.session, workflow, dossier, "retract", owner)
        fire_transition(db.session, workflow, dossier, "submit", owner)
        before = snapshot(dossier)

        with pytest.raises(ConflictError, match="该档案已被他人处理或修改，您的操作未保存"):
            fire_transition(db.session, workflow, dossier, "approve", people["reviewer"],
                            expected_version=seen_by_reviewer)

        assert snapshot(dossier) == before

    def test_the_current_expected_version_passes(self, app, workflow, blobs, people):
        dossier = submitted(people, workflow, blobs)
        fire_transition(db.session, workflow, dossier, "approve", people["reviewer"],
                        expected_version=dossier.lock_version)
        assert snapshot(dossier)[0] == "approved"

    @pytest.mark.parametrize("first, second", [("approve", "reject"), ("reject", "approve")])
    def test_concurrent_decisions_let_the_first_stand(self, app, workflow, blobs, people, first, second):
        dossier = submitted(people, workflow, blobs)
        other = Session(db.engine)
        try:
            # The second reviewer opened the dossier before the first decided.
            stale = other.get(Dossier, dossier.id)
            second_reviewer = other.get(User, people["city_reviewer"].id)
            assert stale.state == "submitted"

            fire_transition(db.session, workflow, dossier, first, people["reviewer"], "第一位审核人的意见")
            with pytest.raises(ConflictError) as caught:
                fire_transition(other, workflow, stale, second, second_reviewer, "第二位审核人的意见")
            # Caught by the version check in the UPDATE, not by a comparison in Python.
            assert isinstance(caught.value.__cause__, StaleDataError)
        finally:
            other.close()

        state, _, rows, events = snapshot(dossier)
        assert state == {"approve": "approved", "reject": "rejected"}[first]
        assert [row[0] for row in rows] == ["submit", first]
        assert rows[-1][3:] == ("reviewer", "第一位审核人的意见")
        assert [event[0] for event in events] == ["workflow.submit", f"workflow.{first}"]


# A request reads the dossier and the signed-in user, then fires: one query for what the transition reads
# of the dossier, the actor's roles, the chain head locked and moved on (two statements), and one statement
# for each row written (dossier, history, audit event, outbox, revision; a decision also notifies the owner),
# and four for the statistics counters (the member row; the dossier's counted values and its history with its working
# copies', in one read; the member row and the counters moved on). Which counted dossier a change belongs to is known
# from the session's dossier, not read (stats_counters.with_baselines).
STATEMENTS_PER_TRANSITION = {"submit": 14, "approve": 16, "reject": 16}
# PostgreSQL writes the dossier, its history and outbox rows and locks the chain head in one statement, moves the
# chain head in the audit event's insert, inserts the revision in the member rows' lock and moves the counters with
# the member row (data-modifying WITH, services/transition_rows.py, services/audit.py and
# services/stats_counters.py): six fewer.
STATEMENTS_PER_TRANSITION_ON_POSTGRESQL = {name: count - 6 for name, count in STATEMENTS_PER_TRANSITION.items()}


class TestStatementsPerTransition:
    @staticmethod
    def statements_of(workflow, dossier_id, name, actor_id, comment=None) -> list[str]:
        """Fire name as a request does (a fresh session, the dossier and the actor read by id); return its SQL."""
        db.session.remove()
        statements = []

        def count(connection, cursor, statement, parameters, context, executemany):
            statements.append((connection, statement))

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            dossier, actor = db.session.get(Dossier, dossier_id), db.session.get(User, actor_id)
            fire_transition(db.session, workflow, dossier, name, actor, comment)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        # The request's own: the index drain after the commit (KJDMS_INDEX_AFTER_COMMIT) has a connection of its own.
        return [statement for connection, statement in statements if connection is statements[0][0]]

    @pytest.mark.parametrize("decision, comment", [("approve", None), ("reject", "学历证书照片不清晰")])
    def test_a_transition_runs_a_bounded_number_of_statements(self, app, workflow, blobs, people, decision, comment):
        dossier, owner, reviewer = people["dossier"], people["owner"], people["reviewer"]
        upload_required(workflow, blobs, dossier, owner)
        dossier_id, owner_id, reviewer_id = dossier.id, owner.id, reviewer.id

        submit = self.statements_of(workflow, dossier_id, "submit", owner_id)
        decide = self.statements_of(workflow, dossier_id, decision, reviewer_id, comment)

        bound = (STATEMENTS_PER_TRANSITION_ON_POSTGRESQL if db.engine.dialect.name == "postgresql"
                 else STATEMENTS_PER_TRANSITION)
        assert len(submit) == bound["submit"], submit
        assert len(decide) == bound[decision], decide
        # Both still wrote everything they must, the audit event linked to the chain.
        assert [row[0] for row in history(dossier_id)] == ["submit", decision]
        assert [event[0] for event in workflow_events(dossier_id)] == ["workflow.submit", f"workflow.{decision}"]
        assert audit_chain.verify(db.session)[1] is None
        with db.engine.connect() as connection:
            assert differences(connection) == []  # the member row and the counters moved with the state


def purge(workflow, blobs, dossier, actor, reason="逾期未进行信息更新和确认", **options):
    return purge_dossier(db.session, workflow, blobs, dossier, actor, reason,
                         id_hash_key=get_config().ID_HASH_KEY, **options)


@pytest.fixture
def shared_form(app, workflow, blobs, people):
    """The people dossier, submitted, whose form another dossier holds too; returns the form's bytes."""
    data = sample_pdf("a form two dossiers share")
    dossier, owner = people["dossier"], people["owner"]
    add_attachment_version(db.session, workflow, blobs, dossier, "basic_info_form", data, owner, filename="表.pdf")
    for slot, seed in (("employer_certificate", 1), ("education_certificate", 2)):
        add_attachment_version(db.session, workflow, blobs, dossier, slot, sample_png(seed=seed), owner,
                               filename=f"{slot}.png")
    fire_transition(db.session, workflow, dossier, "submit", owner)
    other, other_owner = applicant(name="王芳")
    add_attachment_version(db.session, workflow, blobs, other, "basic_info_form", data, other_owner,
                           filename="表.pdf")
    return data


def purge_untouched(dossier, id_number, hashes, blobs):
    """Assert a refused purge changed nothing: personal data, account, tombstones, blobs."""
    db.session.expire_all()
    assert dossier.person.id_number == id_number
    assert dossier.person.user is not None
    assert dossier.state != "purged"
    assert db.session.scalar(select(func.count()).select_from(Tombstone)) == 0
    assert all(blobs.exists(sha256) for sha256 in hashes)


def version_hashes(dossier) -> set[str]:
    return {version.sha256 for attachment in dossier.attachments for version in attachment.versions}


class TestPurge:
    def test_removes_every_personal_value(self, app, workflow, blobs, people, shared_form):
        dossier = people["dossier"]
        person_id = dossier.person.id
        purge(workflow, blobs, dossier, SYSTEM, legal_basis=DEADLINE_LEGAL_BASIS)
        db.session.expire_all()

        dossier, person = db.session.get(Dossier, dossier.id), db.session.get(Person, person_id)
        assert dossier.state == "purged"
        assert {field: getattr(person, field) for field in PERSONAL_PERSON_FIELDS} == dict.fromkeys(
            PERSONAL_PERSON_FIELDS)
        assert {field: getattr(dossier, field) for field in PERSONAL_DOSSIER_FIELDS} == dict.fromkeys(
            PERSONAL_DOSSIER_FIELDS)
        assert (dossier.job_types, dossier.is_student, dossier.qualification_level) == ([], False, "none")

    def test_removes_the_attachments_and_the_applicant_account(self, app, workflow, blobs, people, shared_form):
        dossier, owner_id = people["dossier"], people["owner"].id
        purge(workflow, blobs, dossier, SYSTEM)
        db.session.expire_all()

        assert db.session.scalars(select(Attachment).filter_by(dossier_id=dossier.id)).all() == []
        assert db.session.scalar(select(func.count()).select_from(AttachmentVersion)) == 1  # the other dossier's
        assert db.session.get(User, owner_id) is None
        assert dossier.person.user is None

    def test_leaves_a_tombstone_with_only_a_keyed_hash(self, app, workflow, blobs, people, shared_form):
        dossier = people["dossier"]
        id_number, name = dossier.person.id_number, dossier.person.name
        tombstone = purge(workflow, blobs, dossier, SYSTEM, "  逾期未确认  ", legal_basis=DEADLINE_LEGAL_BASIS)
        tombstone_id = tombstone.id
        db.session.expire_all()

        tombstone = db.session.get(Tombstone, tombstone_id)
        assert tombstone.dossier_id == dossier.id
        assert tombstone.id_number_hash == id_number_hash(get_config().ID_HASH_KEY, id_number)
        assert tombstone.id_number_hash != hashlib.sha256(id_number.encode()).hexdigest()
        assert (tombstone.actor_label, tombstone.reason, tombstone.legal_basis) == (
            "system", "逾期未确认", DEADLINE_LEGAL_BASIS)
        stored = " ".join(str(getattr(tombstone, column.key)) for column in Tombstone.__table__.columns)
        assert id_number not in stored
        assert name not in stored

    def test_no_audit_event_holds_the_id_number(self, app, workflow, blobs, people, shared_form):
        dossier = people["dossier"]
        id_number = dossier.person.id_number
        purge(workflow, blobs, dossier, SYSTEM)
        events = db.session.scalars(select(AuditEvent)).all()
        assert "workflow.purge" in {event.action for event in events}
        assert all(id_number not in json.dumps([event.detail, event.actor_label]) for event in events)

    def test_deletes_the_blobs_only_this_dossier_held(self, app, workflow, blobs, people, shared_form):
        dossier = people["dossier"]
        shared = hashlib.sha256(shared_form).hexdigest()
        own = version_hashes(dossier) - {shared}
        assert len(own) == 2
        purge(workflow, blobs, dossier, SYSTEM)

        assert not any(blobs.exists(sha256) for sha256 in own)
        assert blobs.exists(shared)
        assert list(blobs.iter_hashes()) == [shared]

    def test_the_history_remains_without_the_purged_account(self, app, workflow, blobs, people, shared_form):
        dossier = people["dossier"]
        purge(workflow, blobs, dossier, SYSTEM, "逾期未确认")
        db.session.expire_all()

        assert history(dossier.id) == [("submit", "draft", "submitted", "owner", None),
                                       ("purge", "submitted", "purged", "system", "逾期未确认")]
        assert list(db.session.scalars(select(WorkflowHistory.actor_id).filter_by(dossier_id=dossier.id)
                                       .order_by(WorkflowHistory.id))) == [None, None]

    def test_the_administrator_may_purge_a_draft(self, app, workflow, blobs, people):
        dossier = people["dossier"]
        tombstone = purge(workflow, blobs, dossier, people["administrator"], "本人申请删除")
        assert tombstone.actor_label == "admin"
        assert history(dossier.id) == [("purge", "draft", "purged", "administrator", "本人申请删除")]
        assert db.session.scalar(select(WorkflowHistory.actor_id)) == people["administrator"].id

    def test_a_purged_dossier_cannot_be_purged_again(self, app, workflow, blobs, people, shared_form):
        dossier = people["dossier"]
        purge(workflow, blobs, dossier, SYSTEM)
        with pytest.raises(TransitionRefused, match="「已删除」状态下不能执行「删除个人信息」"):
            purge(workflow, blobs, dossier, people["administrator"])
        db.session.expire_all()
        assert db.session.scalar(select(func.count()).select_from(Tombstone)) == 1
        assert [row[0] for row in history(dossier.id)] == ["submit", "purge"]

    @pytest.mark.parametrize("name", ["submit", "revise", "retract"])
    def test_no_transition_leaves_purged(self, app, workflow, blobs, people, name):
        dossier = people["dossier"]
        purge(workflow, blobs, dossier, SYSTEM)
        refused(workflow, dossier, name, people["administrator"], fragment="「已删除」状态下不能执行")

    @pytest.mark.parametrize("who", ["reviewer", "city_reviewer", "credit_officer", "archivist", "owner"])
    def test_only_the_administrator_or_the_system_may_purge(self, app, workflow, blobs, people, shared_form, who):
        dossier = people["dossier"]
        id_number, hashes = dossier.person.id_number, version_hashes(dossier)
        with pytest.raises(TransitionRefused, match="您没有执行「删除个人信息」的权限"):
            purge(workflow, blobs, dossier, people[who])
        purge_untouched(dossier, id_number, hashes, blobs)

    @pytest.mark.parametrize("reason", [None, "", "   "])
    def test_a_purge_needs_a_reason(self, app, workflow, blobs, people, shared_form, reason):
        dossier = people["dossier"]
        id_number, hashes = dossier.person.id_number, version_hashes(dossier)
        with pytest.raises(TransitionRefused, match="「删除个人信息」必须填写理由") as caught:
            purge(workflow, blobs, dossier, SYSTEM, reason)
        assert caught.value.field == "comment"
        purge_untouched(dossier, id_number, hashes, blobs)

    def test_a_stale_expected_version_is_a_conflict(self, app, workflow, blobs, people, shared_form):
        dossier = people["dossier"]
        id_number, hashes = dossier.person.id_number, version_hashes(dossier)
        with pytest.raises(ConflictError):
            purge(workflow, blobs, dossier, SYSTEM, expected_version=dossier.lock_version - 1)
        purge_untouched(dossier, id_number, hashes, blobs)

    def test_a_failure_at_commit_keeps_data_and_blobs(self, app, workflow, blobs, people, shared_form, monkeypatch):
        dossier = people["dossier"]
        id_number, hashes = dossier.person.id_number, version_hashes(dossier)
        fail_next_commit(monkeypatch)
        with pytest.raises(CommitFailed):
            purge(workflow, blobs, dossier, SYSTEM)
        purge_untouched(dossier, id_number, hashes, blobs)
        assert [row[0] for row in history(dossier.id)] == ["submit"]


def test_purge_spares_a_blob_that_an_upload_in_flight_stored_again(app, blobs):
    from kjdms.services.lifecycle import delete_unreferenced_blobs

    # Same content uploaded into another dossier after the purge began: its row is not committed yet.
    sha256 = blobs.put(b"%PDF-1.4 shared content").sha256
    purge_began = blobs.modified_at(sha256) - 1
    assert delete_unreferenced_blobs(db.session, blobs, {sha256}, stored_before=purge_began) == []
    assert blobs.exists(sha256)
    assert delete_unreferenced_blobs(db.session, blobs, {sha256}, stored_before=blobs.modified_at(sha256) + 1) == [sha256]
    assert not blobs.exists(sha256)
