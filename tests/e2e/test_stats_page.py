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
