"""Dossier revisions: one per committed change, written in the change's transaction, and the dossier on a past date."""
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

import kjdms.models as models
from kjdms.extensions import db
from kjdms.models import Dossier, DossierRevision, IndexOutbox, Person
from kjdms.samples import sample_pdf, sample_png
from kjdms.services import audit
from kjdms.services.attachments import add_attachment_version
from kjdms.services.dossiers import update_basic_information
from kjdms.services.lifecycle import PERSONAL_DOSSIER_FIELDS, fire_transition, purge_dossier
from kjdms.services.revisions import (NO_RECORD_BEFORE, REGION_FIELDS, REVISED_LATER, dossier_as_of, end_of_day,
                                      shown_fields, snapshot_attachments, snapshot_fields)
from kjdms.services.working_copy import start_working_copy
from kjdms.services.reference import region_by_code
from tests.helpers import CommitFailed, applicant, fail_next_commit, make_id_number, sql_of, upload_required

BEIJING = timezone(timedelta(hours=8))
REAL_DATETIME = models.datetime


@pytest.fixture
def clock(monkeypatch):
    """Return a function that sets the time every model default and service reads (Beijing wall time)."""
    now = {}

    class Frozen(REAL_DATETIME):
        @classmethod
        def now(cls, tz=None):
            moment = now.get("at") or REAL_DATETIME.now(timezone.utc)
            return moment.astimezone(tz) if tz else moment.replace(tzinfo=None)

    monkeypatch.setattr(models, "datetime", Frozen)

    def set_to(text: str):
        now["at"] = REAL_DATETIME.fromisoformat(text).replace(tzinfo=BEIJING).astimezone(timezone.utc)
    return set_to


def revisions_of(dossier_id):
    db.session.expire_all()
    return db.session.scalars(select(DossierRevision).where(DossierRevision.dossier_id == dossier_id)
                              .order_by(DossierRevision.id)).all()


class TestRecording:
    def test_registering_writes_one_revision_of_the_new_dossier(self, app):
        dossier, _ = applicant(name="王芳")
        [revision] = revisions_of(dossier.id)
        assert revision.state == "draft" and revision.attachments == {}
        assert revision.fields["name"] == "王芳" and revision.fields["region"] == "211302"
        assert revision.fields["employer_uscc"] == dossier.employer_uscc and revision.fields["job_types"] == ["cashier"]
        assert revision.fields["birth_date"] == "1990-01-01" and revision.fields["sex"] in ("male", "female")
        # The ID number never changes, and a revision must not be one more copy of it.
        assert "id_number" not in revision.fields and dossier.person.id_number not in str(revision.fields)

    def test_every_commit_writes_exactly_one_revision_of_the_dossier_as_it_then_stood(self, app, workflow, blobs):
        dossier, owner = applicant()
        update_basic_information(db.session, workflow, dossier, {"phone": "13800000001"}, owner)
        update_basic_information(db.session, workflow, dossier, {"name": "张伟明"}, owner)
        first = add_attachment_version(db.session, workflow, blobs, dossier, "other", sample_pdf("a"), owner,
                                       filename="a.pdf")
        second = add_attachment_version(db.session, workflow, blobs, dossier, "other", sample_pdf("b"), owner,
                                        filename="b.pdf")
        revisions = revisions_of(dossier.id)
        assert len(revisions) == 5
        assert [r.fields["phone"] for r in revisions] == ["13904211234"] + ["13800000001"] * 4
        assert [r.fields["name"] for r in revisions] == ["张伟", "张伟", "张伟明", "张伟明", "张伟明"]
        assert revisions[3].attachments == {"other": {"version_id": first.id, "number": 1, "sha256": first.sha256}}
        assert revisions[4].attachments == {"other": {"version_id": second.id, "number": 2, "sha256": second.sha256}}

    def test_several_flushes_in_one_transaction_make_one_revision(self, app):
        dossier, _ = applicant()
        dossier.phone = "13800000002"
        db.session.flush()
        dossier.person.name = "李娜"
        db.session.flush()
        dossier.employer_name = "朝阳市某单位"
        db.session.commit()
        revisions = revisions_of(dossier.id)
        assert len(revisions) == 2
        assert (revisions[1].fields["phone"], revisions[1].fields["name"], revisions[1].fields["employer_name"]) == (
            "13800000002", "李娜", "朝阳市某单位")

    def test_a_transition_records_the_new_state(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        upload_required(workflow, blobs, dossier, owner)
        fire_transition(db.session, workflow, dossier, "submit", owner)
        fire_transition(db.session, workflow, dossier, "approve", people["reviewer"], "属实")
        fire_transition(db.session, workflow, dossier, "archive", people["archivist"], "不再从事会计工作")
        assert [r.state for r in revisions_of(dossier.id)][-3:] == ["submitted", "approved", "archived"]
        assert set(revisions_of(dossier.id)[-1].attachments) == {"basic_info_form", "employer_certificate",
                                                                 "education_certificate"}

    def test_the_documents_read_by_statement_are_the_loaded_documents_current_versions(self, app, workflow, blobs,
                                                                                       people):
        dossier, owner = people["dossier"], people["owner"]
        for slot, seeds in (("other", (1, 2, 3)), ("basic_info_form", (4,)), ("employer_certificate", (5, 6))):
            for seed in seeds:
                add_attachment_version(db.session, workflow, blobs, dossier, slot, sample_pdf(str(seed)), owner,
                                       filename="a.pdf")
        db.session.expire_all()
        read_by_statement = snapshot_attachments(dossier)  # no document loaded: one statement reads them
        assert dossier.attachments  # now loaded: the objects give them
        assert list(snapshot_attachments(dossier).items()) == list(read_by_statement.items())  # in the same order
        assert {slot: row["number"] for slot, row in read_by_statement.items()} == {
            "other": 3, "basic_info_form": 1, "employer_certificate": 2}

    def test_regions_read_by_code_are_the_loaded_regions(self, app, people):
        dossier = people["dossier"]
        for name, code in zip(REGION_FIELDS, ("210100", "210200", "210300", "211302")):
            setattr(dossier, name, region_by_code(db.session, code))
        db.session.commit()
        assert all(getattr(dossier, name) is not None for name in REGION_FIELDS)
        loaded = snapshot_fields(dossier)  # the regions as objects, loaded
        assert [loaded[name] for name in REGION_FIELDS] == ["210100", "210200", "210300", "211302"]
        db.session.expire_all()
        dossier.person  # noqa: B018 -- loaded, as the requests that write revisions have it
        # None of the four regions held: one statement reads their codes, where each lazy load was one.
        statements = sql_of(lambda: snapshot_fields(dossier))
        assert snapshot_fields(dossier) == loaded and len(statements) == 1 and "regions.code" in statements[0]
        db.session.expire_all()
        dossier.person  # noqa: B018
        # Two of them held in the session (the identity map holds only what something references): the other two read.
        held = [region_by_code(db.session, code) for code in ("210100", "210300")]
        statements = sql_of(lambda: snapshot_fields(dossier))
        assert snapshot_fields(dossier) == loaded and len(statements) == 1
        held += [region_by_code(db.session, code) for code in ("210200", "211302")]
        db.session.expire(dossier, REGION_FIELDS)
        assert not sql_of(lambda: snapshot_fields(dossier))  # every one held: nothing to read
        assert snapshot_fields(dossier) == loaded
        for name in REGION_FIELDS[:3]:
            setattr(dossier, name, None)
        db.session.commit()
        dossier.person  # noqa: B018
        assert [snapshot_fields(dossier)[name] for name in REGION_FIELDS] == [None, None, None, "211302"]

    def test_a_commit_that_changes_no_dossier_writes_no_revision(self, app, people):
        before = len(revisions_of(people["dossier"].id))
        audit.record(db.session, people["reviewer"], "test.nothing", "dossier", people["dossier"].id)
        db.session.commit()
        assert len(revisions_of(people["dossier"].id)) == before

    def test_a_failed_commit_leaves_no_revision_and_leaks_none_into_the_next(self, app, workflow, people, monkeypatch):
        dossier, owner = people["dossier"], people["owner"]
        before = len(revisions_of(dossier.id))
        fail_next_commit(monkeypatch)
        with pytest.raises(CommitFailed):
            update_basic_information(db.session, workflow, dossier, {"phone": "13800000003"}, owner)
        assert len(revisions_of(dossier.id)) == before
        audit.record(db.session, owner, "test.unrelated", "dossier", dossier.id)
        db.session.commit()
        assert len(revisions_of(dossier.id)) == before

    def test_the_outbox_still_gets_one_row_per_change_beside_the_revision(self, app, workflow, people):
        dossier, owner = people["dossier"], people["owner"]
        count = lambda: db.session.scalar(select(func.count()).select_from(IndexOutbox).where(  # noqa: E731
            IndexOutbox.dossier_id == dossier.id))
        before, revisions_before = count(), len(revisions_of(dossier.id))
        update_basic_information(db.session, workflow, dossier, {"phone": "13800000004"}, owner)
        assert count() == before + 1 and len(revisions_of(dossier.id)) == revisions_before + 1

    def test_a_working_copy_keeps_only_its_rejected_content_and_its_check_in_revises_the_baseline(
            self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        upload_required(workflow, blobs, dossier, owner)
        fire_transition(db.session, workflow, dossier, "submit", owner)
        fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
        baseline_revisions = len(revisions_of(dossier.id))
        copy = start_working_copy(db.session, workflow, dossier, owner)
        update_basic_information(db.session, workflow, copy, {"employer_name": "朝阳市新单位有限公司"}, owner)
        add_attachment_version(db.session, workflow, blobs, copy, "basic_info_form", sample_png(seed=9), owner,
                               filename="新表.png")
        fire_transition(db.session, workflow, copy, "submit", owner)
        assert revisions_of(copy.id) == [] and len(revisions_of(dossier.id)) == baseline_revisions
        fire_transition(db.session, workflow, copy, "reject", people["reviewer"], "请上传新单位的代码证")
        [rejected] = revisions_of(copy.id)
        assert rejected.state == "rejected" and rejected.fields["employer_name"] == "朝阳市新单位有限公司"
        assert rejected.attachments["basic_info_form"]["number"] == 2
        fire_transition(db.session, workflow, copy, "revise", owner)
        fire_transition(db.session, workflow, copy, "submit", owner)
        fire_transition(db.session, workflow, copy, "approve", people["reviewer"])
        latest = revisions_of(dossier.id)[-1]
        assert len(revisions_of(dossier.id)) == baseline_revisions + 1 and revisions_of(copy.id) == [rejected]
        assert latest.state == "approved" and latest.fields["employer_name"] == "朝阳市新单位有限公司"
        assert latest.attachments["basic_info_form"]["number"] == 2

    def test_a_purge_leaves_a_revision_of_the_purged_state_without_personal_data(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        upload_required(workflow, blobs, dossier, owner)
        id_number = dossier.person.id_number
        purge_dossier(db.session, workflow, blobs, dossier, people["administrator"], "逾期未确认",
                      id_hash_key="test-id-hash-key")
        latest = revisions_of(dossier.id)[-1]
        assert latest.state == "purged" and latest.attachments == {}
        personal = ("name", "sex", "birth_date") + tuple(
            field.removesuffix("_id") for field in PERSONAL_DOSSIER_FIELDS)
        assert {field: latest.fields[field] for field in personal} == dict.fromkeys(personal)
        assert latest.fields["job_types"] == [] and latest.fields["is_student"] is False
        assert id_number not in str(latest.fields) and "张伟" not in str(latest.fields)


def bulk_insert_dossier(created_at: datetime) -> Dossier:
    """Insert a person and a dossier with Core, as the legacy import does: no ORM, so no revision."""
    region = region_by_code(db.session, "211302")
    person_id = db.session.execute(insert(Person).values(
        id_number=make_id_number(), name="赵六", is_legacy=True, created_at=created_at).returning(Person.id)).scalar()
    dossier_id = db.session.execute(insert(Dossier).values(
        person_id=person_id, state="draft", to_confirm=True, job_types=[], qualification_level="none",
        region_id=region.id, employer_region_id=region.id, employer_name="原系统单位", is_student=False,
        created_at=created_at, updated_at=created_at, state_changed_at=created_at,
        lock_version=1).returning(Dossier.id)).scalar()
    db.session.commit()
    return db.session.get(Dossier, dossier_id)


class TestAsOf:
    def test_the_end_of_a_day_is_midnight_in_beijing(self):
        assert end_of_day(date(2020, 6, 30)) == REAL_DATETIME(2020, 6, 30, 16, 0, tzinfo=timezone.utc)

    def test_each_date_shows_the_values_the_documents_and_the_history_of_that_day(self, app, workflow, blobs, people,
                                                                                  clock):
        reviewer, archivist = people["reviewer"], people["archivist"]
        clock("2020-03-02 09:00")
        dossier, owner = applicant(name="孙丽", phone="13900000001")
        clock("2020-03-05 10:00")
        update_basic_information(db.session, workflow, dossier, {"phone": "13900000002"}, owner)
        first_form = add_attachment_version(db.session, workflow, blobs, dossier, "basic_info_form",
                                            sample_pdf("form one"), owner, filename="表一.pdf")
        upload_required(workflow, blobs, dossier, owner, seed=1)
        # 23:30 in Beijing is still the 10th there, though already 15:30 UTC.
        clock("2020-03-10 23:30")
        update_basic_information(db.session, workflow, dossier, {"employer_name": "朝阳市第二会计服务公司"}, owner)
        clock("2020-03-11 00:30")
        update_basic_information(db.session, workflow, dossier, {"name": "孙丽华"}, owner)
        newest_form = dossier.attachment("basic_info_form").current
        clock("2020-03-12 08:00")
        fire_transition(db.session, workflow, dossier, "submit", owner)
        clock("2020-03-13 16:00")
        fire_transition(db.session, workflow, dossier, "approve", reviewer, "材料齐全")
        clock("2020-04-01 09:00")
        fire_transition(db.session, workflow, dossier, "archive", archivist, "调离会计岗位")

        before = dossier_as_of(db.session, dossier, date(2020, 3, 1))
        assert not before.found and before.note == NO_RECORD_BEFORE and before.history == []

        day = dossier_as_of(db.session, dossier, date(2020, 3, 2))
        assert (day.fields["phone"], day.fields["name"], day.state, day.attachments) == ("13900000001", "孙丽",
                                                                                         "draft", [])
        day = dossier_as_of(db.session, dossier, date(2020, 3, 5))
        assert day.fields["phone"] == "13900000002" and day.fields["employer_name"] == "朝阳市双塔区示范会计服务有限公司"
        form = next(item for item in day.attachments if item.slot == "basic_info_form")
        assert form.version.id != first_form.id  # upload_required added the second version the same day
        assert form.number == 2 and form.version.id == newest_form.id
        day = dossier_as_of(db.session, dossier, date(2020, 3, 10))
        assert (day.fields["employer_name"], day.fields["name"]) == ("朝阳市第二会计服务公司", "孙丽")
        day = dossier_as_of(db.session, dossier, date(2020, 3, 11))
        assert day.fields["name"] == "孙丽华" and day.state == "draft" and day.history == []
        day = dossier_as_of(db.session, dossier, date(2020, 3, 12))
        assert day.state == "submitted" and [row.action for row in day.history] == ["submit"]
        day = dossier_as_of(db.session, dossier, date(2020, 3, 31))
        assert day.state == "approved" and [(row.action, row.comment) for row in day.history] == [
            ("submit", None), ("approve", "材料齐全")]
        day = dossier_as_of(db.session, dossier, date(2026, 1, 1))
        assert day.state == "archived" and day.history[-1].comment == "调离会计岗位" and day.fields["name"] == "孙丽华"
        assert {item.slot for item in day.attachments} == {"basic_info_form", "employer_certificate",
                                                           "education_certificate"}
        shown = dict(shown_fields(db.session, day.fields))
        assert shown["姓名"] == "孙丽华" and shown["归属地区"].endswith("双塔区") and shown["会计工作岗位"] == "出纳"

    def test_an_earlier_version_links_to_that_exact_version(self, app, workflow, blobs, clock):
        clock("2021-05-01 10:00")
        dossier, owner = applicant()
        old = add_attachment_version(db.session, workflow, blobs, dossier, "other", sample_pdf("old"), owner,
                                     filename="old.pdf")
        clock("2021-05-03 10:00")
        new = add_attachment_version(db.session, workflow, blobs, dossier, "other", sample_pdf("new"), owner,
                                     filename="new.pdf")
        [then] = [item for item in dossier_as_of(db.session, dossier, date(2021, 5, 2)).attachments]
        assert (then.version.id, then.number, then.sha256) == (old.id, 1, old.sha256)
        [now] = dossier_as_of(db.session, dossier, date(2021, 5, 3)).attachments
        assert now.version.id == new.id

    def test_a_bulk_imported_dossier_without_revisions_shows_its_current_state_from_its_creation(self, app, workflow):
        dossier = bulk_insert_dossier(REAL_DATETIME(2019, 1, 10, 2, 0, tzinfo=timezone.utc))
        assert revisions_of(dossier.id) == []
        before = dossier_as_of(db.session, dossier, date(2019, 1, 9))
        assert not before.found and before.note == NO_RECORD_BEFORE
        then = dossier_as_of(db.session, dossier, date(2019, 1, 10))
        assert then.found and then.from_current and then.fields["name"] == "赵六" and then.state == "draft"

    def test_a_bulk_imported_dossier_changed_later_says_its_earlier_content_is_not_recorded(self, app, workflow,
                                                                                            clock):
        dossier = bulk_insert_dossier(REAL_DATETIME(2019, 1, 10, 2, 0, tzinfo=timezone.utc))
        clock("2019-02-01 10:00")
        dossier.phone = "13900000009"
        db.session.commit()
        assert dossier_as_of(db.session, dossier, date(2019, 1, 20)).note == REVISED_LATER
        assert dossier_as_of(db.session, dossier, date(2019, 2, 1)).fields["phone"] == "13900000009"
