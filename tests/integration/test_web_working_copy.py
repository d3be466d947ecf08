"""Updating an approved dossier through a working copy (plone.app.iterate), through the pages."""
import re

import pytest
from sqlalchemy import func, select

from kjdms.extensions import db
from kjdms.models import Dossier
from kjdms.samples import sample_pdf
from kjdms.services.lifecycle import fire_transition
from kjdms.services.working_copy import open_working_copy
from tests.helpers import USCC_SHUANGTA, upload_required
from tests.webclient import basic_information, database_snapshot, decide, flashes, fresh, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

OLD_EMPLOYER = "朝阳市双塔区示范会计服务有限公司"
NEW_EMPLOYER = "朝阳市双塔区新华会计师事务所有限公司"


@pytest.fixture
def approved(people, workflow, blobs):
    """The people fixture's dossier, submitted by its owner and approved by the 双塔区 reviewer."""
    dossier = people["dossier"]
    upload_required(workflow, blobs, dossier, people["owner"])
    fire_transition(db.session, workflow, dossier, "submit", people["owner"])
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    return dossier


@pytest.fixture
def owner(auth, approved):
    return auth("owner")


def working_copy(baseline_id) -> Dossier | None:
    db.session.expire_all()
    return open_working_copy(db.session, db.session.get(Dossier, baseline_id))


def dossiers() -> int:
    return db.session.scalar(select(func.count()).select_from(Dossier))


def change_employer(browser):
    """Start a change, give the new employer and a newly signed form, as the person does."""
    response = browser.submit("/me/change", page="/me/")
    assert response.status_code == 302 and response.headers["Location"] == "/me/edit"
    assert browser.submit("/me/edit", basic_information(employer_name=NEW_EMPLOYER,
                                                        job_types=["cashier"])).status_code == 302
    assert browser.upload("basic_info_form", sample_pdf("signed again"), "基本信息表-变更.pdf").status_code == 302


def diff_rows(response) -> dict[str, list[str]]:
    """Return the change table: label -> the cells after it."""
    table = text(response).split("本次变更内容")[1].split("</table>")[0]
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


class TestStartAndEdit:
    def test_the_status_page_offers_a_change_once_approved(self, owner):
        assert "信息发生变化，申请变更" in text(owner.get("/me/"))

    def test_starting_a_change_opens_a_draft_copy_and_leaves_the_dossier_alone(self, owner, approved):
        before = fresh(Dossier, approved.id).lock_version
        response = owner.submit("/me/change", page="/me/")
        assert response.status_code == 302
        copy = working_copy(approved.id)
        assert copy.state == "draft" and copy.employer_name == OLD_EMPLOYER
        assert fresh(Dossier, approved.id).state == "approved" and fresh(Dossier, approved.id).lock_version == before
        page = text(owner.get("/me/edit"))
        assert "已开始信息变更：审核确认前，原档案仍然有效。" in page and "（信息变更）" in page
        assert re.search(r'id="name"[^>]*readonly', page)

    def test_starting_twice_keeps_one_copy(self, owner, approved):
        owner.submit("/me/change", page="/me/")
        count = dossiers()
        owner.submit("/me/change", page="/me/")
        assert dossiers() == count

    def test_a_change_cannot_start_before_approval(self, auth, people):
        browser = auth("owner")
        before = database_snapshot()
        browser.submit("/me/change", page="/me/")
        assert flashes(browser.get("/me/")) == ["档案审核确认后才能申请信息变更"]
        assert database_snapshot() == before

    def test_edits_go_to_the_copy_and_the_name_stays(self, owner, approved):
        change_employer(owner)
        owner.submit("/me/edit", basic_information(name="王五", employer_name=NEW_EMPLOYER, job_types=["cashier"]))
        copy = working_copy(approved.id)
        assert copy.employer_name == NEW_EMPLOYER
        assert fresh(Dossier, approved.id).employer_name == OLD_EMPLOYER
        assert copy.person.name == "张伟"

    def test_the_status_page_shows_the_change_beside_the_effective_information(self, owner):
        change_employer(owner)
        page = text(owner.get("/me/"))
        assert f"<tr><th>工作单位</th><td>{OLD_EMPLOYER}</td></tr>" in page
        assert f"<tr><td>工作单位名称</td>\n          <td>{OLD_EMPLOYER}</td><td>{NEW_EMPLOYER}</td></tr>" in page
        assert "新上传文件" in page and ">取消变更</button>" in page

    def test_the_documents_page_works_on_the_copy(self, owner, approved):
        change_employer(owner)
        page = text(owner.get("/me/documents"))
        assert "（信息变更）" in page and "基本信息表-变更.pdf" in page
        assert [v.number for v in working_copy(approved.id).attachment("basic_info_form").versions] == [1, 2]
        assert len(fresh(Dossier, approved.id).attachment("basic_info_form").versions) == 1


class TestReviewAndCheckIn:
    @pytest.fixture
    def change_submitted(self, owner, approved):
        change_employer(owner)
        assert owner.fire("submit").status_code == 302
        return working_copy(approved.id)

    def test_while_submitted_the_effective_dossier_keeps_the_old_employer(self, owner, approved, change_submitted):
        assert change_submitted.state == "submitted"
        effective = fresh(Dossier, approved.id)
        assert effective.state == "approved" and effective.employer_name == OLD_EMPLOYER
        assert f"<tr><th>工作单位</th><td>{OLD_EMPLOYER}</td></tr>" in text(owner.get("/me/"))

    def test_the_reviewer_finds_the_change_in_the_queue(self, auth, change_submitted):
        page = text(auth("reviewer").get("/review/"))
        assert f'href="/review/{change_submitted.id}"' in page and "信息变更</span>" in page
        assert NEW_EMPLOYER in page

    def test_the_reviewer_sees_a_field_by_field_diff(self, auth, approved, change_submitted):
        response = auth("reviewer").get(f"/review/{change_submitted.id}")
        rows = diff_rows(response)
        assert rows["工作单位名称"] == [OLD_EMPLOYER, NEW_EMPLOYER]
        old_version = fresh(Dossier, approved.id).attachment("basic_info_form").current
        new_version = change_submitted.attachment("basic_info_form").current
        assert rows["基本信息表"] == [f"第{old_version.number}版", f"第{new_version.number}版（新文件）"]
        assert set(rows) == {"工作单位名称", "基本信息表"}
        assert f'href="/files/{old_version.id}">第{old_version.number}版</a>' in text(response)

    def test_approving_checks_the_change_in(self, auth, approved, change_submitted, blobs):
        copy_id = change_submitted.id
        new_sha = change_submitted.attachment("basic_info_form").current.sha256
        assert decide(auth("reviewer"), copy_id, "approve").status_code == 302
        effective = fresh(Dossier, approved.id)
        assert effective.state == "approved" and effective.employer_name == NEW_EMPLOYER
        assert effective.employer_uscc == USCC_SHUANGTA
        form_versions = effective.attachment("basic_info_form").versions
        assert [v.number for v in form_versions] == [1, 2] and form_versions[-1].sha256 == new_sha
        assert blobs.read(form_versions[0].sha256)  # the earlier version is still there
        assert [row.action for row in effective.history] == ["submit", "approve", "check_in"]
        copy = fresh(Dossier, copy_id)
        assert copy.checked_in_at is not None and [row.action for row in copy.history] == ["submit", "approve"]
        assert working_copy(approved.id) is None

    def test_after_check_in_the_owner_sees_the_new_information_and_the_whole_history(self, auth, owner, approved,
                                                                                      change_submitted):
        decide(auth("reviewer"), change_submitted.id, "approve", comment="同意变更")
        page = text(owner.get("/me/"))
        assert f"<tr><th>工作单位</th><td>{NEW_EMPLOYER}</td></tr>" in page
        assert "信息发生变化，申请变更" in page and "取消变更" not in page
        history = page.split("办理记录")[1]
        assert re.findall(r'<td data-label="操作" class="text-nowrap">(\w+)</td>', history) == [
            "信息变更并入", "审核确认", "提交审核", "审核确认", "提交审核"]
        assert "同意变更" in history

    def test_a_checked_in_copy_cannot_be_decided_again(self, auth, change_submitted):
        browser = auth("reviewer")
        page = browser.get(f"/review/{change_submitted.id}")
        decide(browser, change_submitted.id, "approve", page=page)
        before = database_snapshot()
        response = decide(browser, change_submitted.id, "reject", comment="再退回", page=browser.get(
            f"/review/{change_submitted.id}"))
        assert response.status_code == 422
        assert database_snapshot() == before

    def test_a_rejected_change_goes_back_to_the_owner_and_the_dossier_stays_effective(self, auth, owner, approved,
                                                                                       change_submitted):
        decide(auth("reviewer"), change_submitted.id, "reject", comment="请上传新单位的代码证",
               fields=["attachment:employer_certificate"])
        assert "请上传新单位的代码证" in text(owner.get("/me/"))
        owner.fire("revise")
        assert working_copy(approved.id).state == "draft"
        assert fresh(Dossier, approved.id).employer_name == OLD_EMPLOYER

    def test_a_reviewer_of_another_region_cannot_see_the_change(self, auth, change_submitted):
        browser = auth("other_reviewer")
        assert browser.get(f"/review/{change_submitted.id}").status_code == 404
        assert NEW_EMPLOYER not in text(browser.get("/review/"))


class TestCancel:
    def test_cancel_in_draft_drops_the_copy(self, owner, approved):
        change_employer(owner)
        count = dossiers()
        response = owner.submit("/me/change/cancel", page="/me/")
        assert response.status_code == 302
        assert "已取消信息变更" in text(owner.get("/me/"))
        assert working_copy(approved.id) is None and dossiers() == count - 1
        effective = fresh(Dossier, approved.id)
        assert effective.employer_name == OLD_EMPLOYER and len(effective.attachment("basic_info_form").versions) == 1

    def test_cancel_is_refused_once_submitted(self, owner, approved):
        change_employer(owner)
        owner.fire("submit")
        before = database_snapshot()
        owner.submit("/me/change/cancel", page="/me/")
        assert flashes(owner.get("/me/")) == ["只有本人可以在提交前取消信息变更"]
        assert database_snapshot() == before

    def test_cancel_without_a_copy_is_not_found(self, owner):
        assert owner.submit("/me/change/cancel", page="/me/").status_code == 404
