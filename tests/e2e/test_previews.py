"""In the browser: a PDF that cannot be previewed still shows an image on the review page, saying why."""
from __future__ import annotations

from playwright.sync_api import expect

from kjdms.backends import get_blob_store, get_workflow
from kjdms.extensions import db
from kjdms.services.attachments import add_attachment_version
from kjdms.services.lifecycle import fire_transition
from tests.e2e.conftest import DESKTOP, sign_in_staff
from tests.e2e.test_browser_loop import previews_loaded
from tests.helpers import applicant, upload_required

BROKEN_PDF = b"%PDF-1.4\n" + b"this is not really a pdf\n" * 10


def test_an_unrenderable_pdf_shows_a_notice_in_place_of_its_preview(chromium, site, camera):
    with site.app.app_context():
        workflow, blobs = get_workflow(), get_blob_store()
        dossier, owner = applicant(name="李明", region_code="211302")
        upload_required(workflow, blobs, dossier, owner)
        add_attachment_version(db.session, workflow, blobs, dossier, "basic_info_form", BROKEN_PDF, owner,
                               filename="基本信息表.pdf")
        fire_transition(db.session, workflow, dossier, "submit", owner)
        dossier_id, documents = dossier.id, len(dossier.attachments)
        db.session.remove()
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")
    try:
        page = context.new_page()
        sign_in_staff(page, site)
        page.goto(f"{site.url}/review/{dossier_id}")
        expect(page.get_by_role("heading", name="李明")).to_be_visible()
        # Every document shows an image: the broken one a notice (answered 415), not a broken-image icon.
        assert previews_loaded(page) == documents
        camera.shoot(page, "unrenderable-preview")
    finally:
        context.close()
