"""The reviewer: a resubmission shown as a diff against the rejected submission, the list of own decisions,
histories that name the office and the role, staff lists that stack on a phone."""
import re

import pytest

from kjdms.extensions import db
from kjdms.models import Dossier
from kjdms.samples import sample_pdf
from kjdms.services.lifecycle import fire_transition
from tests.helpers import applicant, upload_required
from tests.webclient import basic_information, decide, fresh, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

REASON = "工作单位名称与单位证明不一致；学历证书不清晰"
FLAGS = ["employer_name", "phone", "attachment:education_certificate"]


@pytest.fixture
def resubmitted(people, workflow, blobs, auth):
    """The owner's dossier: rejected with three flags, then submitted again through the pages with another job
    type and a new education certificate, the two flagged fields left as they were."""
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    assert decide(auth("reviewer"), dossier.id, "reject", comment=REASON, fields=FLAGS).status_code == 302
    person = auth("owner")
    person.fire("revise")
    assert person.submit("/me/edit", basic_information(
        employer_name="朝阳市双塔区示范会计服务有限公司", job_types=["cashier", "checking"])).status_code == 302
    assert person.upload("education_certificate", sample_pdf("学历证书 清晰版"), "学历证书.pdf").status_code == 302
    assert person.fire("submit").status_code == 302
    return fresh(Dossier, dossier.id)


def resubmission_box(page: str) -> str:
    return page.split('id="resubmission"')[1].split('<div class="row g-4">')[0]


class TestResubmissionDiff:
    def test_the_review_page_compares_with_the_rejected_submission(self, auth, resubmitted):
        page = text(auth("reviewer").get(f"/review/{resubmitted.id}"))
        box = resubmission_box(page)
        assert REASON in box and "退回时指出的项目：<strong>联系电话、工作单位名称、学历证书</strong>" in box
        assert "双塔区" in box and "审核人员" in box
        rows = re.findall(r'<tr class="table-warning"><td>(.*?)</td>', box, re.S)
        labels = [re.sub(r"<[^>]+>|退回时指出", "", row).strip() for row in rows]
        assert labels == ["会计工作岗位", "学历证书"]
        # The document row links the rejected version and the new one.
        assert "第1版" in box and "第2版（新文件）" in box
        # A flagged item left as it was is named under the table.
        assert "退回时指出但未改动的项目：联系电话、工作单位名称" in box

    def test_a_changed_field_shows_both_values(self, auth, resubmitted):
        box = resubmission_box(text(auth("reviewer").get(f"/review/{resubmitted.id}")))
        assert re.search(r"会计工作岗位</td>\s*<td>出纳</td><td>出纳、稽核</td>", box)

    def test_a_first_submission_has_no_comparison(self, auth, people, workflow, blobs):
        upload_required(workflow, blobs, people["dossier"], people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
        assert 'id="resubmission"' not in text(auth("reviewer").get(f"/review/{people['dossier'].id}"))

    def test_a_reviewer_of_another_region_sees_nothing(self, auth, resubmitted):
        assert auth("other_reviewer").get(f"/review/{resubmitted.id}").status_code == 404


@pytest.fixture
def resubmitted_change(people, workflow, blobs, auth):
    """A working copy of the owner's approved dossier (new employer, form signed again), rejected with two flags,
    then submitted again through the pages with a new phone number and an employer's certificate."""
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
    person = auth("owner")
    assert person.submit("/me/change", page="/me/").status_code == 302
    assert person.submit("/me/edit", basic_information(employer_name=NEW_EMPLOYER, job_types=["cashier"])
                         ).status_code == 302
    assert person.upload("basic_info_form", sample_pdf("form signed for the change"), "基本信息表.pdf").status_code == 302
    assert person.fire("submit").status_code == 302
    copy = person.working_dossier()
    assert decide(auth("reviewer"), copy.id, "reject", comment=CHANGE_REASON, fields=CHANGE_FLAGS).status_code == 302
    person.fire("revise")
    assert person.submit("/me/edit", basic_information(employer_name=NEW_EMPLOYER, job_types=["cashier"],
                                                       phone="13912345678")).status_code == 302
    assert person.upload("employer_certificate", sample_pdf("certificate of the new employer"),
                         "单位代码证.pdf").status_code == 302
    assert person.fire("submit").status_code == 302
    return fresh(Dossier, copy.id)


NEW_EMPLOYER = "朝阳市双塔区新华会计师事务所有限公司"
CHANGE_REASON = "联系电话无法接通；请上传新单位的代码证"
CHANGE_FLAGS = ["phone", "attachment:employer_certificate"]


class TestResubmittedChange:
    """A working copy resubmitted after a rejection is compared with the change as it was rejected."""

    def test_only_what_changed_since_the_rejection_is_compared(self, auth, resubmitted_change):
        # The comparison's own card: the whole change against the effective dossier follows it.
        box = resubmission_box(text(auth("reviewer").get(f"/review/{resubmitted_change.id}"))).split("本次变更内容")[0]
        assert CHANGE_REASON in box and "退回时指出的项目：<strong>联系电话、单位代码证</strong>" in box
        rows = re.findall(r'<tr class="table-warning"><td>(.*?)</td>', box, re.S)
        assert [re.sub(r"<[^>]+>|退回时指出", "", row).strip() for row in rows] == ["联系电话", "单位代码证"]
        assert re.search(r"联系电话 <span[^>]*>退回时指出</span></td>\s*<td>13904211234</td><td>13912345678</td>", box)
        # The new employer was already in the rejected change: it is no answer to the rejection.
        assert NEW_EMPLOYER not in box and "没有记录" not in box and "退回时指出但未改动" not in box

    def test_the_whole_change_against_the_effective_dossier_stays_below(self, auth, resubmitted_change):
        page = text(auth("reviewer").get(f"/review/{resubmitted_change.id}"))
        whole = page.split("本次变更内容")[1].split("</table>")[0]
        assert NEW_EMPLOYER in whole and "13912345678" in whole and "基本信息表" in whole

    def test_a_reviewer_of_another_region_sees_nothing(self, auth, resubmitted_change):
        assert auth("other_reviewer").get(f"/review/{resubmitted_change.id}").status_code == 404


class TestDecidedList:
    @pytest.fixture
    def decided(self, people, workflow, blobs):
        rows = {}
        for name, action in (("赵一", "approve"), ("钱二", "reject"), ("孙三", "approve")):
            dossier, owner = applicant(name=name)
            upload_required(workflow, blobs, dossier, owner)
            fire_transition(db.session, workflow, dossier, "submit", owner)
            comment = "学历证书不清晰" if action == "reject" else None
            fire_transition(db.session, workflow, dossier, action, people["reviewer"], comment,
                            flagged=["attachment:education_certificate"] if action == "reject" else ())
            rows[name] = dossier
        # Decided by someone else: not on the reviewer's list.
        other, other_owner = applicant(name="李四")
        upload_required(workflow, blobs, other, other_owner)
        fire_transition(db.session, workflow, other, "submit", other_owner)
        fire_transition(db.session, workflow, other, "approve", people["city_reviewer"])
        return rows

    def names(self, page: str) -> list[str]:
        return re.findall(r'<td data-label="姓名">([^<]+)</td>', page)

    def test_lists_my_decisions_newest_first(self, auth, decided):
        page = text(auth("reviewer").get("/review/decided"))
        assert self.names(page) == ["孙三", "钱二", "赵一"]
        assert "李四" not in page
        assert "全部 3" in page and "审核确认 2" in page and "退回 1" in page
        assert "学历证书不清晰" in page and "有问题的项目：学历证书" in page
        assert f'href="/review/{decided["钱二"].id}"' in page

    def test_narrows_to_one_decision(self, auth, decided):
        assert self.names(text(auth("reviewer").get("/review/decided?action=reject"))) == ["钱二"]
        assert self.names(text(auth("reviewer").get("/review/decided?action=forged"))) == ["孙三", "钱二", "赵一"]

    def test_a_dossier_no_longer_in_scope_is_listed_by_number_only(self, auth, people, decided):
        dossier = decided["赵一"]
        dossier.region = dossier.employer_region = dossier.household_region = None
        db.session.commit()
        page = text(auth("reviewer").get("/review/decided"))
        assert self.names(page) == ["孙三", "钱二", "（已不在您的权限范围内）"]
        assert dossier.number in page and "赵一" not in page
        assert f'href="/review/{dossier.id}"' not in page

    @pytest.mark.parametrize("who, status", [("credit_officer", 403), ("archivist", 403), ("owner", 403)])
    def test_only_reviewers_may_open_it(self, auth, who, status):
        assert auth(who).get("/review/decided").status_code == status

    def test_anonymous_visitors_are_sent_to_sign_in(self, client):
        response = client.get("/review/decided")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")

    def test_the_navigation_and_the_worklist_link_to_it(self, auth):
        page = text(auth("reviewer").get("/review/"))
        assert page.count('href="/review/decided"') == 2


def test_histories_name_the_office_and_the_role(auth, people, workflow, blobs):
    upload_required(workflow, blobs, people["dossier"], people["owner"])
    fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
    decide(auth("reviewer"), people["dossier"].id, "reject", comment="请补充", fields=["phone"])
    for browser, path in ((auth("owner"), "/me/"), (auth("reviewer"), f"/review/{people['dossier'].id}")):
        history = text(browser.get(path)).split("办理记录")[1]
        assert '<td data-label="办理" class="text-nowrap">双塔区财政局 · 审核人员</td>' in history, path
        assert '<td data-label="办理" class="text-nowrap">本人</td>' in history


def test_staff_lists_stack_on_a_phone(auth, people, workflow, blobs):
    upload_required(workflow, blobs, people["dossier"], people["owner"])
    fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
    page = text(auth("reviewer").get("/review/"))
    table = page.split('id="worklist"')[0].rsplit("<table", 1)[1] + page.split('id="worklist"')[1].split("</table>")[0]
    assert "table-stack" in table
    for label in ("档案编号", "姓名", "身份证号", "工作单位", "地区", "已等待"):
        assert f'data-label="{label}"' in table
    css = auth("reviewer").get("/static/site.css").get_data(as_text=True)
    assert "@media (max-width: 767.98px)" in css and ".table-stack td::before" in css
