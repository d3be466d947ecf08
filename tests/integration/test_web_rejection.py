"""A rejected applicant is never at a dead end: the reason and flagged items stay visible until resubmitted."""
import re

import pytest

from kjdms.extensions import db
from kjdms.models import Dossier
from kjdms.services.lifecycle import fire_transition
from kjdms.views.applicant import REVISE_MESSAGE
from tests.helpers import upload_required
from tests.webclient import basic_information, decide, flashes, fresh, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

REASON = "工作单位名称与单位证明不一致；学历证书不清晰，请重新上传"
FLAGS = ["employer_name", "attachment:education_certificate"]


@pytest.fixture
def rejected(people, workflow, blobs, auth):
    """The owner's dossier, submitted and rejected by the 双塔区 reviewer with two flagged items."""
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    response = decide(auth("reviewer"), dossier.id, "reject", comment=REASON, fields=FLAGS)
    assert response.status_code == 302
    return dossier


def flagged_ids(page: str) -> list[str]:
    """Return the ids of the elements marked as flagged on a page."""
    return re.findall(r'class="[^"]*flagged-item[^"]*" id="([^"]+)"', page)


def shows_reason_and_flags(page: str) -> bool:
    box = page.split('id="rejection"')[1][:3000] if 'id="rejection"' in page else ""
    return REASON in box and "工作单位名称" in box and "学历证书" in box and "双塔区" in box


class TestWhileRejected:
    @pytest.mark.parametrize("path", ["/me/", "/me/edit", "/me/documents"])
    def test_every_page_shows_the_reason_and_the_flagged_items(self, auth, rejected, path):
        page = text(auth("owner").get(path))
        assert shows_reason_and_flags(page)
        assert 'href="/me/edit#field-employer_name"' in page
        assert 'href="/me/documents#slot-education_certificate"' in page

    def test_the_edit_page_says_to_press_revise_and_offers_it(self, auth, rejected):
        page = text(auth("owner").get("/me/edit"))
        assert "当前状态下不能修改基本信息。" not in page
        assert "档案已被退回，暂不能修改基本信息：请点上方退回意见中的“修改”" in page
        assert re.search(r'action="/me/transition/revise"[^>]*>\s*<input[^>]+csrf_token', page)
        assert flagged_ids(page) == ["field-employer_name"]

    def test_the_documents_page_says_to_press_revise_and_marks_the_document(self, auth, rejected):
        page = text(auth("owner").get("/me/documents"))
        assert "当前状态下不能上传材料。" not in page
        assert "档案已被退回，暂不能上传材料" in page and 'action="/me/transition/revise"' in page
        assert flagged_ids(page) == ["slot-education_certificate"]

    def test_posting_the_form_anyway_is_still_refused(self, auth, rejected):
        browser = auth("owner")
        response = browser.submit("/me/edit", basic_information(employer_name="新单位"), page="/me/")
        assert response.status_code == 403
        assert fresh(Dossier, rejected.id).employer_name != "新单位"


class TestAfterRevise:
    def test_revise_says_what_it_did_not_that_something_changed(self, auth, rejected):
        browser = auth("owner")
        response = browser.fire("revise")
        assert response.status_code == 302
        shown = flashes(browser.get("/me/"))
        assert REVISE_MESSAGE in shown and "已修改。" not in shown

    @pytest.mark.parametrize("path", ["/me/", "/me/edit", "/me/documents"])
    def test_the_reason_stays_until_resubmitted(self, auth, rejected, path):
        browser = auth("owner")
        browser.fire("revise")
        page = text(browser.get(path))
        assert shows_reason_and_flags(page)
        assert 'id="locked"' not in page and 'action="/me/transition/revise"' not in page

    def test_the_flagged_items_are_highlighted_where_they_are_fixed(self, auth, rejected):
        browser = auth("owner")
        browser.fire("revise")
        assert flagged_ids(text(browser.get("/me/edit"))) == ["field-employer_name"]
        documents = text(browser.get("/me/documents"))
        assert flagged_ids(documents) == ["slot-education_certificate"]
        assert "退回意见指出此项材料有问题，请重新上传" in documents

    def test_resubmitting_clears_the_notice_and_the_history_keeps_it(self, auth, rejected):
        browser = auth("owner")
        browser.fire("revise")
        browser.submit("/me/edit", basic_information(employer_name="朝阳市双塔区示范会计服务有限公司二部"))
        assert browser.fire("submit").status_code == 302
        assert fresh(Dossier, rejected.id).state == "submitted"
        for path in ("/me/", "/me/edit", "/me/documents"):
            page = text(browser.get(path))
            assert 'id="rejection"' not in page and not flagged_ids(page), path
        assert REASON in text(browser.get("/me/")).split("办理记录")[1]  # the history keeps the reason


class TestOtherRefusalsSayWhatToDo:
    def test_a_submitted_dossier_points_to_retract(self, auth, people, workflow, blobs):
        upload_required(workflow, blobs, people["dossier"], people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
        for path, action in (("/me/edit", "修改基本信息"), ("/me/documents", "上传材料")):
            page = text(auth("owner").get(path))
            assert f"如需{action}，请先在“<a href=\"/me/\">我的档案</a>”点“撤回”" in page, path

    def test_an_approved_dossier_points_to_the_change_request(self, auth, people, workflow, blobs):
        upload_required(workflow, blobs, people["dossier"], people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "approve", people["reviewer"])
        for path in ("/me/edit", "/me/documents"):
            assert "点“信息发生变化，申请变更”" in text(auth("owner").get(path)), path
