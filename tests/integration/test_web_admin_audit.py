"""The audit log as a clerk reads it: Chinese actions, 键：值 details, ID numbers masked, on the page and in the CSV."""
from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest

from kjdms.extensions import db
from kjdms.services import disclosures
from kjdms.services.lifecycle import fire_transition
from tests.helpers import applicant, make_id_number, upload_required
from tests.integration.test_web_admin import login, office  # noqa: F401 (fixtures)
from tests.webclient import text

# A birth date no make_id_number() of another fixture uses: their sequence wraps at 1,000 a worker, and a number
# drawn here at import came round again in a fixture's applicant when the tests fell so among the workers.
ID_NUMBER = make_id_number(birth="19780623", sequence=417)


@pytest.fixture
def trail(office, workflow, blobs):  # noqa: F811
    """A 双塔区 dossier submitted and approved, and its full ID number revealed with the number in the reason."""
    dossier, owner = applicant(name="王晓梅", region_code="211302", id_number=ID_NUMBER)
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    fire_transition(db.session, workflow, dossier, "approve", office["shuangta"])
    disclosures.reveal_id_number(db.session, office["shuangta"], dossier, reason=f"来电核对{ID_NUMBER}")
    db.session.commit()
    return dossier


def cells(page: str, column: str) -> list[str]:
    """Return the text of each cell of column on a list page, line breaks as newlines."""
    found = re.findall(rf'<td class="col-{column}">(.*?)</td>', page, re.S)
    return [html.unescape(re.sub(r"<br>", "\n", cell)).strip() for cell in found]


def test_the_page_names_actions_and_details_in_chinese_and_masks_id_numbers(login, office, trail):  # noqa: F811
    page = text(login(office["county"]).get("/admin/audit/"))
    rows = list(zip(cells(page, "action"), cells(page, "detail")))
    assert ("档案：审核确认", "原状态：待审核\n新状态：已审核确认") in rows
    assert ("授予角色", "角色：审核人员\n地区：双塔区（211302）") in rows
    masked = ID_NUMBER[:4] + "*" * 10 + ID_NUMBER[-4:]
    assert ("查看完整身份证号", f"理由：来电核对{masked}") in rows
    assert ID_NUMBER not in page
    assert "workflow.approve" not in cells(page, "action") and "from_state" not in page
    assert f"KJ{trail.id:010d}" in cells(page, "object_id")
    assert "档案" in cells(page, "object_type")


def test_the_action_filter_offers_the_chinese_names_and_picks_one_code(login, office, trail):  # noqa: F811
    county = login(office["county"])
    page = text(county.get("/admin/audit/"))
    groups = json.loads(html.unescape(re.search(r'<div id="filter-groups-data" class="d-none">(.*?)</div>',
                                                page, re.S).group(1)))
    options = dict(groups["操作"][0]["options"])
    assert options["workflow.approve"] == "档案：审核确认" and options["role.assign"] == "授予角色"
    filtered = text(county.get("/admin/audit/?flt1_1=workflow.approve"))
    assert cells(filtered, "action") == ["档案：审核确认"]
    # A code that is not on offer (a forged value) matches nothing rather than everything.
    assert cells(text(county.get("/admin/audit/?flt1_1=workflow.%25")), "action") == []


def test_the_export_uses_the_same_names(login, office, trail):  # noqa: F811
    county = login(office["county"])
    response = county.submit("/admin/audit/export.csv?flt1_1=workflow.approve", page="/admin/audit/")
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[1][2:] == ["档案：审核确认", "档案", f"KJ{trail.id:010d}", "原状态：待审核；新状态：已审核确认"]
    everything = county.submit("/admin/audit/export.csv", page="/admin/audit/").get_data().decode("utf-8-sig")
    assert ID_NUMBER not in everything and "授予角色" in everything and "role.assign" not in everything


def test_applicants_are_named_in_chinese_and_found_by_that_name(login, office, trail):  # noqa: F811
    county = login(office["county"])
    shown = f"会计人员本人（账号{trail.person.user.id}）"
    assert shown in cells(text(county.get("/admin/audit/")), "actor_label")
    by_name = cells(text(county.get("/admin/audit/", query_string={"flt0_0": shown})), "actor_label")
    assert by_name and set(by_name) == {shown}
