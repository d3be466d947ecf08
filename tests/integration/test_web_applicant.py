"""The accounting person's pages: status, basic information, printable form, documents, submit, retract, revise."""
import hashlib
import io
import re
import shutil
import struct
import zlib

import pytest
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import event, select

from kjdms import create_app
from kjdms.backends import get_blob_store
from kjdms.blobs.local import TEMPORARY_PREFIX
from kjdms.extensions import db
from kjdms.models import AuditEvent, Dossier
from kjdms.samples import sample_pdf, sample_png
from kjdms.services.lifecycle import fire_transition
from tests.conftest import make_config
from tests.helpers import USCC_SHUANGTA, applicant, sql_of, upload_required
from tests.webclient import basic_information, csrf_of, database_snapshot, flashes, fresh, lock_version_of, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

STAFF = ["reviewer", "city_reviewer", "credit_officer", "archivist", "administrator"]
APPLICANT_PAGES = ["/me/", "/me/edit", "/me/form.pdf", "/me/documents"]
# The signed-in user, the person's dossiers with what the change reads, then the submit's own statements
# (tests/integration/test_lifecycle_services.py: STATEMENTS_PER_TRANSITION less its three reads).
SUBMIT_REQUEST_STATEMENTS = 13


def jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (40, 30), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0110] = "PhoneCam 12"  # Model
    output = io.BytesIO()
    image.save(output, format="JPEG", exif=exif.tobytes())
    return output.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """Return a PNG of a few dozen bytes whose header claims width × height pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def versions(dossier_id, slot):
    attachment = fresh(Dossier, dossier_id).attachment(slot)
    return attachment.versions if attachment else []


def upload_all(browser, dossier):
    """Upload every required document through the page."""
    for slot in ("basic_info_form", "employer_certificate", "education_certificate"):
        assert browser.upload(slot, sample_pdf(f"{slot} {dossier.id}"), f"{slot}.pdf").status_code == 302


class TestWhoMayEnter:
    @pytest.mark.parametrize("path", APPLICANT_PAGES)
    def test_staff_are_forbidden(self, auth, path):
        for role in STAFF:
            response = auth(role).get(path)
            assert response.status_code == 403 and "没有权限" in text(response), role

    @pytest.mark.parametrize("path", ["/me/change", "/me/transition/submit", "/me/documents/basic_info_form"])
    def test_staff_may_not_post_either(self, auth, path):
        browser = auth("reviewer")
        assert browser.post(path, data={"csrf_token": browser.csrf_token("/review/")}).status_code == 403

    @pytest.mark.parametrize("path", APPLICANT_PAGES)
    def test_anonymous_visitors_are_sent_to_sign_in(self, client, path):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


class TestStatusPage:
    def test_shows_the_dossier_its_state_and_what_is_missing(self, auth, people):
        page = text(auth("owner").get("/me/"))
        assert people["dossier"].number in page and "填报中" in page
        assert people["owner"].person.id_number in page
        assert "以下内容尚未完成" in page
        for missing in ("基本信息表", "单位代码证", "学历证书"):
            assert f"<li>{missing}</li>" in page
        assert "资格证书" not in page.split("以下内容尚未完成")[1].split("</ul>")[0]

    def test_an_empty_dossier_lists_the_fields_too(self, browser):
        _, owner = applicant(name="王芳", complete=False)
        page = text(browser().enter_as(owner).get("/me/"))
        for missing in ("联系电话", "学历", "人员类别", "归属地区（工作单位、学籍或户籍所在地区）"):
            assert f"<li>{missing}</li>" in page

    def test_submit_is_offered_only_once_nothing_is_missing(self, auth, people):
        browser = auth("owner")
        assert "提交审核</button>" not in text(browser.get("/me/"))
        upload_all(browser, people["dossier"])
        assert re.search(r'<button class="btn btn-primary"\s*>提交审核</button>', text(browser.get("/me/")))


class TestEdit:
    def test_the_form_shows_the_current_information_and_the_territorial_rule(self, auth, people):
        page = text(auth("owner").get("/me/edit"))
        assert 'value="朝阳市双塔区示范会计服务有限公司"' in page
        assert f'value="{people["owner"].person.id_number}" readonly' in page
        assert "属地化原则" in page and "大连地区会计人员按大连市财政局相关要求执行" in page

    def test_good_data_is_saved(self, auth, people):
        browser = auth("owner")
        response = browser.submit("/me/edit", basic_information(
            employer_name="朝阳市双塔区新会计服务有限公司", phone="0421-2855527"))
        assert response.status_code == 302 and response.headers["Location"] == "/me/"
        assert "已保存（修改了 3 项）" in text(browser.get("/me/"))
        dossier = fresh(Dossier, people["dossier"].id)
        assert dossier.employer_name == "朝阳市双塔区新会计服务有限公司"
        assert dossier.phone == "0421-2855527" and dossier.job_types == ["cashier", "checking"]
        event = db.session.scalars(select(AuditEvent).filter_by(action="dossier.update")).one()
        assert set(event.detail["fields"]) == {"employer_name", "phone", "job_types"}

    def test_saving_the_same_data_changes_nothing(self, auth, people):
        browser = auth("owner")
        browser.submit("/me/edit", basic_information(job_types=["cashier"]))
        assert "没有修改任何内容" in text(browser.get("/me/"))

    @pytest.mark.parametrize("field, value, message", [
        ("phone", "12345", "联系电话："),
        ("employer_uscc", USCC_SHUANGTA[:-1] + ("0" if USCC_SHUANGTA[-1] != "0" else "1"), "统一社会信用代码：校验位错误"),
        ("employer_org_code", "12345678-0", "组织机构代码："),
        ("name", "Zhang3", "姓名：不能包含“Z”，应为2至30个汉字"),
        ("name", "", "姓名：必填"),
        ("education", "phd", "学历：“phd”不是可选项"),
        ("employer_region", "211300", "工作单位所在地区：请选择到朝阳市下属的县（市、区）或市本级"),
        ("employer_region", "999999", "工作单位所在地区：没有代码为“999999”的地区"),
        ("qualification_certificate_number", "证书#1", "资格证书编号：应为4至32位数字或字母"),
    ])
    def test_a_bad_field_is_named_in_chinese_and_nothing_is_saved(self, auth, field, value, message):
        browser = auth("owner")
        before = database_snapshot()
        response = browser.submit("/me/edit", basic_information(**{field: value, "phone": "0421-2855527"}
                                                                if field != "phone" else {field: value}))
        assert response.status_code == 422
        assert message in text(response) and 'class="invalid-feedback d-block">' + message in text(response)
        assert database_snapshot() == before

    def test_all_bad_fields_are_shown_at_once(self, auth):
        response = auth("owner").submit("/me/edit", basic_information(phone="12345", employer_org_code="1234"))
        assert response.status_code == 422
        assert "联系电话：" in text(response) and "组织机构代码：" in text(response)

    @pytest.mark.parametrize("overrides, field_label", [
        ({"employer_region": "210200"}, "工作单位所在地区"),
        ({"employer_region": "", "household_region": "210200", "scope_category": "exam_candidate",
          "employer_name": "", "employer_uscc": "", "job_types": []}, "户籍所在地区"),
        ({"is_student": "y", "school_region": "210200"}, "学籍所在地区"),
    ])
    def test_dalian_answers_that_it_collects_under_its_own_rules(self, auth, people, overrides, field_label):
        browser = auth("owner")
        before = database_snapshot()
        response = browser.submit("/me/edit", basic_information(**overrides))
        assert response.status_code == 422
        assert f"{field_label}：大连地区会计人员的信息采集按大连市财政局相关要求执行" in text(response)
        assert database_snapshot() == before
        assert fresh(Dossier, people["dossier"].id).region.code == "211302"

    def test_the_employer_region_beats_the_household_region(self, auth, people):
        auth("owner").submit("/me/edit", basic_information(employer_region="211303", household_region="211302"))
        assert fresh(Dossier, people["dossier"].id).region.code == "211303"

    def test_a_submitted_dossier_is_shown_read_only_and_refuses_a_post(self, auth, people, workflow, blobs):
        upload_required(workflow, blobs, people["dossier"], people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
        browser = auth("owner")
        page = browser.get("/me/edit")
        assert page.status_code == 200 and "暂不能修改基本信息" in text(page) and "<fieldset disabled>" in text(page)
        before = database_snapshot()
        assert browser.submit("/me/edit", basic_information(employer_name="别的单位")).status_code == 403
        assert database_snapshot() == before


class TestPrintableForm:
    def test_is_a_pdf_download_with_the_name_and_the_full_id_number(self, auth, people):
        response = auth("owner").get("/me/form.pdf")
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        number = people["dossier"].number
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith(f'attachment; filename="{number}.pdf"; filename*=UTF-8\'\'{number}-')
        assert disposition.endswith("%E5%9F%BA%E6%9C%AC%E4%BF%A1%E6%81%AF%E8%A1%A8.pdf")  # 基本信息表.pdf
        assert response.headers["Cache-Control"] == "no-store"
        content = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
        assert "张伟" in content and people["owner"].person.id_number in content and number in content
        assert "朝阳市双塔区示范会计服务有限公司" in content


class TestDocuments:
    def test_the_page_lists_the_slots_and_the_size_limit(self, auth):
        page = text(auth("owner").get("/me/documents"))
        for title in ("基本信息表", "单位代码证", "学历证书", "会计专业技术资格证书", "其他材料"):
            assert title in page
        assert page.count("必传") == 3 and "单个文件不超过 10 MB" in page

    @pytest.mark.parametrize("data, filename, media_type", [
        (sample_pdf("form"), "基本信息表.pdf", "application/pdf"),
        (sample_png(), "scan.PNG", "image/png"),
        (jpeg_with_exif(), "photo.jpeg", "image/jpeg"),
    ])
    def test_a_pdf_png_or_jpeg_is_stored_as_version_one(self, auth, people, blobs, data, filename, media_type):
        browser = auth("owner")
        response = browser.upload("basic_info_form", data, filename, comment="本人签字")
        assert response.status_code == 302 and response.headers["Location"] == "/me/documents"
        page = text(browser.get("/me/documents"))
        assert "基本信息表已上传（第 1 版）" in page and "第1版" in page and filename in page and "本人" in page
        [version] = versions(people["dossier"].id, "basic_info_form")
        assert version.media_type == media_type and version.original_filename == filename
        assert version.comment == "本人签字" and version.uploaded_by_id == people["owner"].id
        if media_type == "image/jpeg":
            assert b"PhoneCam" not in blobs.read(version.sha256)  # re-encoded without its EXIF

    def test_each_re_upload_is_a_new_version_in_the_list(self, auth, people):
        browser = auth("owner")
        for seed in range(3):
            browser.upload("education_certificate", sample_png(seed=seed), f"diploma-{seed}.png")
        page = text(browser.get("/me/documents"))
        assert "学历证书已上传（第 3 版）" in page
        assert page.index("第3版") < page.index("第2版") < page.index("第1版")  # newest first
        assert [v.number for v in versions(people["dossier"].id, "education_certificate")] == [1, 2, 3]

    def test_an_upload_reads_nothing_back_after_its_commit(self, auth, people):
        browser = auth("owner")
        statements = []
        record = lambda connection, cursor, statement, *rest: statements.append(statement)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            response = browser.upload("education_certificate", sample_png(seed=1), "diploma.png")
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        # The page's message needs only the new version's number, which the service returns: the version is not read
        # back by its id after the commit, and the message still names the number.
        assert response.status_code == 302 and statements
        assert not [statement for statement in statements if "WHERE attachment_versions.id = " in statement]
        assert "学历证书已上传（第 1 版）" in text(browser.get("/me/documents"))

    @pytest.mark.parametrize("data, filename, message", [
        (sample_png(), "scan.pdf", "基本信息表：文件：内容是 PNG，与文件名“scan.pdf”的扩展名不符"),
        (sample_pdf(), "scan.png", "基本信息表：文件：内容是 PDF，与文件名“scan.png”的扩展名不符"),
        (b"just some notes\n" * 20, "notes.txt", "基本信息表：文件：只接受 PDF、JPEG、PNG 格式（按文件内容识别）"),
        (b"just some notes\n" * 20, "notes.pdf", "基本信息表：文件：只接受 PDF、JPEG、PNG 格式（按文件内容识别）"),
        (b"<html><script>alert(1)</script></html>", "page.html", "基本信息表：文件：只接受 PDF、JPEG、PNG 格式"),
        (b"", "empty.pdf", "基本信息表：文件：内容为空"),
        (None, "", "文件：请选择要上传的文件"),
        (png_declaring(20000, 20000), "bomb.png", "基本信息表：文件：图片尺寸过大（超过40000000像素），请缩小后上传"),
        (png_declaring(8000, 6000), "big.png", "基本信息表：文件：图片尺寸过大（8000×6000=48000000像素，最多40000000像素）"),
        (sample_png()[:60], "broken.png", "基本信息表：文件："),
    ])
    def test_a_refused_file_adds_no_version_and_says_why(self, auth, people, data, filename, message):
        browser = auth("owner")
        before = database_snapshot()
        response = browser.upload("basic_info_form", data, filename)
        assert response.status_code == 302
        shown = flashes(browser.get("/me/documents"))
        assert len(shown) == 1 and shown[0].startswith(message)
        assert database_snapshot() == before

    def test_a_decompression_bomb_is_tiny_on_the_wire(self):
        assert len(png_declaring(20000, 20000)) < 200

    def test_an_unknown_slot_is_not_found(self, auth):
        assert auth("owner").upload("passport", sample_pdf(), "passport.pdf").status_code == 404

    def test_an_over_long_comment_is_refused_naming_the_field(self, auth, people):
        browser = auth("owner")
        before = database_snapshot()
        response = browser.upload("other", sample_pdf(), "other.pdf", comment="说" * 201)
        assert response.status_code == 302
        assert "其他材料：说明：不能超过200个字符" in text(browser.get("/me/documents"))
        assert database_snapshot() == before

    def test_uploads_are_refused_once_submitted(self, auth, people, workflow, blobs):
        upload_required(workflow, blobs, people["dossier"], people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
        browser = auth("owner")
        assert "暂不能上传材料" in text(browser.get("/me/documents"))
        before = database_snapshot()
        assert browser.upload("other", sample_pdf(), "other.pdf").status_code == 403
        assert database_snapshot() == before


SMALL_CAP = 64 * 1024


class TestUploadSizeCap:
    @pytest.fixture
    def app(self, tmp_path, sqlite_template):
        """The application with KJDMS_MAX_UPLOAD_BYTES at 64 KB."""
        shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
        application = create_app(make_config(tmp_path, MAX_UPLOAD_BYTES=SMALL_CAP))
        with application.app_context():
            yield application
            db.session.remove()
            db.engine.dispose()

    def test_the_page_states_the_configured_limit(self, auth):
        assert "单个文件不超过 64 KB" in text(auth("owner").get("/me/documents"))

    def test_a_file_over_the_cap_is_refused_naming_the_limit(self, auth):
        browser = auth("owner")
        before = database_snapshot()
        browser.upload("basic_info_form", sample_pdf("x" * (SMALL_CAP + 100)), "big.pdf")
        assert flashes(browser.get("/me/documents")) == ["基本信息表：文件：超过大小上限 64 KB"]
        assert database_snapshot() == before

    def test_a_refused_upload_leaves_no_file_behind_and_an_accepted_one_only_its_blob(self, auth):
        # The part is staged in the store's folder while the request is parsed; a refusal must not keep it.
        store, browser = get_blob_store(), auth("owner")
        before = set(store.iter_hashes())
        browser.upload("basic_info_form", sample_pdf("x" * (SMALL_CAP + 100)), "big.pdf")
        browser.upload("basic_info_form", b"GIF89a" + b"x" * 20000, "scan.pdf")
        assert flashes(browser.get("/me/documents"))[-1] == "基本信息表：文件：只接受 PDF、JPEG、PNG 格式（按文件内容识别）"
        assert set(store.iter_hashes()) == before
        data = sample_pdf("accepted")
        browser.upload("basic_info_form", data, "ok.pdf")
        assert set(store.iter_hashes()) == before | {hashlib.sha256(data).hexdigest()}
        assert not [path for path in store.root.rglob("*") if path.name.startswith(TEMPORARY_PREFIX)]

    def test_a_file_of_exactly_the_cap_is_accepted(self, auth, people):
        browser = auth("owner")
        data = sample_pdf("x")
        data += b"%" * (SMALL_CAP - len(data))
        browser.upload("basic_info_form", data, "exact.pdf")
        assert [v.size for v in versions(people["dossier"].id, "basic_info_form")] == [SMALL_CAP]

    def test_a_request_far_over_the_cap_is_refused_before_it_is_read(self, auth):
        browser = auth("owner")
        before = database_snapshot()
        response = browser.upload("basic_info_form", sample_pdf("x" * (3 * SMALL_CAP)), "huge.pdf")
        assert response.status_code == 413 and "文件过大" in text(response)
        # The limit, and the way back to the form: not a bare refusal.
        assert f"单个文件不超过 {SMALL_CAP // 1024} KB" in text(response)
        assert 'href="/me/documents"' in text(response) and "返回证明材料页面" in text(response)
        assert database_snapshot() == before


class TestSubmitRetractRevise:
    def test_submit_is_refused_while_documents_are_missing(self, auth, people):
        browser = auth("owner")
        before = database_snapshot()
        response = browser.fire("submit")
        assert response.status_code == 302
        [message] = flashes(browser.get("/me/"))
        assert "尚不能提交，还缺少：基本信息表、单位代码证、学历证书" in message
        assert database_snapshot() == before

    def test_submit_works_once_complete(self, auth, people):
        browser = auth("owner")
        upload_all(browser, people["dossier"])
        assert "资料已齐全，可以提交审核" in text(browser.get("/me/"))
        assert browser.fire("submit").status_code == 302
        page = text(browser.get("/me/"))
        assert "已提交审核" in page and "待审核" in page and ">撤回</button>" in page
        dossier = fresh(Dossier, people["dossier"].id)
        assert dossier.state == "submitted"
        assert [(row.action, row.actor_role) for row in dossier.history] == [("submit", "owner")]

    def test_a_submit_reads_the_dossier_and_what_the_change_reads_of_it_at_once(self, auth, people):
        browser = auth("owner")
        upload_all(browser, people["dossier"])
        page = browser.get("/me/")
        submit = lambda: browser.post("/me/transition/submit", data={  # noqa: E731
            "csrf_token": csrf_of(page), "lock_version": lock_version_of(page)})
        statements = sql_of(submit)
        # The person's dossiers come with their documents, region chain, person and account in one statement
        # (services/working_copy.effective_and_open_copy for_change): the change reads nothing of them again.
        assert [number for number, sql in enumerate(statements) if "JOIN attachments" in sql] == [1]
        assert len(statements) == SUBMIT_REQUEST_STATEMENTS, statements
        assert fresh(Dossier, people["dossier"].id).state == "submitted"

    def test_a_submit_from_a_stale_page_is_a_conflict(self, auth, people):
        browser = auth("owner")
        upload_all(browser, people["dossier"])
        stale = browser.get("/me/")
        browser.upload("other", sample_pdf("later"), "later.pdf")  # another tab changed the dossier meanwhile
        response = browser.post("/me/transition/submit", data={"csrf_token": csrf_of(stale),
                                                               "lock_version": lock_version_of(stale)})
        assert response.status_code == 302
        assert any("该档案已被他人处理或修改" in message for message in flashes(browser.get("/me/")))
        assert fresh(Dossier, people["dossier"].id).state == "draft"

    def test_retract_while_submitted(self, auth, people):
        browser = auth("owner")
        upload_all(browser, people["dossier"])
        browser.fire("submit")
        browser.fire("retract")
        assert "已撤回" in text(browser.get("/me/"))
        assert fresh(Dossier, people["dossier"].id).state == "draft"

    def test_retract_is_refused_in_draft(self, auth, people):
        browser = auth("owner")
        before = database_snapshot()
        browser.fire("retract")
        assert flashes(browser.get("/me/")) == ["「填报中」状态下不能执行「撤回」"]
        assert database_snapshot() == before

    @pytest.mark.parametrize("lock_version", ["abc", "1.5", "-1", ""])  # empty: 400 as on every page
    def test_a_malformed_page_version_is_a_bad_request(self, auth, lock_version):
        browser = auth("owner")
        before = database_snapshot()
        response = browser.submit("/me/transition/submit", {"lock_version": lock_version}, page="/me/")
        assert response.status_code == 400
        assert database_snapshot() == before

    def test_a_reviewer_transition_is_not_offered_to_the_owner(self, auth, people):
        browser = auth("owner")
        assert browser.submit("/me/transition/approve", page="/me/").status_code == 404
        assert fresh(Dossier, people["dossier"].id).state == "draft"

    def test_the_reviewers_reason_is_shown_and_revise_reopens_the_draft(self, auth, people, workflow, blobs):
        upload_required(workflow, blobs, people["dossier"], people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "reject", people["reviewer"], "学历证书不清晰")
        browser = auth("owner")
        page = text(browser.get("/me/"))
        assert "已退回" in page and "学历证书不清晰" in page and ">修改</button>" in page
        browser.fire("revise")
        assert fresh(Dossier, people["dossier"].id).state == "draft"
        assert browser.submit("/me/edit", basic_information(phone="0421-2855527")).status_code == 302
