"""The whole loop in a browser: register, fill in, print, upload, submit; reject, revise, approve; change."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from kjdms.samples import sample_pdf, sample_png
from tests.e2e.conftest import PHONE, REVIEWER, sign_in_applicant, watched_pages
from tests.helpers import STAFF_PASSWORD, USCC_SHUANGTA, make_id_number

NAME = "王晓梅"
PASSWORD = "Xiaomei2019"
OLD_EMPLOYER = "朝阳市双塔区示范会计服务有限公司"
NEW_EMPLOYER = "朝阳市双塔区新兴财务咨询有限公司"
REASON = "学历证书照片不清晰，请重新上传"
# Generous for a loaded CI machine; a page of this site normally answers in well under a second.
expect.set_options(timeout=10_000)


def flash(page: Page, text: str) -> None:
    """Expect the flashed message containing text."""
    expect(page.get_by_role("alert").filter(has_text=text)).to_be_visible()


def expect_state(page: Page, title: str) -> None:
    """Expect the state badge at the top of a dossier page to read title."""
    expect(page.locator("main > div.d-flex > div > .badge")).to_have_text(title)


def sign_out(page: Page) -> None:
    """Press the sign-out button in the navigation bar."""
    page.get_by_role("button", name="退出").click()
    flash(page, "您已退出登录。")


def upload(page: Page, title: str, path) -> None:
    """Choose path for the document slot titled title and upload it."""
    form = page.locator("form").filter(has=page.get_by_label(title, exact=True))
    form.get_by_label(title, exact=True).set_input_files(path)
    form.get_by_role("button", name="上传").click()
    flash(page, f"{title}已上传")


def open_from_queue(page: Page, site, camera, shot: str) -> None:
    """Go to the reviewer's queue, find the applicant there and open the review page."""
    page.goto(site.url + "/")
    page.get_by_role("link", name="待审核").click()
    expect(page.get_by_role("heading", name=re.compile("^待审核档案"))).to_be_visible()
    row = page.get_by_role("row").filter(has_text=NAME)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("双塔区")
    camera.shoot(page, f"{shot}-worklist")
    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=re.compile(f"^{NAME}"))).to_be_visible()
    expect_state(page, "待审核")


def previews_loaded(page: Page) -> int:
    """Return how many document previews on the page really show an image."""
    return page.evaluate("""() => Promise.all([...document.querySelectorAll('.preview img')].map(img => {
        img.loading = 'eager';
        return img.complete ? img.naturalWidth : new Promise(done => {
            img.onload = () => done(img.naturalWidth); img.onerror = () => done(0); });
    })).then(widths => widths.filter(width => width > 0).length)""")


def test_register_submit_reject_revise_approve_and_change(chromium, site, camera, tmp_path):
    """A new applicant and the 双塔区 reviewer go through the whole loop by clicking and typing."""
    id_number = make_id_number(region="211302", birth="19910815")
    files = tmp_path / "files"
    files.mkdir()
    (files / "单位代码证.png").write_bytes(sample_png(640, 400, seed=3))
    (files / "学历证书.png").write_bytes(sample_png(480, 640, seed=5))
    (files / "学历证书-清晰.png").write_bytes(sample_png(960, 1280, seed=7))
    (files / "资格证书.pdf").write_bytes(sample_pdf("Accounting qualification certificate (junior)"))
    with watched_pages(chromium, camera, "applicant", "reviewer") as (problems, (applicant, reviewer)):
        # 1. Register, fill in the basic information, download the printable form.
        applicant.goto(site.url + "/")
        expect(applicant.get_by_role("heading", name="会计人员信息采集")).to_be_visible()
        camera.shoot(applicant, "home")
        applicant.get_by_role("link", name="新人员注册").click()
        expect(applicant.get_by_role("heading", name="新人员注册")).to_be_visible()
        applicant.get_by_label("姓名", exact=True).fill(NAME)
        applicant.get_by_label("身份证号", exact=True).fill(id_number)
        applicant.get_by_label("设置密码", exact=True).fill(PASSWORD)
        applicant.get_by_label("确认密码", exact=True).fill(PASSWORD)
        camera.shoot(applicant, "register")
        applicant.get_by_role("button", name="注册").click()
        flash(applicant, "注册成功，请填写基本信息。")
        expect_state(applicant, "填报中")
        expect(applicant.get_by_text("以下内容尚未完成：")).to_be_visible()
        camera.shoot(applicant, "status-new")

        applicant.get_by_role("link", name="填写基本信息").click()
        expect(applicant.get_by_role("heading", name="基本信息")).to_be_visible()
        expect(applicant.get_by_text("归属地区怎么选（属地化原则）")).to_be_visible()
        expect(applicant.get_by_label("身份证号", exact=True)).to_have_value(id_number)
        applicant.get_by_label("联系电话", exact=True).fill("13904215678")
        applicant.get_by_label("学历", exact=True).select_option(label="大学本科")
        applicant.get_by_label("在辽宁行政区域内从事会计工作的人员", exact=True).check()
        applicant.get_by_label("出纳", exact=True).check()
        applicant.get_by_label("工作单位名称", exact=True).fill(OLD_EMPLOYER)
        applicant.get_by_label("统一社会信用代码", exact=True).fill(USCC_SHUANGTA)
        applicant.get_by_label("工作单位所在地区", exact=True).select_option(label="双塔区")
        applicant.get_by_label("户籍所在地区", exact=True).select_option(label="双塔区")
        applicant.get_by_label("会计专业技术资格", exact=True).select_option(label="初级")
        applicant.get_by_label("资格证书编号", exact=True).fill("2019211302001")
        camera.shoot(applicant, "basic-information")
        applicant.get_by_role("button", name="保存").click()
        flash(applicant, "已保存")
        expect(applicant.get_by_role("row", name=re.compile("工作单位"))).to_contain_text(OLD_EMPLOYER)
        expect(applicant.get_by_role("row", name=re.compile("归属地区"))).to_contain_text("双塔区")
        camera.shoot(applicant, "status-filled")

        with applicant.expect_download() as download_info:
            applicant.get_by_role("link", name="下载打印基本信息表").click()
        download = download_info.value
        assert download.suggested_filename.endswith("基本信息表.pdf")
        printed = files / "基本信息表.pdf"
        download.save_as(printed)
        assert printed.read_bytes().startswith(b"%PDF")
        download.save_as(camera.folder / "basic-information-form.pdf")

        # 2. Upload the four documents (the signed form is the printed one) and submit.
        applicant.get_by_role("link", name="上传证明材料").click()
        expect(applicant.get_by_role("heading", name="证明材料")).to_be_visible()
        expect(applicant.get_by_text("必传")).to_have_count(4)
        upload(applicant, "基本信息表", printed)
        upload(applicant, "单位代码证", files / "单位代码证.png")
        upload(applicant, "学历证书", files / "学历证书.png")
        upload(applicant, "会计专业技术资格证书", files / "资格证书.pdf")
        expect(applicant.get_by_text("已上传", exact=True)).to_have_count(4)
        camera.shoot(applicant, "documents")
        applicant.locator("#nav").get_by_role("link", name="我的档案").click()
        expect(applicant.get_by_text("资料已齐全，可以提交审核。")).to_be_visible()
        applicant.get_by_role("button", name="提交审核").click()
        flash(applicant, "已提交审核。")
        expect_state(applicant, "待审核")
        camera.shoot(applicant, "status-submitted")
        sign_out(applicant)

        # 3. The reviewer signs in, finds it in the queue, rejects it with a reason.
        reviewer.goto(site.url + "/")
        reviewer.get_by_role("link", name="登录", exact=True).click()
        reviewer.get_by_role("tab", name="财政部门工作人员").click()
        pane = reviewer.locator("#staff")
        pane.get_by_label("用户名", exact=True).fill(REVIEWER)
        pane.get_by_label("密码", exact=True).fill(STAFF_PASSWORD)
        camera.shoot(reviewer, "staff-login")
        pane.get_by_role("button", name="登录").click()
        open_from_queue(reviewer, site, camera, "reviewer")
        masked = id_number[:4] + "*" * 10 + id_number[-4:]
        expect(reviewer.locator("#id-number")).to_have_text(masked)
        assert id_number not in reviewer.content()
        expect(reviewer.get_by_role("row", name=re.compile("工作单位名称"))).to_contain_text(OLD_EMPLOYER)
        assert previews_loaded(reviewer) == 4
        camera.shoot(reviewer, "review")
        reviewer.get_by_label("意见", exact=True).fill(REASON)
        reviewer.get_by_text("退回时可勾选有问题的项目").click()
        reviewer.get_by_label("学历证书", exact=True).check()
        reviewer.get_by_role("button", name="退回").click()
        flash(reviewer, f"已退回：{NAME}")
        expect(reviewer.get_by_text("没有待审核的档案。")).to_be_visible()
        camera.shoot(reviewer, "worklist-after-reject")

        # 4. The applicant reads the reason, revises, uploads a clearer certificate, submits again.
        sign_in_applicant(applicant, site, NAME, id_number, PASSWORD)
        expect_state(applicant, "已退回")
        expect(applicant.get_by_role("row").filter(has_text=REASON)).to_contain_text("有问题的项目：学历证书")
        camera.shoot(applicant, "status-rejected")
        camera.shoot(applicant, "status-rejected-phone", viewport=PHONE)
        applicant.get_by_role("button", name="修改").click()
        flash(applicant, "档案已重新打开，可以修改了")
        expect_state(applicant, "填报中")
        applicant.get_by_role("link", name="上传证明材料").click()
        upload(applicant, "学历证书", files / "学历证书-清晰.png")
        expect(applicant.get_by_text("第2版")).to_be_visible()
        camera.shoot(applicant, "documents-revised")
        applicant.locator("#nav").get_by_role("link", name="我的档案").click()
        applicant.get_by_role("button", name="提交审核").click()
        flash(applicant, "已提交审核。")

        # 5. The reviewer approves.
        open_from_queue(reviewer, site, camera, "reviewer-again")
        # The rejected certificate, one click away, in the comparison with the rejected submission.
        expect(reviewer.locator("#resubmission").get_by_role("link", name="第1版")).to_be_visible()
        reviewer.get_by_role("button", name="审核确认").click()
        flash(reviewer, f"已审核确认：{NAME}")

        applicant.reload()
        expect_state(applicant, "已审核确认")
        camera.shoot(applicant, "status-approved")

        # 6. A working copy: change the employer, submit; the reviewer sees the diff and approves.
        applicant.get_by_role("button", name="信息发生变化，申请变更").click()
        flash(applicant, "已开始信息变更")
        expect(applicant.get_by_role("heading", name=re.compile(r"^基本信息\s*（信息变更）"))).to_be_visible()
        expect(applicant.get_by_label("姓名", exact=True)).to_have_attribute("readonly", "")
        applicant.get_by_label("工作单位名称", exact=True).fill(NEW_EMPLOYER)
        camera.shoot(applicant, "change-basic-information")
        applicant.get_by_role("button", name="保存").click()
        flash(applicant, "已保存（修改了 1 项）。")
        change = applicant.locator(".card").filter(has=applicant.get_by_role("heading", name=re.compile("^信息变更")))
        expect(change.get_by_role("row").filter(has_text="工作单位名称")).to_contain_text(NEW_EMPLOYER)
        # Until the change is approved the approved dossier stays the effective one.
        expect(applicant.locator("table.table-fields").get_by_role("row", name=re.compile("工作单位"))
               ).to_contain_text(OLD_EMPLOYER)
        camera.shoot(applicant, "status-change-draft")
        # The form signed for the old employer no longer holds: print, sign and upload it anew.
        expect(applicant.get_by_text("按变更后信息重新打印、签字盖章的基本信息表")).to_be_visible()
        with applicant.expect_download() as download_info:
            applicant.get_by_role("link", name="下载打印基本信息表").click()
        reprinted = files / "变更后基本信息表.pdf"
        download_info.value.save_as(reprinted)
        applicant.get_by_role("link", name="上传证明材料").click()
        upload(applicant, "基本信息表", reprinted)
        applicant.locator("#nav").get_by_role("link", name="我的档案").click()
        expect(applicant.get_by_text("资料已齐全，可以提交审核。")).to_be_visible()
        applicant.get_by_role("button", name="提交审核").click()
        flash(applicant, "已提交审核。")

        open_from_queue(reviewer, site, camera, "reviewer-change")
        expect(reviewer.get_by_role("heading", level=1).locator(".badge")).to_have_text("信息变更")
        diff = reviewer.locator(".card").filter(has=reviewer.get_by_role("heading", name="本次变更内容"))
        row = diff.get_by_role("row").filter(has_text="工作单位名称")
        expect(row).to_have_count(1)
        expect(row.get_by_role("cell")).to_have_text(["工作单位名称", OLD_EMPLOYER, NEW_EMPLOYER])
        camera.shoot(reviewer, "review-change")
        camera.shoot(reviewer, "review-change-phone", viewport=PHONE)
        reviewer.get_by_role("button", name="审核确认").click()
        flash(reviewer, f"已审核确认：{NAME}")

        applicant.reload()
        expect(applicant.get_by_role("row", name=re.compile("工作单位"))).to_contain_text(NEW_EMPLOYER)
        expect(applicant.get_by_text(re.compile(r"信息变更（变更单 \d+）审核确认，已更新档案"))).to_be_visible()
        expect(applicant.get_by_role("button", name="信息发生变化，申请变更")).to_be_visible()
        camera.shoot(applicant, "status-changed")
    assert problems == []

