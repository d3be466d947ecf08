"""Downloads and inline previews of attachment versions: headers, exact content, who may fetch them."""
import io
import shutil
from urllib.parse import quote

import pytest
from PIL import Image

from kjdms.extensions import db
from kjdms.documents.text import extract_text
from kjdms.models import Dossier
from kjdms.samples import sample_pdf, sample_png
from kjdms.services.lifecycle import fire_transition
from tests.helpers import applicant, upload_required
from tests.webclient import fresh

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def uploaded(browser, dossier_id, slot, data, filename):
    """Upload through the page and return the version it made."""
    assert browser.upload(slot, data, filename).status_code == 302
    return fresh(Dossier, dossier_id).attachment(slot).current


def assert_safe_headers(response):
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


class TestDownload:
    def test_a_pdf_downloads_under_its_utf8_name_with_exactly_the_stored_bytes(self, auth, people, blobs):
        owner = auth("owner")
        data = sample_pdf("diploma")
        version = uploaded(owner, people["dossier"].id, "education_certificate", data, "学历证书（扫描件）.pdf")
        response = owner.get(f"/files/{version.id}")
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        fallback = f"{people['dossier'].number}-education_certificate-v1.pdf"
        assert response.headers["Content-Disposition"] == (
            f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote('学历证书（扫描件）.pdf', safe='')}")
        assert_safe_headers(response)
        assert response.data == blobs.read(version.sha256) == data

    def test_an_image_downloads_as_the_re_encoded_bytes_the_store_holds(self, auth, people, blobs):
        owner = auth("owner")
        data = sample_png(seed=3)
        version = uploaded(owner, people["dossier"].id, "basic_info_form", data, "照片.png")
        response = owner.get(f"/files/{version.id}")
        assert response.mimetype == "image/png" and response.data == blobs.read(version.sha256)
        assert response.data.startswith(PNG_SIGNATURE)
        assert "filename*=UTF-8''%E7%85%A7%E7%89%87.png" in response.headers["Content-Disposition"]

    def test_semicolons_and_commas_in_the_name_cannot_break_the_header(self, auth, people):
        owner = auth("owner")
        version = uploaded(owner, people["dossier"].id, "other", sample_pdf(), "说明; filename=evil.exe, b.pdf")
        disposition = owner.get(f"/files/{version.id}").headers["Content-Disposition"]
        assert disposition == (f'attachment; filename="{people["dossier"].number}-other-v1.pdf"; '
                               "filename*=UTF-8''%E8%AF%B4%E6%98%8E%3B%20filename%3Devil.exe%2C%20b.pdf")

    def test_every_version_stays_downloadable(self, auth, people, blobs):
        owner = auth("owner")
        first = uploaded(owner, people["dossier"].id, "other", sample_pdf("one"), "one.pdf")
        second = uploaded(owner, people["dossier"].id, "other", sample_pdf("two"), "two.pdf")
        assert owner.get(f"/files/{first.id}").data == sample_pdf("one")
        assert owner.get(f"/files/{second.id}").data == sample_pdf("two")
        assert "filename=\"" + people["dossier"].number + "-other-v2.pdf\"" in owner.get(
            f"/files/{second.id}").headers["Content-Disposition"]

    def test_an_unknown_version_is_not_found(self, auth):
        assert auth("owner").get("/files/99999").status_code == 404

    def test_anonymous_visitors_are_sent_to_sign_in(self, client, people, workflow, blobs):
        upload_required(workflow, blobs, people["dossier"], people["owner"])
        version = people["dossier"].attachments[0].current
        for path in (f"/files/{version.id}", f"/files/{version.id}/preview.png"):
            response = client.get(path)
            assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


class TestPreview:
    def test_a_pdf_previews_as_its_first_page_in_png(self, auth, people):
        owner = auth("owner")
        version = uploaded(owner, people["dossier"].id, "basic_info_form", sample_pdf("page one"), "form.pdf")
        response = owner.get(f"/files/{version.id}/preview.png")
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.data.startswith(PNG_SIGNATURE)
        assert response.headers["Content-Disposition"] == "inline"
        assert_safe_headers(response)

    def test_an_image_previews_as_itself(self, auth, people, blobs):
        owner = auth("owner")
        version = uploaded(owner, people["dossier"].id, "basic_info_form", sample_png(seed=5), "form.png")
        response = owner.get(f"/files/{version.id}/preview.png")
        assert response.mimetype == "image/png" and response.data == blobs.read(version.sha256)

    def test_a_pdf_that_cannot_be_rendered_answers_415_with_an_image_that_says_why(self, auth, people):
        owner = auth("owner")
        broken = b"%PDF-1.4\n" + b"this is not really a pdf\n" * 10
        version = uploaded(owner, people["dossier"].id, "basic_info_form", broken, "broken.pdf")
        response = owner.get(f"/files/{version.id}/preview.png")
        assert response.status_code == 415 and response.mimetype == "image/png"
        assert Image.open(io.BytesIO(response.data)).width == 900
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        if shutil.which("tesseract"):  # .ci/run installs it; the page shows this in place of the preview
            read = extract_text(response.data, "image/png").text
            assert "无法预览" in read and "下载" in read


class TestWhoMayFetch:
    """Files follow the dossier's view permission: its owner, and staff of its region as the state allows."""

    @pytest.fixture
    def version(self, people, workflow, blobs):
        upload_required(workflow, blobs, people["dossier"], people["owner"])
        return people["dossier"].attachment("basic_info_form").current

    @pytest.mark.parametrize("role, status", [
        ("owner", 200), ("reviewer", 200), ("city_reviewer", 200), ("administrator", 200),
        ("other_reviewer", 404), ("credit_officer", 404), ("archivist", 404),
    ])
    def test_in_draft(self, auth, version, role, status):
        assert auth(role).get(f"/files/{version.id}").status_code == status

    @pytest.mark.parametrize("role, status", [
        ("credit_officer", 200), ("archivist", 200), ("other_reviewer", 404),
    ])
    def test_once_approved(self, auth, people, workflow, version, role, status):
        fire_transition(db.session, workflow, people["dossier"], "submit", people["owner"])
        fire_transition(db.session, workflow, people["dossier"], "approve", people["reviewer"])
        assert auth(role).get(f"/files/{version.id}").status_code == status
        assert auth(role).get(f"/files/{version.id}/preview.png").status_code == status

    def test_another_applicant_gets_not_found(self, browser, version):
        _, neighbour = applicant(name="王芳")
        other = browser().enter_as(neighbour)
        assert other.get(f"/files/{version.id}").status_code == 404
        assert other.get(f"/files/{version.id}/preview.png").status_code == 404
