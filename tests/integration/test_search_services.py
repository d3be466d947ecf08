"""The index follows the database: outbox rows in the same transaction, drained after commit, scoped search."""
import pytest
from sqlalchemy import func, select, update

from kjdms.backends import get_config, get_drainer, get_search_index, get_workflow
from kjdms.extensions import db
from kjdms.models import TEXT_DONE, TEXT_FAILED, TEXT_PENDING, AttachmentVersion, Dossier, IndexOutbox, Region
from kjdms.samples import sample_pdf
from kjdms.services.attachments import add_attachment_version
from kjdms.services.dossiers import update_basic_information
from kjdms.services.indexing import queued_count
from kjdms.services.lifecycle import fire_transition, purge_dossier
from kjdms.services.search import search_dossiers
from kjdms.services.text_extraction import extract_pending
from kjdms.services.working_copy import start_working_copy
from kjdms.permissions import SYSTEM
from tests.helpers import BOTH_SEARCH_INDEXES, CommitFailed, applicant, fail_next_commit, make_id_number, staff, upload_required

pytestmark = BOTH_SEARCH_INDEXES


def find(user, text="", **options):
    """Search as user through the service the page uses."""
    return search_dossiers(db.session, get_search_index(), get_workflow(), user, text,
                           id_hash_key=get_config().ID_HASH_KEY, **options)


def names(page):
    return sorted(hit.dossier.person.name for hit in page.hits)


@pytest.fixture
def reviewer(app):
    return staff("reviewer_shuangta", "reviewer", "211302")


def test_a_change_queues_an_outbox_row_in_its_transaction_and_is_searchable_after_commit(app, reviewer):
    dossier, _ = applicant(name="欧阳娜娜")
    assert db.session.scalar(select(func.count()).select_from(IndexOutbox)
                             .where(IndexOutbox.dossier_id == dossier.id)) >= 1
    assert queued_count(db.session) == 0  # drained right after the commit
    assert names(find(reviewer, "欧阳")) == ["欧阳娜娜"]


def test_a_failed_commit_queues_nothing_and_indexes_nothing(app, reviewer, monkeypatch):
    fail_next_commit(monkeypatch)
    with pytest.raises(CommitFailed):
        applicant(name="司马相如")
    assert db.session.scalar(select(func.count()).select_from(IndexOutbox)) == 0
    assert find(reviewer, "司马").total == 0


def test_an_index_failure_after_commit_keeps_the_row_to_retry(app, reviewer, monkeypatch):
    index = get_search_index()
    real_write = index.write

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(index, "write", broken)
    dossier, _ = applicant(name="诸葛亮")  # the commit itself succeeds
    assert db.session.get(Dossier, dossier.id) is not None
    row = db.session.scalars(select(IndexOutbox).where(IndexOutbox.indexed_at.is_(None))).first()
    assert row.attempts == 1 and "disk full" in row.last_error
    monkeypatch.setattr(index, "write", real_write)
    assert find(reviewer, "诸葛").total == 0
    assert get_drainer().drain() >= 1
    assert names(find(reviewer, "诸葛")) == ["诸葛亮"]
    assert queued_count(db.session) == 0


def test_updates_replace_the_entry_and_a_purge_removes_it(app, workflow, blobs, reviewer):
    dossier, owner = applicant(name="王小明")
    update_basic_information(db.session, workflow, dossier, {"employer_name": "朝阳市燕都会计师事务所"}, owner)
    assert names(find(reviewer, "燕都会计")) == ["王小明"]
    assert find(reviewer, "示范会计").total == 0  # the employer it had before
    dossier.person.name = "王晓明"
    db.session.commit()
    assert names(find(reviewer, "晓明")) == ["王晓明"] and find(reviewer, "小明").total == 0
    administrator = staff("admin", "administrator", "210000")
    purge_dossier(db.session, workflow, blobs, dossier, administrator, "未按期确认",
                  id_hash_key=get_config().ID_HASH_KEY)
    assert find(administrator, "晓明").total == 0
    assert get_search_index().doc_count() == 0


def test_a_checked_in_working_copy_leaves_the_index(app, workflow, blobs, reviewer):
    dossier, owner = applicant(name="赵敏")
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    fire_transition(db.session, workflow, dossier, "approve", reviewer)
    copy = start_working_copy(db.session, workflow, dossier, owner)
    kinds = sorted(hit.dossier.is_working_copy for hit in find(reviewer, "赵敏").hits)
    assert kinds == [False, True]
    upload_required(workflow, blobs, copy, owner, seed=1)
    fire_transition(db.session, workflow, copy, "submit", owner)
    fire_transition(db.session, workflow, copy, "approve", reviewer)
    assert [hit.dossier.id for hit in find(reviewer, "赵敏").hits] == [dossier.id]


def test_full_id_numbers_are_found_exactly_and_prefixes_or_wildcards_find_nothing(app, reviewer):
    number = make_id_number()
    applicant(name="李娜", id_number=number)
    applicant(name="李雷")
    assert names(find(reviewer, number)) == ["李娜"]
    assert names(find(reviewer, number.lower())) == ["李娜"]
    assert names(find(reviewer, f"李 {number}")) == ["李娜"]
    for probe in (number[:6], number[:10], number[:17], number[:10] + "*", "2113*", "211302?", number[1:]):
        assert find(reviewer, probe).total == 0, probe


def test_scope_keeps_other_regions_out_of_hits_totals_and_facets(app, reviewer):
    applicant(name="张伟")
    applicant(name="张伟明", region_code="211303")
    longcheng = staff("reviewer_longcheng", "reviewer", "211303")
    city = staff("reviewer_chaoyang", "reviewer", "211300")
    mine = find(reviewer, "张伟")
    assert names(mine) == ["张伟"] and mine.total == 1
    assert sum(value.count for value in mine.facets["region"]) == 1
    assert sum(value.count for value in mine.facets["state"]) == 1
    assert names(find(longcheng, "张伟")) == ["张伟明"]
    assert names(find(city, "张伟")) == ["张伟", "张伟明"]
    assert find(reviewer, "").total == 1  # the empty query lists the scope, no more


def test_each_role_searches_the_states_it_may_view(app, workflow, blobs, reviewer):
    draft, _ = applicant(name="孙丽")
    approved, owner = applicant(name="孙红")
    upload_required(workflow, blobs, approved, owner)
    fire_transition(db.session, workflow, approved, "submit", owner)
    fire_transition(db.session, workflow, approved, "approve", reviewer)
    archivist = staff("archivist_chaoyang", "archivist", "211300")
    credit = staff("credit_chaoyang", "credit_officer", "211300")
    assert names(find(reviewer, "孙")) == ["孙丽", "孙红"]
    assert names(find(archivist, "孙")) == ["孙红"]  # approved and archived only
    assert names(find(credit, "孙")) == ["孙红"]  # not drafts
    assert find(owner, "孙").total == 0  # applicants have no search scope
    facets = find(archivist, "孙").facets["state"]
    assert [(value.value, value.count) for value in facets] == [("approved", 1)]


def test_facet_filters_narrow_results_and_unknown_values_are_ignored(app, workflow, blobs, reviewer):
    for index, level in enumerate(["junior", "junior", "intermediate"]):
        applicant(name=f"钱{'一二三'[index]}", qualification_level=level,
                  qualification_certificate_number=f"Z2019{index:03d}")
    assert names(find(reviewer, "钱", filters={"qualification": "junior"})) == ["钱一", "钱二"]
    counts = {value.value: value.count for value in find(reviewer, "钱").facets["qualification"]}
    assert counts == {"junior": 2, "intermediate": 1}
    assert find(reviewer, "钱", filters={"qualification": "'; DROP TABLE"}).total == 3
    assert find(reviewer, "钱", filters={"state": "purged"}).total == 0
    assert find(reviewer, "钱", filters={"region": "999999"}).total == 3


def test_a_stale_hit_is_dropped_by_the_database_check_and_repaired(app, reviewer):
    dossier, _ = applicant(name="周杰")
    longcheng = db.session.scalar(select(Region.id).where(Region.code == "211303"))
    # Behind the outbox's back (a Core UPDATE queues nothing): the index still says 双塔区.
    db.session.execute(update(Dossier).where(Dossier.id == dossier.id).values(region_id=longcheng))
    db.session.commit()
    db.session.expire_all()
    assert find(reviewer, "周杰").hits == []
    assert find(reviewer, "周杰").total == 0  # the entry was rewritten on the way


def test_text_is_extracted_after_the_upload_and_found(app, workflow, blobs, reviewer):
    dossier, owner = applicant(name="吴刚")
    version = add_attachment_version(db.session, workflow, blobs, dossier, "qualification_certificate",
                                     sample_pdf("Certificate KJZ20190815 issued"), owner, filename="cert.pdf")
    assert version.text_status == TEXT_PENDING  # the upload did not wait for it
    assert find(reviewer, "KJZ20190815").total == 0
    assert extract_pending(db.session, blobs, ocr=False) == 1
    db.session.refresh(version)
    assert version.text_status == TEXT_DONE and "KJZ20190815" in version.extracted_text
    page = find(reviewer, "kjz20190815")
    assert names(page) == ["吴刚"]
    assert any(matched for _, snippet in page.hits[0].attachment_snippets for _, matched in snippet)


def test_a_failed_extraction_is_recorded_and_never_blocks(app, workflow, blobs, reviewer):
    dossier, owner = applicant(name="郑和")
    version = add_attachment_version(db.session, workflow, blobs, dossier, "other",
                                     sample_pdf("x"), owner, filename="x.pdf")
    blobs.delete(version.sha256)
    assert extract_pending(db.session, blobs, ocr=False) == 1
    db.session.refresh(version)
    assert version.text_status == TEXT_FAILED and "文件缺失" in version.text_error
    assert db.session.scalar(select(func.count()).select_from(AttachmentVersion)
                             .where(AttachmentVersion.text_status == TEXT_PENDING)) == 0


def test_pagination_and_date_sort(app, reviewer):
    for number in range(23):
        applicant(name="冯" + "甲乙丙丁戊己庚辛壬癸"[number % 10] + "子丑寅"[number // 10])
    first, last = find(reviewer, "冯", page=1), find(reviewer, "冯", page=2)
    assert first.total == 23 and first.pages == 2 and len(first.hits) == 20 and len(last.hits) == 3
    assert not {hit.dossier.id for hit in first.hits} & {hit.dossier.id for hit in last.hits}
    assert find(reviewer, "冯", page=99).page == 2
    by_date = find(reviewer, "冯", sort="date").hits
    changed = [hit.dossier.state_changed_at for hit in by_date]
    assert changed == sorted(changed, reverse=True)


@pytest.mark.parametrize("typed", ["*", "?", "name:张", "\"张", "(张 OR 王)", "张" * 500, "\x00\x1f",
                                   "！！！", "AND", "NOT 张", "张~2", "[a TO z]", "  "])
def test_whatever_is_typed_gives_results_or_nothing_never_an_error(app, reviewer, typed):
    applicant(name="张三")
    page = find(reviewer, typed)
    assert page.total >= 0


def test_the_system_actor_and_inactive_users_have_no_scope(app, reviewer):
    applicant(name="陈红")
    reviewer.is_active = False
    db.session.commit()
    assert find(reviewer, "陈红").total == 0
    assert find(SYSTEM, "陈红").total == 0
