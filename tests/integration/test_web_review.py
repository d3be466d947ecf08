"""The reviewer's pages: the queue of their regions, the review page, approve, reject, jurisdiction, conflicts."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.backends import get_workflow
from kjdms.models import Dossier, Person, WorkflowHistory, utcnow
from kjdms.samples import sample_png
from kjdms.services.attachments import add_attachment_version
from kjdms.services.lifecycle import fire_transition
from kjdms.services.reference import region_by_code
from kjdms.services.worklist import PAGE_SIZE
from tests.helpers import make_id_number, review_queue, sql_of, upload_required
from tests.webclient import csrf_of, database_snapshot, decide, flashes, fresh, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

CONFLICT = "该档案已被他人处理或修改"


def statements_of(request) -> int:
    """Return how many SQL statements request() ran."""
    return len(sql_of(request))


def queued_names(response) -> list[str]:
    """Return the names in the worklist table, top to bottom."""
    rows = text(response).split("<tbody>")[1].split("</tbody>")[0] if "<tbody>" in text(response) else ""
    return re.findall(r'<td data-label="姓名">([^<]+)</td>', rows)


def sidebar_count(response, region_name) -> str | None:
    match = re.search(rf'>\s*{region_name} <span class="float-end">(\d+)</span>', text(response))
    return match.group(1) if match else None


@pytest.fixture
def queue(people, workflow, blobs):
    """Three dossiers waiting in 双塔区 (10, 5 and 1 days), one in 龙城区, and one approved in 双塔区."""
    return review_queue(people, workflow, blobs)


class TestWorklist:
    def test_shows_only_the_own_regions_submitted_dossiers_oldest_first(self, auth, queue):
        page = auth("reviewer").get("/review/")
        assert page.status_code == 200
        assert queued_names(page) == ["孙三", "赵一", "钱二"]
        assert '待审核档案 <span class="badge text-bg-primary">3</span>' in text(page)
        assert sidebar_count(page, "双塔区") == "3" and sidebar_count(page, "全部地区") == "3"
        for absent in ("李四", "周五", "张伟", "龙城区"):
            assert absent not in text(page)

    def test_a_city_reviewer_sees_every_county_below_with_counts(self, auth, queue):
        page = auth("city_reviewer").get("/review/")
        assert queued_names(page) == ["孙三", "赵一", "李四", "钱二"]
        assert sidebar_count(page, "双塔区") == "3" and sidebar_count(page, "龙城区") == "1"
        assert sidebar_count(page, "全部地区") == "4"

    def test_shows_masked_id_employer_region_and_waiting_time(self, auth, queue):
        page = text(auth("reviewer").get("/review/"))
        number = queue["孙三"].person.id_number
        assert number not in page and f"{number[:4]}{'*' * 10}{number[-4:]}" in page
        assert "朝阳市双塔区示范会计服务有限公司" in page and "10天1小时" in page
        assert f'href="/review/{queue["孙三"].id}"' in page

    def test_filter_by_region(self, auth, queue):
        browser = auth("city_reviewer")
        longcheng = region_by_code(db.session, "211303")
        page = browser.get(f"/review/?region={longcheng.id}")
        assert queued_names(page) == ["李四"]
        # The counts still show every region, so the reviewer can switch back.
        assert sidebar_count(page, "双塔区") == "3"

    def test_filter_by_a_region_not_covered_shows_nothing(self, auth, queue):
        shenyang = region_by_code(db.session, "210100")
        shuangta = region_by_code(db.session, "211302")
        browser = auth("other_reviewer")
        for region in (shenyang, shuangta):
            page = browser.get(f"/review/?region={region.id}")
            assert queued_names(page) == [] and "没有待审核的档案" in text(page)
            assert "孙三" not in text(page) and sidebar_count(page, "双塔区") is None

    def test_filter_by_waiting_time(self, auth, queue):
        browser = auth("reviewer")
        for waited, names in [("7", ["孙三"]), ("3", ["孙三", "赵一"]), ("30", []), ("0", ["孙三", "赵一", "钱二"]),
                              ("4", ["孙三", "赵一", "钱二"]), ("many", ["孙三", "赵一", "钱二"])]:
            # Only the offered choices filter; anything else shows the whole queue.
            assert queued_names(browser.get(f"/review/?waited={waited}")) == names, waited

    def test_filters_combine(self, auth, queue):
        shuangta = region_by_code(db.session, "211302")
        page = auth("city_reviewer").get(f"/review/?region={shuangta.id}&waited=3")
        assert queued_names(page) == ["孙三", "赵一"]

    def test_is_paginated_by_fifty(self, auth, people):
        region = region_by_code(db.session, "211302")
        start = utcnow() - timedelta(days=60)
        for index in range(PAGE_SIZE + 5):
            person = Person(id_number=make_id_number(birth="19850505", sequence=index), name=f"批量{index:02d}号")
            db.session.add(Dossier(person=person, state="submitted", region=region, job_types=[],
                                   state_changed_at=start + timedelta(hours=index)))
        db.session.commit()
        browser = auth("reviewer")
        first = browser.get("/review/")
        assert len(queued_names(first)) == PAGE_SIZE and queued_names(first)[0] == "批量00号"
        assert f'badge text-bg-primary">{PAGE_SIZE + 5}</span>' in text(first)
        assert 'href="/review/?page=2"' in text(first)
        second = browser.get("/review/?page=2")
        assert queued_names(second) == [f"批量{index:02d}号" for index in range(PAGE_SIZE, PAGE_SIZE + 5)]
        assert queued_names(browser.get("/review/?page=99")) == queued_names(second)
        assert queued_names(browser.get("/review/?page=0")) == queued_names(first)

    @pytest.mark.parametrize("role", ["owner", "archivist", "credit_officer", "administrator"])
    def test_others_than_reviewers_are_forbidden(self, auth, role):
        response = auth(role).get("/review/")
        assert response.status_code == 403 and "没有权限" in text(response)

    def test_anonymous_visitors_are_sent_to_sign_in(self, client):
        response = client.get("/review/")
        assert response.status_code == 302 and response.headers["Location"] == "/login?next=%2Freview%2F"


class TestReviewPage:
    def test_shows_the_fields_and_each_current_document_inline(self, auth, queue, people, workflow, blobs):
        dossier = queue["赵一"]
        page = text(auth("reviewer").get(f"/review/{dossier.id}"))
        assert "赵一" in page and dossier.number in page and "待审核" in page
        for value in ("13904211234", "朝阳市双塔区示范会计服务有限公司", dossier.employer_uscc, "出纳",
                      "辽宁省 / 朝阳市 / 双塔区", "大学本科"):
            assert value in page
        for attachment in dossier.attachments:
            version = attachment.current
            assert f'<img src="/files/{version.id}/preview.png"' in page
            assert f'href="/files/{version.id}"' in page
        assert ">审核确认</button>" in page and ">退回</button>" in page
        assert "以前的版本" not in page

    def test_each_document_says_whether_its_text_can_be_searched(self, auth, queue):
        dossier = queue["赵一"]
        done, failed, blank = (attachment.current for attachment in dossier.attachments[:3])
        done.text_status, done.text_method, done.extracted_text = "done", "pdf-text", "朝阳市双塔区财政局"
        failed.text_status, failed.text_method, failed.text_error = "failed", "none", "PDF已加密，无法提取文字"
        blank.text_status, blank.text_method = "done", "ocr"
        db.session.commit()
        statuses = re.findall(r'class="small text-muted mt-2 text-status">([^<]+)</div>',
                              text(auth("reviewer").get(f"/review/{dossier.id}")))
        assert len(statuses) == len(dossier.attachments)
        assert "已提取文字（PDF文字，9字），可检索" in statuses
        assert "未能提取文字：PDF已加密，无法提取文字；只能按人员信息检索" in statuses
        assert "文件中没有文字，只能按人员信息检索" in statuses
        assert statuses.count("等待提取文字，提取后可检索") == len(dossier.attachments) - 3

    def test_earlier_versions_are_one_click_away(self, auth, people, workflow, blobs):
        dossier, owner = people["dossier"], people["owner"]
        upload_required(workflow, blobs, dossier, owner)
        first = dossier.attachment("education_certificate").current
        add_attachment_version(db.session, workflow, blobs, dossier, "education_certificate", sample_png(seed=9),
                               owner, filename="again.png")
        page = text(auth("reviewer").get(f"/review/{dossier.id}"))
        assert f'以前的版本：\n            <a href="/files/{first.id}">第1版</a>' in page

    def test_a_draft_can_be_seen_but_not_decided(self, auth, people):
        browser = auth("reviewer")
        page = browser.get(f"/review/{people['dossier'].id}")
        assert page.status_code == 200 and "填报中" in text(page) and ">审核确认</button>" not in text(page)
        before = database_snapshot()
        response = decide(browser, people["dossier"].id, "approve", page=page)
        assert response.status_code == 422 and "「填报中」状态下不能执行「审核确认」" in text(response)
        assert database_snapshot() == before

    def test_reads_the_history_and_everyone_who_acted_in_as_many_statements_for_one_actor_as_for_two(self, auth,
                                                                                                      queue):
        # 钱二's history: the owner's submission; 周五's: that and the 双塔区 reviewer's approval. The page names
        # each actor: read one by one, the second dossier's page cost a statement more for each other person.
        browser = auth("city_reviewer")
        pages = {name: f"/review/{queue[name].id}" for name in ("钱二", "周五")}
        counted = {name: statements_of(lambda: browser.get(path)) for name, path in pages.items()}
        assert "双塔区财政局 · 审核人员" in text(browser.get(pages["周五"]))
        assert counted["钱二"] == counted["周五"]

    def test_shows_every_history_row_newest_first_in_three_statements(self, auth, queue):
        # The user with the unread count, the dossier with person, regions, documents and the credit file's live
        # count, the history with its actors: a row left out of the history's select would be missing below.
        browser = auth("city_reviewer")
        dossier = queue["周五"]
        browser.get(f"/review/{dossier.id}")
        page = text(browser.get(f"/review/{dossier.id}"))
        assert statements_of(lambda: browser.get(f"/review/{dossier.id}")) == 3
        shown = re.findall(r'<td data-label="操作" class="text-nowrap">([^<]+)</td>',
                           page.split('class="table table-sm table-stack history"')[1])
        written = db.session.scalars(select(WorkflowHistory.action).where(WorkflowHistory.dossier_id == dossier.id)
                                     .order_by(WorkflowHistory.id.desc())).all()
        titles = get_workflow().definition.transitions
        assert len(written) == 2 and shown == [titles[action].title for action in written]

    def test_an_unknown_dossier_is_not_found(self, auth, people):
        assert auth("reviewer").get("/review/99999").status_code == 404

    def test_a_credit_officer_may_look_but_not_decide(self, auth, queue):
        browser = auth("credit_officer")
        page = browser.get(f"/review/{queue['赵一'].id}")
        assert page.status_code == 200 and ">审核确认</button>" not in text(page)
        before = database_snapshot()
        assert decide(browser, queue["赵一"].id, "approve", page=browser.get(f"/review/{queue['周五'].id}")
                      ).status_code == 403
        assert database_snapshot() == before

    @pytest.mark.parametrize("path", ["/review/{id}", "/review/{id}/approve"])
    def test_applicants_are_forbidden_even_on_their_own(self, auth, people, path):
        browser = auth("owner")
        url = path.format(id=people["dossier"].id)
        response = browser.get(url) if "approve" not in url else browser.submit(url, page="/me/")
        assert response.status_code == 403


class TestApprove:
    def test_approve_moves_the_dossier_on_and_back_to_the_queue(self, auth, queue):
        browser = auth("reviewer")
        dossier = queue["赵一"]
        response = decide(browser, dossier.id, "approve")
        assert response.status_code == 302 and response.headers["Location"] == "/review/"
        page = browser.get("/review/")
        assert flashes(page) == [f"已审核确认：赵一（{dossier.number}）"]
        assert queued_names(page) == ["孙三", "钱二"]
        dossier = fresh(Dossier, dossier.id)
        assert dossier.state == "approved"
        last = dossier.history[-1]
        assert (last.action, last.actor_role, last.actor.username) == ("approve", "reviewer", "reviewer_shuangta")

    def test_the_owner_sees_the_approval(self, auth, queue, browser):
        decide(auth("reviewer"), queue["赵一"].id, "approve", comment="信息属实")
        owner_page = text(browser().enter_as(queue["赵一"].person.user).get("/me/"))
        assert "已审核确认" in owner_page and "信息属实" in owner_page

    def test_a_decision_without_the_page_version_is_refused(self, auth, queue):
        browser = auth("reviewer")
        before = database_snapshot()
        response = browser.submit(f"/review/{queue['赵一'].id}/approve", page=f"/review/{queue['赵一'].id}")
        assert response.status_code == 400
        assert database_snapshot() == before


class TestReject:
    def test_an_over_long_reason_is_refused_naming_the_field(self, auth, queue):
        browser = auth("reviewer")
        before = database_snapshot()
        response = decide(browser, queue["赵一"].id, "reject", comment="理" * 2001)
        assert response.status_code == 422
        assert "意见：不能超过2000个字符" in text(response)
        assert database_snapshot() == before

    def test_a_reason_is_required(self, auth, queue):
        browser = auth("reviewer")
        before = database_snapshot()
        response = decide(browser, queue["赵一"].id, "reject", comment="   ", fields=["phone"])
        assert response.status_code == 422
        assert "退回理由：「退回」必须填写理由" in text(response)
        assert database_snapshot() == before

    def test_the_marked_items_are_stored_apart_from_the_reason_and_shown_to_the_owner(self, auth, queue, browser):
        dossier = queue["赵一"]
        response = decide(auth("reviewer"), dossier.id, "reject", comment="号码与单位证明不一致",
                          fields=["attachment:basic_info_form", "phone"])
        assert response.status_code == 302
        dossier = fresh(Dossier, dossier.id)
        assert dossier.state == "rejected"
        assert (dossier.history[-1].comment, dossier.history[-1].flagged) == (
            "号码与单位证明不一致", ["phone", "attachment:basic_info_form"])
        owner_page = text(browser().enter_as(dossier.person.user).get("/me/"))
        assert "已退回" in owner_page and "号码与单位证明不一致" in owner_page
        assert "有问题的项目：联系电话、基本信息表" in owner_page and "【" not in owner_page

    def test_marked_items_on_an_approval_are_refused_on_the_open_list(self, auth, queue):
        browser = auth("reviewer")
        before = database_snapshot()
        response = decide(browser, queue["赵一"].id, "approve", comment="", fields=["phone"])
        assert response.status_code == 422
        page = text(response)
        assert "有问题的项目：只有退回时才能勾选" in page and "<details class=\"mb-3\" open>" in response.get_data(True)
        assert database_snapshot() == before

    def test_the_page_offers_every_field_and_document_to_mark(self, auth, queue):
        page = text(auth("reviewer").get(f"/review/{queue['赵一'].id}"))
        for value in ("phone", "employer_uscc", "attachment:basic_info_form", "attachment:education_certificate"):
            assert f'value="{value}"' in page

    def test_an_unknown_field_marker_is_refused(self, auth, queue):
        browser = auth("reviewer")
        before = database_snapshot()
        response = decide(browser, queue["赵一"].id, "reject", comment="不清晰", fields=["id_number_secret"])
        assert response.status_code == 400
        assert database_snapshot() == before


class TestJurisdiction:
    """A reviewer of 龙城区 never sees nor acts on a 双塔区 dossier: 404, and no count or name."""

    def test_the_review_page_is_not_found(self, auth, queue):
        response = auth("other_reviewer").get(f"/review/{queue['赵一'].id}")
        assert response.status_code == 404
        assert "赵一" not in text(response) and queue["赵一"].number not in text(response)

    @pytest.mark.parametrize("action", ["approve", "reject", "reveal"])
    def test_posts_are_not_found_and_change_nothing(self, auth, queue, action):
        browser = auth("other_reviewer")
        own_page = browser.get(f"/review/{queue['李四'].id}")  # a real token and a plausible version
        before = database_snapshot()
        response = browser.post(f"/review/{queue['赵一'].id}/{action}", data={
            "csrf_token": csrf_of(own_page), "lock_version": fresh(Dossier, queue["赵一"].id).lock_version,
            "comment": "越权操作"})
        assert response.status_code == 404 and "赵一" not in text(response)
        assert database_snapshot() == before

    @pytest.mark.parametrize("suffix", ["", "/preview.png"])
    def test_file_downloads_and_previews_are_not_found(self, auth, queue, suffix):
        version = queue["赵一"].attachments[0].current
        response = auth("other_reviewer").get(f"/files/{version.id}{suffix}")
        assert response.status_code == 404 and response.mimetype == "text/html"

    def test_the_worklist_shows_no_count_or_name_of_the_other_region(self, auth, queue):
        page = auth("other_reviewer").get("/review/")
        assert queued_names(page) == ["李四"]
        assert '待审核档案 <span class="badge text-bg-primary">1</span>' in text(page)
        for leaked in ("孙三", "赵一", "钱二", "双塔区", queue["赵一"].number):
            assert leaked not in text(page)

    def test_another_applicant_cannot_reach_the_files(self, browser, queue):
        neighbour = browser().enter_as(queue["李四"].person.user)
        version = queue["赵一"].attachments[0].current
        assert neighbour.get(f"/files/{version.id}").status_code == 404
        assert neighbour.get(f"/files/{version.id}/preview.png").status_code == 404


class TestConflicts:
    def test_the_second_reviewer_gets_a_conflict_and_keeps_the_typed_reason(self, auth, queue):
        dossier = queue["赵一"]
        first, second = auth("reviewer"), auth("city_reviewer")
        first_page, second_page = first.get(f"/review/{dossier.id}"), second.get(f"/review/{dossier.id}")
        assert decide(first, dossier.id, "approve", page=first_page).status_code == 302
        response = decide(second, dossier.id, "reject", comment="学历证书不清晰，请重新上传", fields=["education"],
                          page=second_page)
        assert response.status_code == 409
        assert CONFLICT in text(response)
        assert "学历证书不清晰，请重新上传" in text(response)
        assert fresh(Dossier, dossier.id).state == "approved"
        assert [row.action for row in fresh(Dossier, dossier.id).history] == ["submit", "approve"]

    def test_two_approvals_make_one_history_row(self, auth, queue):
        dossier = queue["赵一"]
        first, second = auth("reviewer"), auth("city_reviewer")
        first_page, second_page = first.get(f"/review/{dossier.id}"), second.get(f"/review/{dossier.id}")
        decide(first, dossier.id, "approve", page=first_page)
        response = decide(second, dossier.id, "approve", page=second_page)
        assert response.status_code == 409 and CONFLICT in text(response)
        assert [row.action for row in fresh(Dossier, dossier.id).history] == ["submit", "approve"]

    def test_a_change_by_the_owner_since_the_page_was_loaded_is_a_conflict(self, auth, queue, workflow):
        dossier = queue["赵一"]
        browser = auth("reviewer")
        page = browser.get(f"/review/{dossier.id}")
        owner = dossier.person.user
        fire_transition(db.session, workflow, dossier, "retract", owner)
        fire_transition(db.session, workflow, dossier, "submit", owner)
        response = decide(browser, dossier.id, "approve", page=page)
        assert response.status_code == 409
        assert fresh(Dossier, dossier.id).state == "submitted"
        # The page now carries the current version: approving from it works.
        assert 'name="lock_version"' in text(response)
        assert decide(browser, dossier.id, "approve", page=response).status_code == 302
        assert db.session.scalar(select(Dossier.state).where(Dossier.id == dossier.id)) == "approved"


def test_a_list_builds_the_address_of_each_row_from_one_prefix_and_only_where_the_id_ends_it(app):
    from kjdms.views import id_link_prefix

    with app.test_request_context():
        assert id_link_prefix("review.dossier", "dossier_id") == "/review/"
        with pytest.raises(ValueError, match="review.reveal"):
            id_link_prefix("review.reveal", "dossier_id")  # /review/<id>/reveal: the id is not its end
