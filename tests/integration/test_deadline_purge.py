"""kjdms purge-expired: which dossiers the deadline purge takes, what it leaves, and how it stops and resumes."""
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from kjdms.backends import get_blob_store, get_config, get_drainer, get_search_index, get_workflow
from kjdms.extensions import db
from kjdms.models import (AttachmentVersion, AuditEvent, CreditRecord, Dossier, DossierRevision, LoginFailure,
                          Person, Tombstone, User, utcnow)
from kjdms.samples import sample_pdf
from kjdms.services import deadline_purge, login_throttle
from kjdms.services.attachments import add_attachment_version
from kjdms.services.credit import record_finding
from kjdms.services.deadline_purge import (CLEANUP, DEADLINE_REASON, RUN_COMPLETE, RUN_PARTIAL, deadline_passed,
                                           expired_dossiers, local_date, purge_expired, purge_expired_due)
from kjdms.services.dossiers import register_person
from kjdms.services.identity import id_number_hash
from kjdms.services.lifecycle import DEADLINE_LEGAL_BASIS, fire_transition
from kjdms.services.search import operator_grants, search_dossiers
from tests.helpers import applicant, complete_fields, make_id_number, staff, upload_required

IMPORTED_BEFORE = timedelta(days=3)


def cli(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["purge-expired", *args], input=input, catch_exceptions=False)


@pytest.fixture
def deadline(app):
    """A deadline that ended yesterday in Beijing: today is the first day the purge may run."""
    day = local_date(utcnow()) - timedelta(days=1)
    get_config().CONFIRMATION_DEADLINE = day
    return day


def legacy(name, *, upload=True, imported_ago=IMPORTED_BEFORE, seed=0, **fields):
    """Import a person of the old system (a draft to confirm, no password yet); return (dossier, owner)."""
    dossier = register_person(db.session, name=name, id_number=make_id_number(), is_legacy=True, to_confirm=True,
                              **complete_fields(legacy_certificate_number="211302200300123", **fields))
    owner = dossier.person.user
    if upload:
        upload_required(get_workflow(), get_blob_store(), dossier, owner, seed=seed)
    dossier.created_at = utcnow() - imported_ago
    db.session.commit()
    return dossier, owner


def state_of(dossier_id):
    db.session.expire_all()
    return db.session.get(Dossier, dossier_id).state


def database_rows() -> dict:
    """Return every row of every table, to compare the whole database before and after."""
    db.session.expire_all()
    rows = {}
    for table in db.metadata.sorted_tables:
        ordered = table.select().order_by(*table.primary_key.columns)
        rows[table.name] = [tuple(row) for row in db.session.execute(ordered).all()]
    return rows


def storage() -> tuple:
    """Return the blobs stored and the index's entries."""
    return sorted(get_blob_store().iter_hashes()), get_search_index().stamps()


def find(text):
    workflow = get_workflow()
    page = search_dossiers(db.session, get_search_index(), workflow, None, text,
                           id_hash_key=get_config().ID_HASH_KEY, grants=operator_grants(db.session, workflow))
    return [hit.dossier.id for hit in page.hits]


def run_purge(**options):
    return purge_expired(db.session, get_workflow(), get_blob_store(), get_search_index(), get_drainer().drain,
                         id_hash_key=get_config().ID_HASH_KEY, deadline=get_config().CONFIRMATION_DEADLINE,
                         **options)


def run_events(action):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


# -- the deadline ------------------------------------------------------------------------------

@pytest.mark.parametrize("moment, passed", [
    (datetime(2020, 12, 31, 15, 59, 59, tzinfo=timezone.utc), False),  # 23:59:59 on the deadline in Beijing
    (datetime(2020, 12, 31, 16, 0, 0, tzinfo=timezone.utc), True),  # 00:00 on 2021-01-01 in Beijing
    (datetime(2020, 12, 31, 8, 0, 0, tzinfo=timezone.utc), False),
    (datetime(2021, 6, 1, tzinfo=timezone.utc), True),
])
def test_the_deadline_passes_at_midnight_beijing_time(moment, passed):
    assert deadline_passed(date(2020, 12, 31), moment) is passed


def test_before_the_deadline_has_passed_nothing_is_purged(app):
    dossier, _ = legacy("张伟")
    get_config().CONFIRMATION_DEADLINE = local_date(utcnow())  # ends tonight in Beijing
    before = database_rows()
    result = cli(app, "--yes")
    assert result.exit_code == 0
    assert "尚未届满" in result.output and "未做任何处理" in result.output
    assert database_rows() == before
    assert expired_dossiers(db.session, get_config().CONFIRMATION_DEADLINE) == []


def test_the_default_deadline_is_the_notices(app):
    assert get_config().CONFIRMATION_DEADLINE == date(2020, 12, 31)


# -- which dossiers ------------------------------------------------------------------------------

@pytest.fixture
def cast(app, deadline):
    """Legacy persons in every situation, and a new registrant."""
    workflow = get_workflow()
    reviewer = staff("reviewer_shuangta", "reviewer", "211302")
    expired, _ = legacy("张伟", seed=1)
    confirmed, owner = legacy("王芳", seed=2)
    fire_transition(db.session, workflow, confirmed, "submit", owner)
    rejected, owner = legacy("李娜", seed=3)
    fire_transition(db.session, workflow, rejected, "submit", owner)
    fire_transition(db.session, workflow, rejected, "reject", reviewer, "学历证书不清晰")
    approved, owner = legacy("刘洋", seed=4)
    fire_transition(db.session, workflow, approved, "submit", owner)
    fire_transition(db.session, workflow, approved, "approve", reviewer)
    retracted, owner = legacy("陈静", seed=5)
    fire_transition(db.session, workflow, retracted, "submit", owner)
    fire_transition(db.session, workflow, retracted, "retract", owner)
    late_import, _ = legacy("杨帆", seed=6, imported_ago=timedelta(0))
    newcomer, owner = applicant(name="赵磊")
    newcomer.created_at = utcnow() - IMPORTED_BEFORE
    db.session.commit()
    return {"expired": expired, "confirmed": confirmed, "rejected": rejected, "approved": approved,
            "retracted": retracted, "late_import": late_import, "newcomer": newcomer}


def test_only_the_never_confirmed_legacy_dossiers_are_chosen(cast, deadline):
    chosen = {dossier.id for dossier in expired_dossiers(db.session, deadline)}
    # A rejected person did confirm: the rejection is the department's review, not their failure to confirm.
    # A retraction before any approval takes the confirmation back (services.lifecycle).
    assert chosen == {cast["expired"].id, cast["retracted"].id}


def test_the_purge_leaves_confirmed_new_and_late_imported_dossiers_alone(app, cast):
    spared = ("confirmed", "rejected", "approved", "late_import", "newcomer")
    before = {name: (cast[name].state, cast[name].person.name, cast[name].lock_version) for name in spared}
    result = cli(app, "--yes")
    assert result.exit_code == 0, result.output
    assert "已删除 2 份，跳过 0 份" in result.output
    assert "另有 1 份原系统档案在期限届满后才导入，不予删除" in result.output
    db.session.expire_all()
    assert {name: (cast[name].state, cast[name].person.name, cast[name].lock_version) for name in spared} == before
    assert state_of(cast["expired"].id) == state_of(cast["retracted"].id) == "purged"


# -- dry run and the prompt -------------------------------------------------------------------------

def test_dry_run_lists_the_dossiers_and_changes_nothing(app, cast):
    expired = cast["expired"]
    id_number = expired.person.id_number
    before, stored = database_rows(), storage()
    result = cli(app, "--dry-run")
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if line.startswith(expired.number))
    assert line.split("\t") == [expired.number, id_number[:4] + "*" * 10 + id_number[-4:], "张伟",
                                "辽宁省 / 朝阳市 / 双塔区"]
    assert id_number not in result.output
    assert "逾期" in result.output and "：2 份" in result.output and "试运行：未做任何修改" in result.output
    assert database_rows() == before
    assert storage() == stored


def test_answering_no_at_the_prompt_changes_nothing(app, cast):
    before, stored = database_rows(), storage()
    result = cli(app, input="n\n")
    assert result.exit_code == 1
    assert "确定删除？" in result.output and "已取消，未做任何修改" in result.output
    assert database_rows() == before
    assert storage() == stored


def test_an_empty_answer_is_no(app, cast):
    before = database_rows()
    assert cli(app, input="\n").exit_code == 1
    assert database_rows() == before


def test_answering_yes_purges(app, cast):
    result = cli(app, input="y\n")
    assert result.exit_code == 0, result.output
    assert "删除以上 2 份档案的个人信息和证明材料，不可恢复" in result.output
    assert state_of(cast["expired"].id) == "purged"


def test_nothing_expired_needs_no_confirmation(app, deadline):
    legacy("王芳", imported_ago=timedelta(0))
    result = cli(app)
    assert result.exit_code == 0
    assert "：0 份" in result.output and "确定删除" not in result.output


# -- what a purge removes and keeps ----------------------------------------------------------------

def test_the_tombstone_holds_the_keyed_hash_and_the_legal_basis(app, deadline):
    dossier, _ = legacy("张伟")
    id_number = dossier.person.id_number
    cli(app, "--yes")
    tombstone = db.session.scalars(select(Tombstone)).one()
    assert tombstone.dossier_id == dossier.id
    assert tombstone.id_number_hash == id_number_hash(get_config().ID_HASH_KEY, id_number)
    assert (tombstone.actor_label, tombstone.legal_basis, tombstone.reason) == (
        "system", DEADLINE_LEGAL_BASIS, DEADLINE_REASON)
    assert id_number not in json.dumps([str(getattr(tombstone, column.key)) for column in Tombstone.__table__.columns])


def test_personal_data_attachments_account_and_revisions_go(app, deadline):
    dossier, owner = legacy("张伟")
    dossier_id, person_id, owner_id = dossier.id, dossier.person_id, owner.id
    versions = db.session.scalar(select(func.count()).select_from(AttachmentVersion))
    assert versions == 3 and db.session.scalar(select(func.count()).select_from(DossierRevision)) >= 1
    cli(app, "--yes")
    db.session.expire_all()
    person, dossier = db.session.get(Person, person_id), db.session.get(Dossier, dossier_id)
    assert (person.id_number, person.name, person.sex, person.birth_date) == (None, None, None, None)
    assert (dossier.employer_name, dossier.phone, dossier.legacy_certificate_number, dossier.attachments) == (
        None, None, None, [])
    assert db.session.scalar(select(func.count()).select_from(AttachmentVersion)) == 0  # with their extracted text
    assert db.session.get(User, owner_id) is None
    assert list(get_blob_store().iter_hashes()) == []
    [revision] = db.session.scalars(select(DossierRevision).filter_by(dossier_id=dossier_id)).all()
    assert revision.state == "purged" and revision.fields["name"] is None and revision.attachments == {}


def test_a_blob_another_dossier_shares_survives(app, deadline):
    shared = sample_pdf("the same scanned form")
    dossier, owner = legacy("张伟")
    other, other_owner = applicant(name="王芳")
    for target, actor in ((dossier, owner), (other, other_owner)):
        add_attachment_version(db.session, get_workflow(), get_blob_store(), target, "basic_info_form", shared, actor,
                               filename="表.pdf")
    other_version = other.attachment("basic_info_form").current
    cli(app, "--yes")
    assert list(get_blob_store().iter_hashes()) == [other_version.sha256]
    assert get_blob_store().read(other_version.sha256) == shared


def test_purged_dossiers_vanish_from_search(app, deadline):
    dossier, _ = legacy("欧阳明月", employer_name="朝阳市凌河会计服务有限公司")
    id_number = dossier.person.id_number
    kept, _ = applicant(name="欧阳明日")
    assert find("欧阳明月") == [dossier.id]
    assert find(id_number) == [dossier.id]
    assert find("凌河会计") == [dossier.id]
    cli(app, "--yes")
    assert find("欧阳明月") == [] and find(id_number) == [] and find("凌河会计") == []
    assert find("欧阳明日") == [kept.id]  # the index still works for everyone else
    assert dossier.id not in get_search_index().stamps()


def test_login_failures_of_the_person_go(app, deadline):
    dossier, _ = legacy("张伟")
    key = get_config().ID_HASH_KEY
    login_throttle.record_failure(db.session, key, dossier.person.id_number, "198.51.100.4")
    account = id_number_hash(key, f"account:{dossier.person.id_number}")
    assert db.session.scalar(select(func.count()).select_from(LoginFailure).filter_by(key=account)) == 1
    cli(app, "--yes")
    assert db.session.scalar(select(func.count()).select_from(LoginFailure).filter_by(key=account)) == 0


def test_the_audit_events_of_the_purge_hold_no_values(app, deadline):
    dossier, _ = legacy("张伟", employer_name="朝阳市凌河会计服务有限公司")
    values = [dossier.person.id_number, "张伟", "凌河", dossier.phone, dossier.legacy_certificate_number]
    first_event = db.session.scalar(select(func.max(AuditEvent.id)))
    cli(app, "--yes")
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.id > first_event)).all()
    assert {event.action for event in events} == {"workflow.purge", CLEANUP, RUN_COMPLETE}
    stored = json.dumps([[event.actor_label, event.object_type, event.detail] for event in events], ensure_ascii=False)
    assert not [value for value in values if value in stored]
    [complete] = run_events(RUN_COMPLETE)
    assert complete.detail == {"purged": 1, "skipped": 0, "interrupted": False, "cleaned": True}


def test_the_credit_file_outlives_the_purge(app, deadline):
    """A legacy person recorded while submitted, who then retracted and never confirmed again."""
    workflow = get_workflow()
    dossier, owner = legacy("张伟")
    fire_transition(db.session, workflow, dossier, "submit", owner)
    officer = staff("credit_chaoyang", "credit_officer", "211300")
    evidence = dossier.attachment("education_certificate").current
    evidence_sha256 = evidence.sha256
    record = record_finding(db.session, workflow, dossier, officer, kind="falsified_information",
                            finding="学历证书系伪造", evidence=[evidence.id], found_on=local_date(utcnow()),
                            id_hash_key=get_config().ID_HASH_KEY)
    fire_transition(db.session, workflow, dossier, "retract", owner)
    columns = [column.key for column in CreditRecord.__table__.columns]
    before = {column: getattr(record, column) for column in columns}
    result = cli(app, "--yes")
    assert "已删除 1 份" in result.output
    db.session.expire_all()
    [kept] = db.session.scalars(select(CreditRecord)).all()
    assert {column: getattr(kept, column) for column in columns} == before
    assert kept.evidence[0]["sha256"] == evidence_sha256 and kept.subject_name == "张伟"
    assert not get_blob_store().exists(evidence_sha256)  # the credit file keeps the hash, not the file


# -- one transaction per dossier: interrupted, resumed, raced -------------------------------------

def test_an_interrupted_run_keeps_what_it_finished_and_the_next_run_does_the_rest(app, deadline, monkeypatch):
    dossiers = [legacy(name, seed=seed)[0] for seed, name in enumerate(["张伟", "王芳", "李娜"])]
    real, calls = deadline_purge.purge_dossier, []

    def purge_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("operator pressed Ctrl+C")
        return real(*args, **kwargs)

    monkeypatch.setattr(deadline_purge, "purge_dossier", purge_then_interrupt)
    result = cli(app, "--yes")
    assert result.exit_code == 130
    assert "已删除 1 份" in result.output and "已中断" in result.output
    assert [state_of(dossier.id) for dossier in dossiers] == ["purged", "draft", "draft"]
    assert db.session.get(Dossier, dossiers[1].id).person.name == "王芳"
    assert [event.detail["purged"] for event in run_events(RUN_PARTIAL)] == [1]

    monkeypatch.setattr(deadline_purge, "purge_dossier", real)
    result = cli(app, "--yes")
    assert result.exit_code == 0 and "已删除 2 份，跳过 0 份" in result.output
    assert [state_of(dossier.id) for dossier in dossiers] == ["purged"] * 3
    assert db.session.scalar(select(func.count()).select_from(Tombstone)) == 3
    assert get_search_index().doc_count() == 0


def test_a_crash_mid_run_leaves_the_cleanup_to_the_next_run(app, deadline, monkeypatch):
    dossiers = [legacy(name, seed=seed)[0] for seed, name in enumerate(["张伟", "王芳"])]
    real, calls = deadline_purge.purge_dossier, []

    def purge_then_crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the machine lost power")
        return real(*args, **kwargs)

    monkeypatch.setattr(deadline_purge, "purge_dossier", purge_then_crash)
    with pytest.raises(RuntimeError):
        run_purge()
    assert run_events(CLEANUP) == [] and deadline_purge.needs_cleanup(db.session)
    monkeypatch.setattr(deadline_purge, "purge_dossier", real)
    run = run_purge()
    assert run.purged == [dossiers[1].id] and run.cleaned
    assert not deadline_purge.needs_cleanup(db.session)


def test_a_confirmation_after_the_listing_is_respected(app, deadline):
    dossier, owner = legacy("张伟")
    listed = [row.id for row in expired_dossiers(db.session, deadline)]
    fire_transition(db.session, get_workflow(), dossier, "submit", owner)  # confirmed while the operator read
    run = run_purge(dossier_ids=listed)
    assert run.purged == [] and run.skipped == [(dossier.id, "已确认或已删除")]
    assert state_of(dossier.id) == "submitted"


def test_limit_purges_part_and_records_the_run_as_partial(app, deadline):
    dossiers = [legacy(name, seed=seed)[0] for seed, name in enumerate(["张伟", "王芳", "李娜"])]
    result = cli(app, "--yes", "--limit", "2")
    assert "已删除 2 份" in result.output
    assert [state_of(dossier.id) for dossier in dossiers] == ["purged", "purged", "draft"]
    assert len(run_events(RUN_PARTIAL)) == 1 and run_events(RUN_COMPLETE) == []
    cli(app, "--yes", "--limit", "2")
    assert state_of(dossiers[2].id) == "purged" and len(run_events(RUN_COMPLETE)) == 1


def test_a_run_over_an_already_purged_dossier_skips_it(app, deadline):
    dossier, _ = legacy("张伟")
    run_purge()
    run = run_purge(dossier_ids=[dossier.id])
    assert run.purged == [] and run.skipped == [(dossier.id, "已确认或已删除")]
    assert db.session.scalar(select(func.count()).select_from(Tombstone)) == 1


# -- the worker's daily call ---------------------------------------------------------------------------

def due(**options):
    return purge_expired_due(db.session, get_workflow(), get_blob_store(), get_search_index(), get_drainer().drain,
                             id_hash_key=get_config().ID_HASH_KEY, deadline=get_config().CONFIRMATION_DEADLINE,
                             **options)


def test_the_worker_purges_in_batches_once_a_day(app, deadline):
    dossiers = [legacy(name, seed=seed)[0] for seed, name in enumerate(["张伟", "王芳"])]
    first = due(batch=1)
    assert first.purged == [dossiers[0].id] and not first.cleaned  # the cleanup waits for the last batch
    second = due(batch=1)
    assert second.purged == [dossiers[1].id] and second.cleaned
    assert due(batch=1) is None  # done for today
    assert len(run_events(RUN_COMPLETE)) == 1 and len(run_events(CLEANUP)) == 1
    assert get_search_index().doc_count() == 0
    tomorrow = utcnow() + timedelta(days=1)
    assert due(batch=1, now=tomorrow).purged == []  # a new day runs again, with nothing left


def test_the_worker_does_nothing_before_the_deadline_has_passed(app):
    legacy("张伟")
    get_config().CONFIRMATION_DEADLINE = local_date(utcnow())
    assert due() is None
    assert run_events(RUN_COMPLETE) == []


def test_the_worker_round_purges_only_when_chosen(app, deadline):
    from kjdms.worker import work_once

    dossier_id = legacy("张伟")[0].id
    db.session.remove()
    assert get_config().PURGE_IN_WORKER is False  # the default: it deletes without asking anyone
    assert work_once(app).purged == 0
    assert state_of(dossier_id) == "draft"
    get_config().PURGE_IN_WORKER = True
    db.session.remove()
    assert work_once(app).purged == 1
    assert state_of(dossier_id) == "purged"
