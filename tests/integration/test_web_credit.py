"""The credit pages: who may see and write, the form's refusals, corrections and revocations, the flag, the PDF."""
import io
import re
from datetime import date, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from kjdms.backends import get_config
from kjdms.extensions import db
from kjdms.models import AuditEvent, CreditRecord
from kjdms.samples import sample_png
from kjdms.services.attachments import add_attachment_version
from kjdms.services.credit import record_finding, revoke_record
from kjdms.services.lifecycle import fire_transition, purge_dossier
from tests.helpers import applicant, staff, upload_required
from tests.webclient import csrf_of, flashes, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

FINDING = "单位代码证系伪造，经市场监管部门核实无此单位"


@pytest.fixture
def case(people, workflow, blobs):
    """The people fixture's 张伟, submitted with two versions of the employer certificate; and 李四 elsewhere."""
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    add_attachment_version(db.session, workflow, blobs, dossier, "employer_certificate", sample_png(seed=9), owner,
                           filename="代码证2.png")
    fire_transition(db.session, workflow, dossier, "submit", owner)
    other, other_owner = applicant(name="李四", region_code="211303", employer_name="朝阳市龙城区会计服务中心")
    upload_required(workflow, blobs, other, other_owner, seed=3)
    fire_transition(db.session, workflow, other, "submit", other_owner)
    return {"dossier": dossier, "other": other, "other_owner": other_owner,
            "versions": dossier.attachment("employer_certificate").versions}


def form_data(case, **overrides):
    data = {"kind": "falsified_information", "finding": FINDING, "legal_basis": "辽财会〔2019〕116号 四（二）",
            "evidence": [str(case["versions"][0].id)], "found_on": date.today().isoformat()}
    data.update(overrides)
    return data


def post_record(browser, case, **overrides):
    path = f"/credit/dossier/{case['dossier'].id}"
    return browser.submit(f"{path}/record", form_data(case, **overrides), page=path)


def records():
    db.session.expire_all()
    return db.session.scalars(select(CreditRecord).order_by(CreditRecord.id)).all()


def audit_count():
    return db.session.scalar(select(func.count()).select_from(AuditEvent))


def recorded(case, officer, workflow):
    """Record a finding through the service, as an officer did earlier."""
    return record_finding(db.session, workflow, case["dossier"], officer, kind="false_report", finding=FINDING,
                          evidence=[case["versions"][0].id], found_on=date.today(),
                          id_hash_key=get_config().ID_HASH_KEY)


class TestWhoSeesWhat:
    def test_the_credit_officer_sees_the_form_with_every_version_as_evidence(self, auth, case):
        page = auth("credit_officer").get(f"/credit/dossier/{case['dossier'].id}")
        body = text(page)
        assert page.status_code == 200 and "记入信用档案" in body and "无信用记录" in body
        for version in case["dossier"].attachment("employer_certificate").versions:
            assert f'value="{version.id}"' in body
        assert "第1版" in body and "第2版 （当前版本）" in body
        assert "辽财会〔2019〕116号 四（二）" in body  # the default legal basis, editable

    @pytest.mark.parametrize("who", ["other_reviewer", "archivist", "owner"])
    def test_everybody_else_gets_404_as_for_a_dossier_that_does_not_exist(self, auth, case, people, workflow, who):
        recorded(case, people["credit_officer"], workflow)
        browser = auth(who)
        dossier_id = case["dossier"].id
        head = records()[-1].id
        for path in (f"/credit/dossier/{dossier_id}", f"/credit/dossier/{dossier_id}/records/{head}/correct",
                     f"/credit/dossier/{dossier_id}/records/{head}/revoke", "/credit/dossier/999999"):
            assert browser.get(path).status_code == 404, (who, path)
        token = browser.csrf_token("/me/" if who == "owner" else "/search/")
        for path in ("record", "export", f"records/{head}/revoke"):
            response = browser.post(f"/credit/dossier/{dossier_id}/{path}", data={"csrf_token": token, "reason": "x"})
            assert response.status_code == 404, (who, path)
        assert len(records()) == 1

    def test_the_other_applicant_cannot_reach_anyones_file(self, browser, case, people, workflow):
        recorded(case, people["credit_officer"], workflow)
        other = browser().enter_as(case["other_owner"])
        assert other.get(f"/credit/dossier/{case['dossier'].id}").status_code == 404
        assert FINDING not in text(other.get("/me/credit"))

    def test_anonymous_visitors_are_sent_to_sign_in(self, client, case):
        for path in (f"/credit/dossier/{case['dossier'].id}", "/credit/"):
            response = client.get(path)
            assert response.status_code == 302 and "/login" in response.headers["Location"]

    def test_reviewers_of_the_region_see_the_flag_and_read_the_file_but_cannot_write(
            self, auth, case, people, workflow):
        reviewer = auth("reviewer")
        review_page = text(reviewer.get(f"/review/{case['dossier'].id}"))
        assert "该人员有有效的信用记录" not in review_page
        first = recorded(case, people["credit_officer"], workflow)
        review_page = text(reviewer.get(f"/review/{case['dossier'].id}"))
        assert "该人员有有效的信用记录" in review_page and f"/credit/dossier/{case['dossier'].id}" in review_page
        file_page = reviewer.get(f"/credit/dossier/{case['dossier'].id}")
        body = text(file_page)
        assert file_page.status_code == 200 and FINDING in body and case["versions"][0].sha256 in body
        assert "保存记录" not in body and "/correct" not in body and "/revoke" not in body
        assert reviewer.get(f"/credit/dossier/{case['dossier'].id}/records/{first.id}/revoke").status_code == 403
        response = post_record(reviewer, case)
        assert response.status_code == 403 and len(records()) == 1
        # The flag is on the other region's dossier for nobody: 李四 has no record.
        assert "该人员有有效的信用记录" not in text(auth("other_reviewer").get(f"/review/{case['other'].id}"))

    # What each staff role is offered on the review page of a submitted dossier of 双塔区: the page reads the roles
    # once and hands them to the credit summary (views/credit.py), the reveal button and the decision buttons.
    @pytest.mark.parametrize("who, status, offered", [
        ("reviewer", 200, {"reveal", "credit file", "approve"}),
        ("city_reviewer", 200, {"reveal", "credit file", "approve"}),
        ("credit_officer", 200, {"credit file and record"}),
        ("administrator", 200, {"credit file"}),
        ("other_reviewer", 404, set()),
        ("archivist", 404, set()),
    ])
    def test_the_review_page_offers_each_role_what_it_may_do(self, auth, case, who, status, offered):
        page = auth(who).get(f"/review/{case['dossier'].id}")
        body, credit_file = text(page), f'href="/credit/dossier/{case["dossier"].id}">'
        links = {"reveal": "查看完整号码" in body, "approve": 'formaction="/review/' in body,
                 "credit file and record": f"{credit_file}信用档案 · 记入信用档案</a>" in body,
                 "credit file": f"{credit_file}信用档案</a>" in body}
        assert page.status_code == status and {name for name, shown in links.items() if shown} == offered

    def test_administrators_read_without_the_form(self, auth, case, people, workflow):
        recorded(case, people["credit_officer"], workflow)
        body = text(auth("administrator").get(f"/credit/dossier/{case['dossier'].id}"))
        assert FINDING in body and "保存记录" not in body

    def test_the_credit_officer_has_a_nav_link_and_a_list_of_the_regions_files(self, auth, case, people, workflow):
        recorded(case, people["credit_officer"], workflow)
        officer = auth("credit_officer")
        assert 'href="/credit/"' in text(officer.get("/search/"))
        listing = text(officer.get("/credit/"))
        assert "张伟" in listing and case["dossier"].number in listing and "李四" not in listing
        assert 'href="/credit/"' not in text(auth("reviewer").get("/search/"))
        assert auth("reviewer").get("/credit/").status_code == 403

    def test_the_credit_officer_lands_on_the_dossiers_they_can_record_on(self, auth, case, people, workflow):
        officer = auth("credit_officer")
        page = text(officer.get("/credit/dossiers"))
        assert "李四" in page and case["other"].number in page  # submitted in 龙城区, inside Chaoyang
        assert 'href="/credit/dossiers"' in page
        assert auth("reviewer").get("/credit/dossiers").status_code == 403

    def test_a_draft_is_hidden_from_the_credit_officer_unless_its_person_has_a_file(
            self, auth, people, case, workflow):
        officer, path = auth("credit_officer"), f"/credit/dossier/{case['dossier'].id}"
        fire_transition(db.session, workflow, case["dossier"], "retract", people["owner"])
        assert officer.get(path).status_code == 404  # the workflow does not let credit officers see drafts
        fire_transition(db.session, workflow, case["dossier"], "submit", people["owner"])
        recorded(case, people["credit_officer"], workflow)
        fire_transition(db.session, workflow, case["dossier"], "retract", people["owner"])
        page = officer.get(path)
        assert page.status_code == 200 and FINDING in text(page) and "保存记录" not in text(page)
        assert "/revoke" not in text(page)  # no annotate in draft: read only
        response = officer.post(f"{path}/record", data={"csrf_token": csrf_of(page), **form_data(case)})
        assert response.status_code == 403 and len(records()) == 1


    def test_after_a_purge_the_credit_officer_still_reads_the_kept_file_and_reviewers_do_not(
            self, auth, case, people, workflow, blobs):
        from kjdms.services.lifecycle import purge_dossier
        first = recorded(case, people["credit_officer"], workflow)
        purge_dossier(db.session, workflow, blobs, case["dossier"], people["administrator"], "未按期确认",
                      id_hash_key=get_config().ID_HASH_KEY)
        path = f"/credit/dossier/{case['dossier'].id}"
        page = auth("credit_officer").get(path)
        body = text(page)
        assert page.status_code == 200 and "张伟" in body and FINDING in body
        assert first.evidence[0]["sha256"] in body and "证据文件已删除" in body
        assert "/files/" not in body and "保存记录" not in body  # the files are gone; nothing more is recorded
        assert auth("reviewer").get(path).status_code == 404
        assert auth("administrator").get(path).status_code == 200


def listed(response) -> list[str]:
    """Return the names in the credit list, top to bottom."""
    return re.findall(r'<td><a href="/credit/dossier/\d+">([^<]+)</a></td>', text(response))


class TestList:
    @pytest.fixture
    def files(self, case, people, workflow, blobs):
        """Files for 张伟 (revoked), 李四, 王芳 (newest) in Chaoyang, and 刘强 in Shenyang, outside it."""
        officer, key = people["credit_officer"], get_config().ID_HASH_KEY
        first = recorded(case, officer, workflow)
        revoke_record(db.session, workflow, case["dossier"], first.id, officer, reason="经复核不属实", id_hash_key=key)
        wang, wang_owner = applicant(name="王芳", region_code="211302")
        liu, liu_owner = applicant(name="刘强", region_code="210100")
        shenyang = staff("credit_shenyang", "credit_officer", "210100")
        for dossier, owner, by in ((case["other"], None, officer), (liu, liu_owner, shenyang), (wang, wang_owner, officer)):
            if owner is not None:
                upload_required(workflow, blobs, dossier, owner)
                fire_transition(db.session, workflow, dossier, "submit", owner)
            record_finding(db.session, workflow, dossier, by, kind="false_report", finding=FINDING,
                           evidence=[dossier.attachments[0].current.id], found_on=date.today(), id_hash_key=key)
        return {"wang": wang, "liu": liu}

    def test_lists_the_files_of_the_officers_regions_newest_first_with_live_counts(self, auth, files):
        response = auth("credit_officer").get("/credit/")
        assert listed(response) == ["王芳", "李四", "张伟"] and "共 3 人" in text(response)
        live = re.findall(r"<td class=\"live-count\">(\d+)</td>", text(response))
        assert live == ["1", "1", "0"]  # 张伟's only finding was revoked
        assert "刘强" not in text(response) and files["liu"].number not in text(response)

    def test_pages_and_a_page_out_of_range_shows_the_last(self, auth, files, monkeypatch):
        monkeypatch.setattr("kjdms.services.credit.FILES_PAGE_SIZE", 2)
        officer = auth("credit_officer")
        first = officer.get("/credit/")
        assert listed(first) == ["王芳", "李四"] and 'href="/credit/?page=2" rel="next"' in text(first)
        assert listed(officer.get("/credit/?page=2")) == ["张伟"]
        for odd in ("99", "0", "-1", "x", "1e9", "９"):
            assert officer.get(f"/credit/?page={odd}").status_code == 200
        assert listed(officer.get("/credit/?page=99")) == ["张伟"]

    def test_a_purged_persons_file_stays_listed_under_the_kept_name(self, auth, files, people, workflow, blobs):
        purge_dossier(db.session, workflow, blobs, files["wang"], people["administrator"], "未按期确认",
                      id_hash_key=get_config().ID_HASH_KEY)
        assert listed(auth("credit_officer").get("/credit/"))[0] == "王芳"

    def test_a_region_where_the_officer_only_reviews_is_not_listed(self, auth, files, people):
        from kjdms.services.accounts import assign_role
        from kjdms.services.reference import region_by_code
        assign_role(db.session, people["credit_officer"], "reviewer", region_by_code(db.session, "210100"))
        db.session.commit()
        assert "刘强" not in listed(auth("credit_officer").get("/credit/"))  # the review page links to it instead

    def test_the_provincial_administrator_sees_every_region(self, auth, files):
        assert sorted(listed(auth("administrator").get("/credit/"))) == sorted(["王芳", "刘强", "李四", "张伟"])


class TestRecording:
    def test_a_finding_is_recorded_pinned_and_audited(self, auth, case):
        before = audit_count()
        officer = auth("credit_officer")
        response = post_record(officer, case)
        assert response.status_code == 302
        [saved] = records()
        assert saved.evidence[0]["sha256"] == case["versions"][0].sha256 and saved.office_region.code == "211300"
        assert audit_count() == before + 1
        page = officer.get(response.headers["Location"])
        assert f"已记入信用档案（记录编号 {saved.id}）。" in flashes(page)
        assert "该人员有有效的信用记录（1 项）" in text(page)

    def test_without_the_csrf_token_nothing_is_saved(self, auth, case):
        response = auth("credit_officer").post(f"/credit/dossier/{case['dossier'].id}/record", data=form_data(case))
        assert response.status_code == 400 and records() == []

    def test_bad_fields_come_back_in_chinese_beside_the_field_and_nothing_is_saved(self, auth, case):
        before = audit_count()
        tomorrow = (date.today() + timedelta(days=2)).isoformat()
        response = post_record(auth("credit_officer"), case, finding="", found_on=tomorrow, evidence=[], kind="x")
        body = text(response)
        assert response.status_code == 422
        for message in ("类别：请从列表中选择", "查实情况：必填", "证据：请至少选择一份证明材料（可选任一版本）",
                        "查实日期：不能晚于今天"):
            assert message in body
        assert records() == [] and audit_count() == before

    def test_evidence_of_another_dossier_is_refused(self, auth, case):
        foreign = case["other"].attachment("basic_info_form").versions[0].id
        response = post_record(auth("credit_officer"), case, evidence=[str(foreign)])
        assert response.status_code == 422 and "证据：所选材料不属于该档案" in text(response) and records() == []

    def test_an_over_long_finding_is_refused_with_its_length(self, auth, case):
        response = post_record(auth("credit_officer"), case, finding="虚" * 2001)
        assert response.status_code == 422 and "查实情况：不能超过2000个字" in text(response) and records() == []

    def test_a_get_writes_nothing(self, auth, case):
        before = audit_count()
        officer = auth("credit_officer")
        for path in ("", "/record", "/export"):
            officer.get(f"/credit/dossier/{case['dossier'].id}{path}")
        assert records() == [] and audit_count() == before


class TestCorrectAndRevoke:
    def test_a_correction_then_a_revocation_are_new_records_pointing_back(self, auth, case, people, workflow):
        first = recorded(case, people["credit_officer"], workflow)
        officer = auth("credit_officer")
        base = f"/credit/dossier/{case['dossier'].id}/records"
        page = officer.get(f"{base}/{first.id}/correct")
        assert page.status_code == 200 and FINDING in text(page)  # prefilled with what the record says
        response = officer.submit(f"{base}/{first.id}/correct", form_data(
            case, kind="false_report", finding="更正：" + FINDING, evidence=[str(case["versions"][1].id)]))
        assert response.status_code == 302
        first_kept, correction = records()
        assert first_kept.finding == FINDING and correction.supersedes_id == first.id
        assert correction.action == "correct" and correction.evidence[0]["number"] == 2
        response = officer.submit(f"{base}/{correction.id}/revoke", {"reason": "复议后撤销",
                                                                     "legal_basis": "辽财会〔2019〕116号 四（二）"})
        assert response.status_code == 302
        revocation = records()[-1]
        assert revocation.action == "revoke" and revocation.supersedes_id == correction.id
        body = text(officer.get(f"/credit/dossier/{case['dossier'].id}"))
        assert "已撤销" in body and "该人员有有效的信用记录" not in body
        assert "该人员有有效的信用记录" not in text(auth("reviewer").get(f"/review/{case['dossier'].id}"))

    def test_a_superseded_record_cannot_be_changed_again(self, auth, case, people, workflow):
        first = recorded(case, people["credit_officer"], workflow)
        officer = auth("credit_officer")
        path = f"/credit/dossier/{case['dossier'].id}/records/{first.id}/revoke"
        stale = officer.get(path)  # two tabs open on the same record
        assert officer.submit(path, {"reason": "误记", "legal_basis": "依据"}).status_code == 302
        response = officer.post(path, data={"csrf_token": csrf_of(stale), "reason": "再次撤销", "legal_basis": "依据"})
        assert response.status_code == 409 and "已被更正或撤销" in text(response)
        assert len(records()) == 2

    def test_a_revocation_without_a_reason_is_refused(self, auth, case, people, workflow):
        first = recorded(case, people["credit_officer"], workflow)
        path = f"/credit/dossier/{case['dossier'].id}/records/{first.id}/revoke"
        response = auth("credit_officer").submit(path, {"reason": "  ", "legal_basis": "依据"})
        assert response.status_code == 422 and "撤销理由：必填" in text(response) and len(records()) == 1

    def test_a_record_of_another_person_is_not_found_from_this_dossier(self, auth, case, people, workflow):
        theirs = record_finding(db.session, workflow, case["other"], people["credit_officer"], kind="other",
                                finding="其他", evidence=[case["other"].attachments[0].versions[0].id],
                                found_on=date.today(), id_hash_key=get_config().ID_HASH_KEY)
        officer = auth("credit_officer")
        path = f"/credit/dossier/{case['dossier'].id}/records/{theirs.id}/revoke"
        assert officer.get(path).status_code == 404
        token = officer.csrf_token(f"/credit/dossier/{case['dossier'].id}")
        assert officer.post(path, data={"csrf_token": token, "reason": "x", "legal_basis": "y"}).status_code == 404
        assert len(records()) == 1


def pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


class TestOwnFileAndPdf:
    def test_the_person_sees_their_own_file_and_the_count_on_their_page(self, auth, case, people, workflow):
        owner = auth("owner")
        assert "没有有效的信用记录" in text(owner.get("/me/"))
        recorded(case, people["credit_officer"], workflow)
        assert "您的信用档案中有 1 项有效记录" in text(owner.get("/me/"))
        body = text(owner.get("/me/credit"))
        assert FINDING in body and case["versions"][0].sha256 in body
        assert "credit_chaoyang" not in body  # staff user names stay inside the finance departments

    def test_staff_cannot_use_the_applicants_credit_pages(self, auth, case):
        assert auth("credit_officer").get("/me/credit").status_code == 403
        assert auth("credit_officer").get("/me/credit.pdf").status_code == 403

    def test_the_person_downloads_the_file_as_pdf_with_safe_headers_and_the_id_number_masked(
            self, auth, case, people, workflow):
        recorded(case, people["credit_officer"], workflow)
        response = auth("owner").get("/me/credit.pdf")
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment;")
        assert f'filename="{case["dossier"].number}-credit.pdf"' in disposition
        content = pdf_text(response.data)
        id_number = people["owner"].person.id_number
        assert FINDING.replace("，", "") in content.replace("，", "").replace("\n", "")
        assert case["versions"][0].sha256 in content.replace("\n", "")
        assert id_number not in content and id_number[:4] + "**********" + id_number[-4:] in content

    def test_staff_export_is_a_post_written_to_the_audit_log(self, auth, case, people, workflow):
        recorded(case, people["credit_officer"], workflow)
        officer = auth("credit_officer")
        path = f"/credit/dossier/{case['dossier'].id}"
        assert officer.get(f"{path}/export").status_code == 405
        assert officer.post(f"{path}/export").status_code == 400  # no CSRF token
        before = audit_count()
        response = officer.submit(f"{path}/export", page=path)
        assert response.status_code == 200 and response.data.startswith(b"%PDF")
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        assert audit_count() == before + 1
        event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert event.action == "credit.export_pdf" and event.object_id == case["dossier"].person_id
        content = pdf_text(response.data)
        assert "有效" in content and "朝阳市" in content
        assert people["owner"].person.id_number not in content

    def test_the_pdf_of_a_file_with_no_records_says_so(self, auth, case):
        assert "无信用记录" in pdf_text(auth("owner").get("/me/credit.pdf").data)
