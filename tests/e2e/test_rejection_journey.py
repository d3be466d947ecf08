"""In a browser, the issue's one run: a rejection with flagged items, the applicant sees them on every page, fixes
them and submits again, the reviewer sees the resubmission as a diff and approves, the applicant reads the approval
on the notices page and the SMTP server run by the test received it; screenshots at desktop width and at 390 px."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from kjdms.backends import backends, get_blob_store, get_workflow
from kjdms.extensions import db
from kjdms.messaging import SmtpMailer
from kjdms.samples import sample_png
from kjdms.services.lifecycle import fire_transition
from kjdms.worker import work_once
from tests.e2e.conftest import DESKTOP, PHONE, Camera, sign_in_applicant, sign_in_staff, watched_pages
from tests.helpers import APPLICANT_PASSWORD, applicant, upload_required
from tests.notifications.smtp_server import SmtpServer

NAME = "阿依古丽·买买提"
OLD_EMPLOYER = "朝阳市双塔区示范会计服务有限公司"
NEW_EMPLOYER = "朝阳市双塔区示范会计服务有限公司财务部"
REASON = "工作单位名称与单位代码证不一致；学历证书照片不清晰，请重新上传"
EMAIL = "ayiguli@example.com"
expect.set_options(timeout=10_000)


@pytest.fixture
def mailbox(site):
    """A real SMTP server the site's notices are e-mailed to (delivered when the test runs the worker's round)."""
    with SmtpServer() as server:
        with site.app.app_context():
            backends().mailer = SmtpMailer("127.0.0.1", server.port, sender="kjdms@czt.ln.gov.cn", timeout=5)
        yield server


@pytest.fixture
def submitted(site):
    """A complete dossier of NAME in 双塔区 whose owner gave an e-mail address, submitted; returns (id, ID number)."""
    with site.app.app_context():
        dossier, owner = applicant(name=NAME, employer_name=OLD_EMPLOYER)
        owner.email = EMAIL
        db.session.commit()
        upload_required(get_workflow(), get_blob_store(), dossier, owner)
        fire_transition(db.session, get_workflow(), dossier, "submit", owner)
        found = dossier.id, dossier.person.id_number
        db.session.remove()
    return found


def both_widths(camera: Camera, page: Page, name: str) -> None:
    camera.shoot(page, name)
    camera.shoot(page, f"{name}-390px", viewport=PHONE)


def expect_rejection_shown(page: Page) -> None:
    box = page.locator("#rejection")
    expect(box).to_contain_text(REASON)
    expect(box.locator("#rejection-flags li")).to_have_text([re.compile("^工作单位名称"), re.compile("^学历证书")])


def test_reject_with_flags_fix_resubmit_approve_and_notify(chromium, site, submitted, mailbox, camera, tmp_path):
    dossier_id, id_number = submitted
    clearer = tmp_path / "学历证书-清晰.png"
    clearer.write_bytes(sample_png(960, 1280, seed=11))
    with watched_pages(chromium, camera, "reviewer", "applicant") as (problems, (reviewer, person)):
        # 1. The reviewer rejects, flagging the employer's name and the education certificate.
        sign_in_staff(reviewer, site)
        reviewer.goto(f"{site.url}/review/{dossier_id}")
        reviewer.get_by_label("意见", exact=True).fill(REASON)
        reviewer.get_by_text("退回时可勾选有问题的项目").click()
        reviewer.get_by_label("工作单位名称", exact=True).check()
        reviewer.get_by_label("学历证书", exact=True).check()
        camera.shoot(reviewer, "reviewer-rejects")
        reviewer.get_by_role("button", name="退回").click()
        expect(reviewer.get_by_role("alert").filter(has_text=f"已退回：{NAME}")).to_be_visible()

        # 2. The applicant sees the reason and the flags on every page, with the way on.
        sign_in_applicant(person, site, NAME, id_number, APPLICANT_PASSWORD)
        expect_rejection_shown(person)
        both_widths(camera, person, "me-rejected")
        for path, action in (("/me/edit", "修改基本信息"), ("/me/documents", "上传材料")):
            person.goto(site.url + path)
            expect_rejection_shown(person)
            expect(person.locator("#locked")).to_contain_text(f"档案已被退回，暂不能{action}")
            both_widths(camera, person, f"{path.rsplit('/', 1)[1]}-rejected")
        person.locator("#rejection").get_by_role("button", name="修改").click()
        expect(person.get_by_role("alert").filter(has_text="档案已重新打开，可以修改了")).to_be_visible()
        expect(person.get_by_role("alert").filter(has_text="已修改。")).to_have_count(0)

        # 3. The flagged items are marked where they are fixed; the applicant fixes them and submits.
        person.locator("#rejection").get_by_role("link", name="工作单位名称").click()
        flagged = person.locator("#field-employer_name")
        expect(flagged).to_have_class(re.compile("flagged-item"))
        expect(flagged).to_contain_text("退回意见指出此项有问题")
        expect_rejection_shown(person)
        both_widths(camera, person, "edit-flagged")
        person.get_by_label("工作单位名称", exact=True).fill(NEW_EMPLOYER)
        person.get_by_role("button", name="保存").click()
        expect(person.get_by_role("alert").filter(has_text="已保存（修改了 1 项）")).to_be_visible()
        expect_rejection_shown(person)  # still there until the dossier is submitted again
        person.goto(site.url + "/me/documents")
        slot = person.locator("#slot-education_certificate")
        expect(slot).to_contain_text("退回意见指出此项材料有问题")
        both_widths(camera, person, "documents-flagged")
        slot.get_by_label("学历证书", exact=True).set_input_files(clearer)
        slot.get_by_role("button", name="上传").click()
        expect(person.get_by_role("alert").filter(has_text="学历证书已上传（第 2 版）")).to_be_visible()
        person.locator("#nav").get_by_role("link", name="我的档案").click()
        person.get_by_role("button", name="提交审核").click()
        expect(person.get_by_role("alert").filter(has_text="已提交审核。")).to_be_visible()
        expect(person.locator("#rejection")).to_have_count(0)

        # 4. The reviewer sees the resubmission against the rejected submission, and approves.
        reviewer.goto(site.url + "/review/")
        both_widths(camera, reviewer, "worklist")
        reviewer.get_by_role("row").filter(has_text=NAME).get_by_role("link").first.click()
        box = reviewer.locator("#resubmission")
        expect(box).to_contain_text(REASON)
        expect(box).to_contain_text("退回时指出的项目：工作单位名称、学历证书")
        expect(box.get_by_role("row").filter(has_text="工作单位名称").get_by_role("cell")).to_have_text(
            [re.compile("^工作单位名称"), OLD_EMPLOYER, NEW_EMPLOYER])
        expect(box.get_by_role("row").filter(has_text="学历证书").get_by_role("cell")).to_have_text(
            [re.compile("^学历证书"), "第1版", "第2版（新文件）"])
        expect(box.locator(".untouched-flags")).to_have_count(0)
        both_widths(camera, reviewer, "review-resubmission")
        reviewer.get_by_role("button", name="审核确认").click()
        expect(reviewer.get_by_role("alert").filter(has_text=f"已审核确认：{NAME}")).to_be_visible()
        reviewer.get_by_role("link", name="我审核过的", exact=True).click()
        expect(reviewer.locator("#decided tbody tr")).to_have_count(2)
        expect(reviewer.locator("#decided tbody tr").first).to_contain_text("审核确认")
        both_widths(camera, reviewer, "decided")

        person.reload()
        expect(person.locator("main > div.d-flex > div > .badge")).to_have_text("已审核确认")
        expect(person.locator("table.table-sm").last).to_contain_text("双塔区财政局 · 审核人员")
        camera.shoot(person, "me-approved")

        # 5. The worker's round mails both decisions; the applicant reads the approval on the notices page.
        work_once(site.app, calendar=False)
        assert [(recipients, message["Subject"]) for recipients, message in mailbox.messages] == [
            ([EMAIL], "您的会计人员信息档案被退回，请修改后重新提交"), ([EMAIL], "您的会计人员信息档案已审核确认")]
        assert REASON in mailbox.messages[0][1].get_content()
        assert "已由双塔区财政局审核确认" in mailbox.messages[1][1].get_content()
        navigation = person.locator("#nav a[href='/notices/']")
        expect(navigation.locator(".badge")).to_have_text("2")
        navigation.click()
        approval = person.locator("li.notice-unread").first
        expect(approval).to_contain_text("您的会计人员信息档案已审核确认")
        expect(approval).to_contain_text("已由双塔区财政局审核确认")
        expect(person.locator("li.notice-unread").last).to_contain_text(f"退回原因：{REASON}")
        camera.shoot(person, "notices")
        # On a phone the folded menu hides the navigation: the count stays beside the menu button.
        person.set_viewport_size(PHONE)
        expect(person.locator("nav a.d-md-none[href='/notices/']")).to_have_text("通知 2")
        camera.shoot(person, "notices-390px")
        assert person.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        person.set_viewport_size(DESKTOP)
        approval.get_by_role("button", name="标为已读").click()
        expect(navigation.locator(".badge")).to_have_text("1")
        expect(person.get_by_text("已由双塔区财政局审核确认")).to_be_visible()  # read, and still there
        person.locator("li", has_text="已审核确认").get_by_role("link", name="去办理").click()
        expect(person.get_by_role("heading", name=re.compile("^我的档案"))).to_be_visible()
        assert problems == []
