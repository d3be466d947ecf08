"""Chromium opens /stats/, every chart draws from the locally served library, and the page is photographed."""
from __future__ import annotations

from playwright.sync_api import expect

from kjdms.extensions import db
from tests.e2e.conftest import DESKTOP, sign_in_staff
from tests.stats_data import Spec, insert


def test_the_statistics_page_draws_every_chart(chromium, site, camera):
    with site.app.app_context():
        for level, sex in (("junior", "female"), ("intermediate", "male"), ("senior", "female")):
            insert(Spec(qualification_level=level, sex=sex, job_types=["cashier", "head_of_accounting"]))
        insert(Spec(state="submitted"))
        db.session.remove()
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")
    try:
        page = context.new_page()
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        errors = []  # a script error or a Content-Security-Policy refusal shows here
        page.on("pageerror", lambda error: errors.append(str(error)))
        # A failed load is reported by the response handler below; the browser's own favicon request is not the page's.
        page.on("console", lambda message: message.type == "error" and not message.text.startswith(
            "Failed to load resource") and errors.append(message.text))
        page.on("response", lambda response: response.status >= 400 and errors.append(f"{response.status} {response.url}"))
        sign_in_staff(page, site)
        page.goto(site.url + "/stats/")
        expect(page.get_by_role("heading", name="会计人员信息统计")).to_be_visible()
        charts = page.locator(".chart")
        # A locator, not a predicate string: the page's policy forbids evaluating strings as script.
        expect(page.locator(".chart:not([data-drawn='1'])")).to_have_count(0, timeout=30_000)
        assert charts.count() > 10
        assert page.locator(".chart svg.main-svg").count() >= charts.count()
        assert all(url.startswith(site.url) for url in requests), "nothing may come from outside kjdms"
        assert errors == [], "\n".join(errors)
        camera.shoot(page, "stats-top")
        page.locator("#workforce_job_type").scroll_into_view_if_needed()
        camera.shoot(page, "stats-job-types")
    finally:
        context.close()


def test_the_province_administrator_generates_a_report_and_watches_it_finish(chromium, site, camera):
    from tests.helpers import staff

    with site.app.app_context():
        staff("province_admin", "administrator", "210000")
        for region in ("211302", "211303"):
            insert(Spec(region=region))
        db.session.remove()
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # As above: the browser's own favicon request is not the page's; a failed load of the page's shows here.
        page.on("console", lambda message: message.type == "error" and not message.text.startswith(
            "Failed to load resource") and errors.append(message.text))
        page.on("response", lambda response: response.status >= 400 and not response.url.endswith("/favicon.ico")
                and errors.append(f"{response.status} {response.url}"))
        sign_in_staff(page, site, "province_admin")
        page.goto(site.url + "/stats/")
        page.get_by_role("link", name="上报财政部").click()
        expect(page.get_by_role("heading", name="上报财政部的会计人员信息报告")).to_be_visible()
        page.get_by_role("button", name="生成报告").click()
        expect(page.get_by_text("已开始生成报告")).to_be_visible()
        # reports.js follows the run and reloads the page when it ends.
        expect(page.locator("#runs")).to_contain_text("已完成（2 人）", timeout=30_000)
        expect(page.get_by_role("button", name="下载（ZIP，含签名）")).to_be_visible()
        assert errors == [], "\n".join(errors)
        camera.shoot(page, "reports")
    finally:
        context.close()
