"""Credit files: findings with pinned evidence, corrections and revocations, append-only at the ORM and in SQL."""
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from kjdms.backends import get_config, get_search_index
from kjdms.extensions import db
from kjdms.models import AuditEvent, CreditRecord, Dossier, Person
from kjdms.permissions import PermissionDenied
from kjdms.samples import sample_png
from kjdms.services import credit
from kjdms.services.attachments import add_attachment_version
from kjdms.services.credit import (AppendOnlyError, CreditRefused, correct_record, credit_file, live_count,
                                   live_person_ids, record_finding, revoke_record)
from kjdms.services.identity import id_number_hash
from kjdms.services.indexing import documents_for
from kjdms.services.lifecycle import fire_transition, purge_dossier
from kjdms.services.reference import region_by_code
from kjdms.services.search import search_dossiers
from kjdms.validators import ValidationErrors
from tests.helpers import applicant, staff, upload_required

TODAY = date(2019, 6, 1)
FINDING = "学历证书系伪造，经发证学校核实无此学籍"


def key():
    return get_config().ID_HASH_KEY


def submitted(workflow, blobs, name="张伟", region_code="211302", seed=0):
    """Return a submitted dossier with its documents (and a second version of the education certificate)."""
    dossier, owner = applicant(name=name, region_code=region_code)
    upload_required(workflow, blobs, dossier, owner, seed=seed)
    add_attachment_version(db.session, workflow, blobs, dossier, "education_certificate",
                           sample_png(seed=100 + seed), owner, filename="学历证书2.png")
    fire_transition(db.session, workflow, dossier, "submit", owner)
    return dossier, owner


def versions(dossier, slot):
    return dossier.attachment(slot).versions


def record(workflow, dossier, officer, **overrides):
    fields = dict(kind="falsified_information", finding=FINDING, found_on=TODAY, today=TODAY,
                  evidence=[versions(dossier, "education_certificate")[0].id], id_hash_key=key())
    fields.update(overrides)
    return record_finding(db.session, workflow, dossier, officer, **fields)


def count(model=CreditRecord):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def officer(app):
    return staff("credit_chaoyang", "credit_officer", "211300")


class TestRecording:
    def test_a_finding_pins_the_chosen_version_by_hash_and_later_uploads_do_not_change_it(
            self, workflow, blobs, officer):
        dossier, owner = submitted(workflow, blobs)
        first = versions(dossier, "education_certificate")[0]  # an older version, not the current one
        saved = record(workflow, dossier, officer, evidence=[str(first.id)])
        assert saved.evidence == [{"version_id": first.id, "slot": "education_certificate", "number": 1,
                                   "sha256": first.sha256, "media_type": first.media_type,
                                   "filename": first.original_filename}]
        fire_transition(db.session, workflow, dossier, "retract", owner)
        add_attachment_version(db.session, workflow, blobs, dossier, "education_certificate",
                               sample_png(seed=999), owner, filename="新学历证书.png")
        db.session.expire_all()
        kept = db.session.get(CreditRecord, saved.id)
        assert kept.evidence[0]["sha256"] == first.sha256 and kept.evidence[0]["number"] == 1
        assert blobs.read(first.sha256, verify=True)  # the pinned bytes are still the ones it names

    def test_the_record_keeps_the_subject_the_date_the_basis_and_the_recording_office(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        saved = record(workflow, dossier, officer)
        assert saved.person_id == dossier.person_id and saved.action == "record" and saved.supersedes_id is None
        assert saved.subject_name == "张伟"
        assert saved.subject_id_hash == id_number_hash(key(), dossier.person.id_number)
        assert saved.legal_basis == "辽财会〔2019〕116号 四（二）" and saved.found_on == TODAY
        assert saved.office_region.code == "211300" and saved.recorded_by_label == "credit_chaoyang"

    def test_the_recording_office_is_the_officers_nearest_region_above_the_dossier(self, workflow, blobs, officer):
        from kjdms.services.accounts import assign_role
        assign_role(db.session, officer, "credit_officer", region_by_code(db.session, "211302"))
        assign_role(db.session, officer, "credit_officer", region_by_code(db.session, "210000"))
        db.session.commit()
        dossier, _ = submitted(workflow, blobs)
        assert record(workflow, dossier, officer).office_region.code == "211302"

    def test_every_write_leaves_an_audit_event_with_field_names_and_no_values(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        first = record(workflow, dossier, officer)
        corrected = correct_record(db.session, workflow, dossier, first.id, officer, kind="false_report",
                                   finding="更正：" + FINDING, legal_basis="辽财会〔2019〕116号 四（二）",
                                   evidence=[versions(dossier, "basic_info_form")[0].id], found_on=TODAY,
                                   today=TODAY, id_hash_key=key())
        revoke_record(db.session, workflow, dossier, corrected.id, officer, reason="复查后撤销", today=TODAY,
                      id_hash_key=key())
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.object_type == "credit_record")
                                    .order_by(AuditEvent.id)).all()
        assert [event.action for event in events] == ["credit.record", "credit.correct", "credit.revoke"]
        assert events[1].detail["supersedes_id"] == first.id
        assert events[0].detail["fields"] == ["evidence", "finding", "found_on", "kind", "legal_basis"]
        for event in events:
            assert event.detail["dossier_id"] == dossier.id
            flat = repr(event.detail)
            assert "学历" not in flat and "撤销" not in flat and dossier.person.id_number not in flat


class TestRefusals:
    @pytest.mark.parametrize("overrides, field, message", [
        ({"kind": "rumour"}, "kind", "类别：请从列表中选择"),
        ({"finding": "   "}, "finding", "查实情况：必填"),
        ({"finding": "假" * 2001}, "finding", "查实情况：不能超过2000个字"),
        ({"legal_basis": ""}, "legal_basis", "依据：必填"),
        ({"legal_basis": "依" * 129}, "legal_basis", "依据：不能超过128个字"),
        ({"evidence": []}, "evidence", "证据：请至少选择一份证明材料（可选任一版本）"),
        ({"evidence": ["abc"]}, "evidence", "证据：所选材料不属于该档案"),
        ({"found_on": TODAY + timedelta(days=1)}, "found_on", "查实日期：不能晚于今天"),
        ({"found_on": "2019-13-40"}, "found_on", "查实日期：应为“年-月-日”格式的日期，如 2019-05-20"),
        ({"found_on": ""}, "found_on", "查实日期：必填"),
    ])
    def test_a_bad_field_is_named_in_chinese_and_nothing_is_saved(self, workflow, blobs, officer,
                                                                  overrides, field, message):
        dossier, _ = submitted(workflow, blobs)
        audits = count(AuditEvent)
        with pytest.raises(ValidationErrors) as caught:
            record(workflow, dossier, officer, **overrides)
        assert caught.value.as_dict() == {field: message}
        assert count() == 0 and count(AuditEvent) == audits

    def test_every_bad_field_is_reported_at_once(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        with pytest.raises(ValidationErrors) as caught:
            record(workflow, dossier, officer, kind="", finding="", evidence=[], found_on="")
        assert set(caught.value.as_dict()) == {"kind", "finding", "evidence", "found_on"}

    def test_evidence_from_another_persons_dossier_is_refused(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        other, _ = submitted(workflow, blobs, name="李娜", seed=5)
        with pytest.raises(ValidationErrors) as caught:
            record(workflow, dossier, officer, evidence=[versions(other, "basic_info_form")[0].id])
        assert caught.value.as_dict() == {"evidence": "证据：所选材料不属于该档案"}
        assert count() == 0

    def test_only_credit_officers_of_the_region_record_and_only_in_the_states_the_workflow_allows(
            self, workflow, blobs, officer):
        draft, owner = applicant(name="王芳")
        upload_required(workflow, blobs, draft, owner, seed=3)
        evidence = [versions(draft, "basic_info_form")[0].id]
        with pytest.raises(PermissionDenied):  # annotate is not granted in draft
            record(workflow, draft, officer, evidence=evidence)
        dossier, _ = submitted(workflow, blobs, seed=4)
        for outsider in (staff("credit_longcheng", "credit_officer", "211303"),
                         staff("reviewer_shuangta", "reviewer", "211302"),
                         staff("admin", "administrator", "210000"), dossier.person.user):
            with pytest.raises(PermissionDenied):
                record(workflow, dossier, outsider)
        assert count() == 0

    def test_a_record_cannot_be_superseded_twice_nor_from_another_persons_dossier(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        other, _ = submitted(workflow, blobs, name="李娜", seed=5)
        first = record(workflow, dossier, officer)
        revoke_record(db.session, workflow, dossier, first.id, officer, reason="误记", today=TODAY, id_hash_key=key())
        with pytest.raises(CreditRefused, match="已被更正或撤销"):
            revoke_record(db.session, workflow, dossier, first.id, officer, reason="再撤销", today=TODAY,
                          id_hash_key=key())
        with pytest.raises(CreditRefused, match="已被更正或撤销"):
            correct_record(db.session, workflow, dossier, first.id, officer, kind="other", finding="x",
                           legal_basis="y", evidence=[versions(dossier, "basic_info_form")[0].id],
                           found_on=TODAY, today=TODAY, id_hash_key=key())
        theirs = record(workflow, other, officer, evidence=[versions(other, "basic_info_form")[0].id])
        with pytest.raises(CreditRefused, match="只能更正或撤销该人员"):
            revoke_record(db.session, workflow, dossier, theirs.id, officer, reason="x", today=TODAY,
                          id_hash_key=key())
        with pytest.raises(CreditRefused):
            revoke_record(db.session, workflow, dossier, 999_999, officer, reason="x", id_hash_key=key())
        assert count() == 3

    def test_a_revocation_needs_a_reason_and_a_revocation_itself_cannot_be_changed(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        first = record(workflow, dossier, officer)
        with pytest.raises(ValidationErrors) as caught:
            revoke_record(db.session, workflow, dossier, first.id, officer, reason=" ", id_hash_key=key())
        assert caught.value.as_dict() == {"reason": "撤销理由：必填"}
        assert count() == 1
        revocation = revoke_record(db.session, workflow, dossier, first.id, officer, reason="误记", today=TODAY,
                                   id_hash_key=key())
        with pytest.raises(CreditRefused, match="撤销记录不能再更正或撤销"):
            revoke_record(db.session, workflow, dossier, revocation.id, officer, reason="撤销撤销", id_hash_key=key())
        assert count() == 2

    def test_the_database_lets_a_record_be_superseded_only_once(self, workflow, blobs, officer):
        """The unique index decides a race between two officers that both passed the service's check."""
        dossier, _ = submitted(workflow, blobs)
        first = record(workflow, dossier, officer)
        second = correct_record(db.session, workflow, dossier, first.id, officer, kind="other", finding="更正",
                                legal_basis="依据", evidence=[versions(dossier, "basic_info_form")[0].id],
                                found_on=TODAY, today=TODAY, id_hash_key=key())
        row = {column: getattr(second, column) for column in (
            "person_id", "kind", "finding", "legal_basis", "evidence", "found_on", "office_region_id",
            "recorded_by_id", "recorded_by_label", "recorded_at", "subject_name", "subject_id_hash")}
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(sa.insert(CreditRecord.__table__).values(
                action="revoke", supersedes_id=first.id, **row))
        db.session.rollback()
        assert count() == 2


    def test_when_two_officers_race_the_loser_is_told_and_nothing_of_theirs_is_saved(
            self, workflow, blobs, officer, monkeypatch):
        dossier, _ = submitted(workflow, blobs)
        first = record(workflow, dossier, officer)
        # Both passed the check before either committed: the check finds nothing superseding first.
        monkeypatch.setattr(credit, "_superseded",
                            lambda session, dossier, record_id: session.get(CreditRecord, record_id))
        revoke_record(db.session, workflow, dossier, first.id, officer, reason="甲撤销", today=TODAY, id_hash_key=key())
        audits = count(AuditEvent)
        with pytest.raises(CreditRefused, match="已被他人更正或撤销"):
            revoke_record(db.session, workflow, dossier, first.id, officer, reason="乙撤销", today=TODAY,
                          id_hash_key=key())
        assert count() == 2 and count(AuditEvent) == audits
        assert [r.finding for r in db.session.scalars(select(CreditRecord).order_by(CreditRecord.id))] == [
            FINDING, "甲撤销"]


class TestAppendOnly:
    def test_the_orm_refuses_an_update(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        saved = record(workflow, dossier, officer)
        saved.finding = "悄悄改掉"
        with pytest.raises(AppendOnlyError, match="只能追加"):
            db.session.commit()
        db.session.rollback()
        assert db.session.get(CreditRecord, saved.id).finding == FINDING

    def test_the_orm_refuses_a_delete(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        saved = record(workflow, dossier, officer)
        db.session.delete(saved)
        with pytest.raises(AppendOnlyError):
            db.session.commit()
        db.session.rollback()
        assert count() == 1

    @pytest.mark.parametrize("statement", [
        sa.update(CreditRecord.__table__).values(finding="改"),
        sa.delete(CreditRecord.__table__),
    ], ids=["update", "delete"])
    def test_sql_past_the_orm_is_refused_by_the_trigger(self, workflow, blobs, officer, statement):
        dossier, _ = submitted(workflow, blobs)
        saved = record(workflow, dossier, officer)
        # A connection of its own, as a script or a console would use: no ORM events at all.
        with db.engine.connect() as connection:
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                connection.execute(statement)
            connection.rollback()
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                connection.execute(sa.text("UPDATE credit_records SET finding = 'x' WHERE id = :id"), {"id": saved.id})
            connection.rollback()
        assert count() == 1 and db.session.get(CreditRecord, saved.id).finding == FINDING

    def test_an_orm_bulk_update_is_refused_by_the_trigger(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        record(workflow, dossier, officer)
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            db.session.execute(sa.update(CreditRecord).values(kind="other"))
        db.session.rollback()
        assert db.session.scalar(select(CreditRecord.kind)) == "falsified_information"


class TestChainsAndLiveness:
    def test_a_correction_keeps_the_chain_live_and_a_revocation_ends_it(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        person_id = dossier.person_id
        first = record(workflow, dossier, officer)
        assert live_count(db.session, person_id) == 1 and live_person_ids(db.session, [person_id]) == {person_id}
        corrected = correct_record(db.session, workflow, dossier, first.id, officer, kind="false_report",
                                   finding="更正后的情况", legal_basis="辽财会〔2019〕116号 四（二）",
                                   evidence=[versions(dossier, "education_certificate")[1].id],
                                   found_on=TODAY, today=TODAY, id_hash_key=key())
        [chain] = credit_file(db.session, person_id)
        assert [r.id for r in chain.records] == [first.id, corrected.id] and chain.live
        assert chain.status == "有效（已更正）" and live_count(db.session, person_id) == 1
        revoked = revoke_record(db.session, workflow, dossier, corrected.id, officer, reason="复议撤销",
                                today=TODAY, id_hash_key=key())
        [chain] = credit_file(db.session, person_id)
        assert [r.id for r in chain.records] == [first.id, corrected.id, revoked.id]
        assert not chain.live and chain.status == "已撤销"
        assert revoked.kind == "false_report" and revoked.evidence == [] and revoked.finding == "复议撤销"
        assert live_count(db.session, person_id) == 0 and live_person_ids(db.session, [person_id]) == set()

    def test_chains_are_kept_apart_and_the_latest_comes_first(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        first = record(workflow, dossier, officer)
        second = record(workflow, dossier, officer, kind="false_report")
        revoke_record(db.session, workflow, dossier, first.id, officer, reason="误记", today=TODAY, id_hash_key=key())
        chains = credit_file(db.session, dossier.person_id)
        assert [chain.records[0].id for chain in chains] == [first.id, second.id]  # first changed last
        assert [chain.live for chain in chains] == [False, True]
        assert live_count(db.session, dossier.person_id) == 1


class TestSearchFacet:
    def search(self, user, value):
        return search_dossiers(db.session, get_search_index(), workflow_of(), user, "", id_hash_key=key(),
                               filters={"has_credit": value})

    def test_a_live_record_shows_in_the_has_credit_facet_and_a_revocation_takes_it_out(
            self, workflow, blobs, officer):
        reviewer = staff("reviewer_shuangta", "reviewer", "211302")
        dossier, _ = submitted(workflow, blobs)
        clean, _ = submitted(workflow, blobs, name="李娜", seed=5)
        assert [hit.dossier.id for hit in self.search(reviewer, "1").hits] == []
        first = record(workflow, dossier, officer)
        assert [hit.dossier.id for hit in self.search(reviewer, "1").hits] == [dossier.id]
        assert [hit.dossier.id for hit in self.search(reviewer, "0").hits] == [clean.id]
        revoke_record(db.session, workflow, dossier, first.id, officer, reason="误记", today=TODAY, id_hash_key=key())
        assert self.search(reviewer, "1").hits == []
        assert sorted(hit.dossier.id for hit in self.search(reviewer, "0").hits) == sorted([dossier.id, clean.id])

    def test_the_document_of_every_dossier_of_the_person_says_so(self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        record(workflow, dossier, officer)
        documents, _ = documents_for(db.session, [dossier.id], key())
        assert documents[0]["has_credit"] == "1"
        from kjdms.services.indexing import dossier_document
        db.session.expunge_all()
        fresh = db.session.get(Dossier, dossier.id)  # loaded without load_dossiers: asks the database itself
        assert dossier_document(fresh, key())["has_credit"] == "1"


def workflow_of():
    from kjdms.backends import get_workflow
    return get_workflow()


class TestPurge:
    def test_a_purge_keeps_the_credit_file_with_its_hashes_and_deletes_the_evidence_files(
            self, workflow, blobs, officer):
        dossier, _ = submitted(workflow, blobs)
        evidence = versions(dossier, "education_certificate")
        saved = record(workflow, dossier, officer, evidence=[version.id for version in evidence])
        hashes = sorted(version.sha256 for version in evidence)
        person_id, id_hash = dossier.person_id, id_number_hash(key(), dossier.person.id_number)
        administrator = staff("admin", "administrator", "210000")
        purge_dossier(db.session, workflow, blobs, dossier, administrator, "未按期确认", id_hash_key=key())
        db.session.expire_all()
        kept = db.session.get(CreditRecord, saved.id)
        assert kept is not None and kept.subject_name == "张伟" and kept.subject_id_hash == id_hash
        assert sorted(item["sha256"] for item in kept.evidence) == hashes
        assert kept.finding == FINDING
        person = db.session.get(Person, person_id)
        assert person is not None and person.id_number is None and person.name is None  # scrubbed, not deleted
        for sha256 in hashes:
            assert not blobs.exists(sha256)
        [chain] = credit_file(db.session, person_id)
        assert chain.live
        # Nobody can write to the purged person's file any more; reading it stays possible.
        with pytest.raises(PermissionDenied):
            revoke_record(db.session, workflow, db.session.get(Dossier, dossier.id), saved.id, officer,
                          reason="x", id_hash_key=key())
        assert credit.may_view(workflow, officer, db.session.get(Dossier, dossier.id))
