"""The /stats/ page: staff see their regions' panels and can drill down; exports download and are audited."""
from __future__ import annotations

import io

import openpyxl
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.models import AuditEvent
from tests.stats_data import Spec, insert


def test_a_county_reviewer_sees_only_the_county(people, auth):
    insert(Spec(region="211302"))
    insert(Spec(region="211303"))
    page = auth("reviewer").get("/stats/")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "双塔区" in text and "龙城区" not in text and "沈阳市" not in text
    assert "/stats/plotly.min.js" in text


def test_the_city_drills_down_and_the_province_sees_every_city(people, auth):
    insert(Spec(region="211303"))
    city = auth("city_reviewer").get("/stats/").get_data(as_text=True)
    assert "龙城区" in city and "沈阳市" not in city
    province = auth("administrator").get("/stats/?as_of=2019-06-30").get_data(as_text=True)
    assert "沈阳市" in province and "2019-06-30" in province


def test_the_rule_panels_show_their_counts_and_notes(people, auth):
    insert(Spec(state="rejected", rejections=[(1, ["phone"])], job_started_days_ago=90, created_days_ago=10))
    page = auth("reviewer").get("/stats/")
    text = page.get_data(as_text=True)
    for title in ("退回原因（按项目）", "逾期登记与逾期更新（一个月规则）", "说明：辽财会〔2019〕116号 三", "未勾选具体项目"):
        assert title in text
    assert '"collection_rejection_items"' in text and '"collection_late"' in text  # their charts' data


def test_applicants_are_refused_and_the_library_is_served_locally(people, auth, client):
    assert auth("owner").get("/stats/").status_code == 403
    library = client.get("/stats/plotly.min.js")
    assert library.status_code == 200 and b"plotly" in library.data[:2000].lower()


def test_exports_download_and_are_audited(people, auth):
    insert(Spec())
    browser = auth("administrator")
    xlsx = browser.submit("/stats/export.xlsx", {"row": "education", "column": "sex"}, page="/stats/")
    assert xlsx.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(xlsx.data))
    assert any(sheet._charts for sheet in book.worksheets)
    assert browser.submit("/stats/export.csv", page="/stats/").data.startswith("\ufeff".encode("utf-8"))
    assert browser.submit("/stats/export.pdf", page="/stats/").data.startswith(b"%PDF")
    assert browser.submit("/stats/export.exe", page="/stats/").status_code == 404
    formats = db.session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "statistics.export")).all()
    assert [detail["format"] for detail in formats] == ["xlsx", "csv", "pdf"]
