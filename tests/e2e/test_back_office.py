"""The back office in Chromium: appointing and disabling a reviewer; the first administrator made from the shell."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from kjdms import create_app
from kjdms.backends import get_blob_store, get_workflow
from kjdms.config import Config
from kjdms.extensions import db
from kjdms.services.lifecycle import fire_transition
from tests.e2e.conftest import served, sign_in_staff, watched_pages
from tests.e2e.test_browser_loop import flash
from tests.helpers import applicant, staff, upload_required

ADMINISTRATOR = "admin_shuangta"
NEW_REVIEWER = "shenhe_liu"
NEW_NAME = "刘晓燕"
OWN_PASSWORD = "Shuangta2019"
MINE, OTHERS = "王晓梅", "赵志刚"  # a 双塔区 applicant in the queue, and a 龙城区 one who must not show
expect.set_options(timeout=10_000)


def submitted(name: str, region_code: str) -> None:
    """Register name in region_code with every document uploaded, and submit for review."""
    dossier, owner = applicant(name=name, region_code=region_code)
    upload_required(get_workflow(), get_blob_store(), dossier, owner)
    fire_transition(db.session, get_workflow(), dossier, "submit", owner)


def create_reviewer(page: Page, camera) -> str:
    """Fill in the new-account form for the 双塔区 reviewer; return the one-time password shown."""
    page.get_by_role("link", name="工作人员账号").first.click()
    expect(page.get_by_role("heading", name="工作人员账号")).to_be_visible()
    camera.shoot(page, "admin-accounts")
    page.get_by_role("link", name="创建", exact=True).click()
    office = page.get_by_label("所属单位（地区）", exact=True)
    # Only the administrator's own county is on offer: nothing beside or above it.
    expect(office.locator("option")).to_have_text(["辽宁省 / 朝阳市 / 双塔区"])
    page.get_by_label("用户名", exact=True).fill(NEW_REVIEWER)
    page.get_by_label("姓名", exact=True).fill(NEW_NAME)
    page.get_by_label("科室", exact=True).fill("会计科")
    page.get_by_label("联系电话", exact=True).fill("0421-2855527")
    page.get_by_label("角色", exact=True).select_option(label="审核人员")
    camera.shoot(page, "admin-new-account")
    page.get_by_role("button", name="创建账号").click()
    expect(page.get_by_text(f"已创建账号：{NEW_REVIEWER}")).to_be_visible()
    password = page.locator("#one-time-password").inner_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9]{8,}", password), password
    camera.shoot(page, "admin-one-time-password")
    return password


def choose_own_password(page: Page, camera) -> None:
    """On the forced password page: a password naming the user is refused, then a good one is set."""
    expect(page.get_by_role("heading", name="设置新密码")).to_be_visible()
    # Nothing else opens before the password is chosen.
    page.goto(page.url.split("/account/")[0] + "/review/")
    expect(page.get_by_role("heading", name="设置新密码")).to_be_visible()
    camera.shoot(page, "reviewer-must-choose-password")
    for value in (f"{NEW_REVIEWER}9", OWN_PASSWORD):
        page.get_by_label("设置密码", exact=True).fill(value)
        page.get_by_label("确认密码", exact=True).fill(value)
        page.get_by_role("button", name="设置密码").click()
        if value != OWN_PASSWORD:
            expect(page.get_by_text("密码：不能包含用户名", exact=True)).to_be_visible()
            camera.shoot(page, "reviewer-password-refused")
    flash(page, "密码已设置。")


def test_a_county_administrator_appoints_a_reviewer_and_disabling_stops_the_open_page(chromium, site, camera):
    with site.app.app_context():
        staff(ADMINISTRATOR, "administrator", "211302")
        submitted(MINE, "211302")
        submitted(OTHERS, "211303")
        db.session.remove()
    with watched_pages(chromium, camera, "administrator", "reviewer") as (problems, (administrator, reviewer)):
        # 1. The county administrator lands on the back office and creates the reviewer.
        sign_in_staff(administrator, site, ADMINISTRATOR)
        expect(administrator).to_have_url(re.compile(r"/admin/$"))
        expect(administrator.get_by_text("您的管理范围：辽宁省 / 朝阳市 / 双塔区及其下级地区。")).to_be_visible()
        camera.shoot(administrator, "admin-home")
        password = create_reviewer(administrator, camera)

        # 2. The reviewer signs in with the one-time password and must choose their own first.
        sign_in_staff(reviewer, site, NEW_REVIEWER, password)
        choose_own_password(reviewer, camera)
        expect(reviewer.get_by_role("heading", name=re.compile("^待审核档案"))).to_be_visible()
        queue = reviewer.get_by_role("row").filter(has_text=MINE)
        expect(queue).to_have_count(1)
        expect(queue).to_contain_text("双塔区")
        expect(reviewer.get_by_role("row").filter(has_text=OTHERS)).to_have_count(0)
        expect(reviewer.locator("nav")).to_contain_text(NEW_NAME)  # the display name, not the user name
        camera.shoot(reviewer, "reviewer-queue")
        # The one-time password is spent.
        with site.app.app_context():
            from kjdms.models import User
            from kjdms.services.accounts import password_matches

            user = db.session.query(User).filter_by(username=NEW_REVIEWER).one()
            assert not user.must_change_password and not password_matches(user, password)
            db.session.remove()

        # 3. The administrator finds the account in the list and disables it.
        administrator.get_by_role("link", name="查看账号").click()
        expect(administrator.locator("#roles")).to_contain_text("审核人员")
        expect(administrator.locator("#roles")).to_contain_text("辽宁省 / 朝阳市 / 双塔区")
        camera.shoot(administrator, "admin-account-details")
        administrator.get_by_role("button", name="停用账号").click()
        flash(administrator, "账号已停用，该账号的所有登录已立即失效")
        expect(administrator.get_by_role("button", name="启用账号")).to_be_visible()
        camera.shoot(administrator, "admin-account-disabled")
        administrator.get_by_role("link", name="账号列表").click()
        row = administrator.get_by_role("row").filter(has_text=NEW_REVIEWER)
        expect(row).to_contain_text("已停用")
        expect(row).to_contain_text(NEW_NAME)
        camera.shoot(administrator, "admin-accounts-after-disable")

        # 4. The reviewer's open queue page stops working on the next click, and signing in again is refused.
        queue.get_by_role("link").first.click()
        expect(reviewer).to_have_url(re.compile(r"/login\?next="))
        flash(reviewer, "请先登录。")
        expect(reviewer.get_by_role("heading", name=MINE)).to_have_count(0)
        camera.shoot(reviewer, "reviewer-after-disable")
        sign_in_staff(reviewer, site, NEW_REVIEWER, OWN_PASSWORD)
        flash(reviewer, "用户名或密码不正确")
        camera.shoot(reviewer, "reviewer-sign-in-refused")

        # 5. The audit log of the county holds what was done, by whom.
        administrator.get_by_role("link", name="审计日志").first.click()
        expect(administrator.get_by_role("heading", name="审计日志")).to_be_visible()
        for action in ("创建账号", "授予角色", "停用账号"):
            expect(administrator.get_by_role("row").filter(has_text=ADMINISTRATOR).filter(has_text=action)
                   ).to_have_count(1)
        camera.shoot(administrator, "admin-audit-log")
    # The refused sign-in answers 401 by design; nothing else may fail.
    assert [problem for problem in problems if not problem.startswith("401 ")] == []


def filter_accounts(page: Page, camera) -> None:
    """On the account list: the current tab's link goes nowhere, and a filter on 状态 (已停用) leaves nobody."""
    page.get_by_role("link", name="工作人员账号").first.click()
    tab = page.get_by_role("link", name=re.compile(r"^列表"))
    tab.click()  # a javascript: link: it must neither navigate nor be refused by the policy
    expect(page.get_by_role("row").filter(has_text="zhang_admin")).to_have_count(1)
    page.get_by_role("link", name="添加筛选器").click()
    page.locator(".field-filters").get_by_role("link", name="状态", exact=True).click()
    # The value is a select2 box (Flask-Admin's widget), chosen as a person would: open it, pick 已停用.
    page.locator("#filter_form .select2-container").last.click()
    page.locator(".select2-results").get_by_text("已停用", exact=True).click()
    page.locator("#filter_form").get_by_role("button", name="应用").click()
    expect(page).to_have_url(re.compile(r"flt\d+_\d+=0"))
    expect(page.locator("#filter_form")).to_contain_text("状态")
    expect(page.get_by_role("row").filter(has_text="zhang_admin")).to_have_count(0)
    camera.shoot(page, "province-accounts-filtered")
    page.get_by_role("link", name="重置筛选器").click()
    expect(page.get_by_role("row").filter(has_text="zhang_admin")).to_have_count(1)


def dismiss_deletions(page: Page, camera) -> None:
    """On the region list: a row's delete and "with selected → delete" ask first; dismissing keeps the region."""
    asked = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.get_by_role("link", name="地区与咨询电话").first.click()
    row = page.get_by_role("row").filter(has_text="双塔区").first
    address = page.url
    row.get_by_title("删除记录").click()
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="选中的").click()
    page.get_by_role("link", name="删除", exact=True).click()
    expect(page).to_have_url(address)
    expect(page.get_by_role("row").filter(has_text="双塔区").first).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)  # no "deleted" message: nothing was posted
    assert asked == ["你确定要删除这条记录吗？", "你确定要删除这些选中的记录吗？"], asked
    page.remove_listener("dialog", dismiss)
    camera.shoot(page, "province-regions-nothing-deleted")


def audit_cell_lines(page: Page) -> dict:
    """Measure the audit log's time, actor, action and object cells: how many, and those over two lines."""
    # A cell is as tall as its row (the detail sets that): measure the text, in lines of the cell's own height.
    return page.evaluate("""() => {
        const tall = {};
        let measured = 0;
        for (const cell of document.querySelectorAll(
                "td.col-occurred_at, td.col-actor_label, td.col-action, td.col-object_type, td.col-object_id")) {
            const text = document.createRange();
            text.selectNodeContents(cell);
            const lines = text.getBoundingClientRect().height / parseFloat(getComputedStyle(cell).lineHeight);
            measured += 1;
            if (lines > 2.2) tall[cell.className + ": " + cell.textContent.trim()] = lines;
        }
        return {measured, tall};
    }""")


def kjdms(storage: Path, *args: str) -> str:
    """Run the installed kjdms command on the instance stored in storage, as an operator would; return its output."""
    # Only the instance's folder: no KJDMS_* setting of the machine running the tests may leak in.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("KJDMS_")}
    environment["KJDMS_STORAGE_DIR"] = str(storage)
    done = subprocess.run([str(Path(sys.executable).with_name("kjdms")), *args], env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_first_administrator_of_a_fresh_instance_is_made_from_the_shell(chromium, camera, tmp_path):
    storage = tmp_path / "instance"
    assert "数据库已创建" in kjdms(storage, "init")
    created = kjdms(storage, "user", "create", "zhang_admin", "--region", "210000", "--role", "administrator",
                    "--display-name", "张管理", "--department", "会计处")
    password = re.search(r"一次性初始密码（只显示这一次）：([A-Za-z0-9]+)", created).group(1)
    app = create_app(Config(environ={"KJDMS_STORAGE_DIR": str(storage)}))
    with app.app_context():
        from kjdms.models import Dossier, User

        # A fresh instance: no demo, the operator's administrator is the only account.
        assert [user.username for user in db.session.query(User)] == ["zhang_admin"]
        assert db.session.query(Dossier).count() == 0
        db.session.remove()
    with served(app) as site, watched_pages(chromium, camera, "administrator") as (problems, (page,)):
        sign_in_staff(page, site, "zhang_admin", password)
        expect(page.get_by_role("heading", name="设置新密码")).to_be_visible()
        page.get_by_label("设置密码", exact=True).fill(OWN_PASSWORD)
        page.get_by_label("确认密码", exact=True).fill(OWN_PASSWORD)
        page.get_by_role("button", name="设置密码").click()
        flash(page, "密码已设置。")
        expect(page).to_have_url(re.compile(r"/admin/$"))
        expect(page.get_by_text("您的管理范围：辽宁省及其下级地区。")).to_be_visible()
        expect(page.locator("nav")).to_contain_text("张管理")
        camera.shoot(page, "province-home")

        # The province's own pages: the region tree with its contacts, and the collection windows.
        page.get_by_role("link", name="地区与咨询电话").first.click()
        expect(page.get_by_role("row").filter(has_text="双塔区").first).to_contain_text("0421-2855527")
        camera.shoot(page, "province-regions")
        page.get_by_role("link", name="采集期设置").first.click()
        windows = page.get_by_label("信息采集期", exact=True)
        expect(windows).to_have_value("2019-04-15:2019-06-30")
        windows.fill("2019-04-15:2019-06-30,2020-04-01:2020-03-01")
        page.get_by_role("button", name="保存").click()
        expect(page.locator(".invalid-feedback").filter(has_text="信息采集期")).to_be_visible()
        camera.shoot(page, "province-settings-refused")
        windows.fill("2019-04-15:2019-06-30,2020-04-01:2020-06-30")
        page.get_by_role("button", name="保存").click()
        flash(page, "已保存")
        expect(windows).to_have_value("2019-04-15:2019-06-30,2020-04-01:2020-06-30")
        camera.shoot(page, "province-settings")

        # Flask-Admin's widgets work without inline script (the policy refuses it; watch() reports a refusal).
        filter_accounts(page, camera)
        dismiss_deletions(page, camera)
        page.get_by_role("link", name="API 调用方").first.click()
        expect(page.get_by_role("heading", name="API 调用方")).to_be_visible()
        page.get_by_role("link", name="创建", exact=True).click()
        expect(page.get_by_label("可查询地区（含下级）", exact=True)).to_be_visible()
        camera.shoot(page, "province-api-client-new")

        # What the operator did at the shell and what was done on the web stand in one audit log.
        page.get_by_role("link", name="审计日志").first.click()
        expect(page.get_by_role("row").filter(has_text="命令行操作员").filter(has_text="创建账号")).to_have_count(1)
        change = page.get_by_role("row").filter(has_text="修改设置")
        expect(change).to_contain_text("zhang_admin")
        expect(change).to_contain_text("设置项：信息采集期")
        expect(change).to_contain_text("新值：2019-04-15:2019-06-30,2020-04-01:2020-06-30")
        camera.shoot(page, "province-audit-log")
        assert page.viewport_size["width"] == 1280
        cells = audit_cell_lines(page)
        assert cells["measured"] >= 5 * 3 and cells["tall"] == {}, cells
        # The date filter's picker (Flask-Admin's daterangepicker) under the same policy: nothing happened in 2099.
        page.get_by_role("link", name="添加筛选器").click()
        page.locator(".field-filters").get_by_role("link", name="日期", exact=True).click()
        day = page.locator("#filter_form input.filter-val")
        day.click()
        expect(page.locator(".daterangepicker").first).to_be_visible()
        day.fill("2099-01-01")
        page.locator("#filter_form").get_by_role("button", name="应用").click()
        expect(page).to_have_url(re.compile(r"flt\d+_\d+=2099-01-01"))
        expect(page.get_by_role("row").filter(has_text="修改设置")).to_have_count(0)
        camera.shoot(page, "province-audit-log-filtered")
    assert problems == []
