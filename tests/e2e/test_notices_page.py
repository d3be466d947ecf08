"""In Chromium: a rejected applicant finds the notice with its reason (desktop and 390 px) and the e-mail it sent."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from kjdms.backends import backends
from kjdms.config import PROJECT_ROOT
from kjdms.extensions import db
from kjdms.messaging import SmtpMailer
from kjdms.models import User
from kjdms.services.lifecycle import fire_transition
from kjdms.worker import work_once
from tests.e2e.conftest import DESKTOP, PHONE, REVIEWER, Camera
from tests.helpers import APPLICANT_PASSWORD, applicant, upload_required
from tests.notifications.smtp_server import SmtpServer

REASON = "学历证书照片不清晰，请重新上传"
SHOTS = PROJECT_ROOT / "test-artifacts" / "e2e-notices"


def rejected_applicant(site):
    """Register 张伟 with an e-mail address, submit, and have the 双塔区 reviewer reject with REASON."""
    with site.app.app_context():
        from kjdms.backends import get_blob_store, get_workflow
        from sqlalchemy import select

        workflow, blobs = get_workflow(), get_blob_store()
        dossier, owner = applicant(name="张伟")
        owner.email = "zhangwei@example.com"
        db.session.commit()
        upload_required(workflow, blobs, dossier, owner)
        fire_transition(db.session, workflow, dossier, "submit", owner)
        reviewer = db.session.scalar(select(User).where(User.username == REVIEWER))
        fire_transition(db.session, workflow, dossier, "reject", reviewer, REASON)
        id_number = owner.person.id_number
        db.session.remove()
    return id_number


def test_the_rejected_applicant_reads_the_notice_marks_it_read_and_got_the_mail(chromium, site):
    id_number = rejected_applicant(site)
    with SmtpServer() as server:
        with site.app.app_context():
            backends().mailer = SmtpMailer("127.0.0.1", server.port, sender="kjdms@czt.ln.gov.cn", timeout=5)
        work_once(site.app, calendar=False)
    [(recipients, message)] = server.messages
    assert recipients == ["zhangwei@example.com"] and REASON in message.get_content()

    SHOTS.mkdir(parents=True, exist_ok=True)
    camera = Camera(SHOTS)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(site.url + "/login")
        pane = page.locator("#applicant")
        pane.get_by_label("姓名", exact=True).fill("张伟")
        pane.get_by_label("身份证号", exact=True).fill(id_number)
        pane.get_by_label("密码", exact=True).fill(APPLICANT_PASSWORD)
        pane.get_by_role("button", name="登录").click()
        expect(page.get_by_role("heading", name=re.compile("^我的档案"))).to_be_visible()
        navigation = page.locator("#nav a[href='/notices/']")
        expect(navigation).to_contain_text("通知")
        expect(navigation.locator(".badge")).to_have_text("1")
        navigation.click()
        expect(page.get_by_role("heading", name="通知", exact=True)).to_be_visible()
        notice = page.locator("li.notice-unread")
        expect(notice).to_contain_text("您的会计人员信息档案被退回，请修改后重新提交")
        expect(notice).to_contain_text(f"退回原因：{REASON}")
        camera.shoot(page, "notices-desktop")
        # On a phone the folded menu hides the navigation: the count stays beside the menu button.
        page.set_viewport_size(PHONE)
        expect(page.locator("nav a.d-md-none[href='/notices/']")).to_have_text("通知 1")
        camera.shoot(page, "notices-phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.set_viewport_size(DESKTOP)
        notice.get_by_role("button", name="标为已读").click()
        expect(page.locator("li.notice-unread")).to_have_count(0)
        expect(navigation.locator(".badge")).to_have_count(0)
        expect(page.get_by_text(f"退回原因：{REASON}")).to_be_visible()  # read, and still there
        notice_link = page.get_by_role("link", name="去办理")
        notice_link.click()
        expect(page.get_by_role("heading", name=re.compile("^我的档案"))).to_be_visible()
    finally:
        context.close()
