"""The back office on the web: who gets in, scope in lists, counts, filters, pages and exports, CSRF, read-only GETs."""
from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select

from kjdms.backends import get_config
from kjdms.extensions import db
from kjdms.models import AuditEvent, Region, RoleAssignment, Setting, User
from kjdms.services import audit, settings
from kjdms.services.reference import load_regions, region_by_code
from tests.helpers import STAFF_PASSWORD, applicant
from tests.helpers import staff as make_staff
from tests.webclient import text

COUNTED = (User, RoleAssignment, AuditEvent, Region, Setting)


@pytest.fixture
def office(app):
    """Administrators at province, Chaoyang and 双塔区; reviewers in 双塔区 and 龙城区; each with an audit trail."""
    users = {
        "province": make_staff("admin_province", "administrator", "210000"),
        "city": make_staff("admin_chaoyang", "administrator", "211300"),
        "county": make_staff("admin_shuangta", "administrator", "211302"),
        "shuangta": make_staff("reviewer_shuangta", "reviewer", "211302"),
        "longcheng": make_staff("reviewer_longcheng", "reviewer", "211303"),
    }
    dossier, _ = applicant(region_code="211303")
    audit.record(db.session, users["longcheng"], "=HYPERLINK(\"http://evil\")", "dossier", dossier.id)
    audit.record(db.session, users["shuangta"], "+cmd|' /C calc'!A0", "user", users["shuangta"].id)
    db.session.commit()
    return users


@pytest.fixture
def login(browser):
    """Return a function that opens a browser signed in as the user given."""
    return lambda user: browser().enter_as(user)


def counts() -> dict[str, int]:
    db.session.expire_all()
    return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model)) for model in COUNTED}


def post_paths(users) -> list[str]:
    """Every back-office address that changes something, aimed at an account in scope."""
    target = users["shuangta"].id
    return [f"/admin/accounts/{action}/?id={target}" for action in ("grant", "revoke", "disable", "enable",
                                                                      "reset-password")] + [
        "/admin/accounts/new/", f"/admin/accounts/edit/?id={target}", "/admin/accounts/delete/",
        "/admin/accounts/action/", "/admin/regions/new/", "/admin/regions/delete/", "/admin/settings/",
        "/admin/audit/export.csv", "/admin/audit/delete/"]


def get_paths(users) -> list[str]:
    """Every back-office page, with filters, sorting and search, and the addresses Flask-Admin adds."""
    target, other = users["shuangta"].id, users["longcheng"].id
    shuangta = region_by_code(db.session, "211302").id
    return ["/admin/", "/admin/accounts/", "/admin/accounts/?search=reviewer", f"/admin/accounts/?flt0_0={shuangta}",
            "/admin/accounts/?flt1_1=reviewer&flt2_2=1&flt3_3=2019-01-01&flt4_4=2099-01-01&sort=0&desc=1",
            "/admin/accounts/new/", f"/admin/accounts/details/?id={target}", f"/admin/accounts/edit/?id={target}",
            f"/admin/accounts/details/?id={other}", "/admin/accounts/export/csv/",
            f"/admin/accounts/grant/?id={target}", f"/admin/accounts/disable/?id={target}",
            f"/admin/accounts/reset-password/?id={target}", "/admin/regions/", "/admin/regions/new/",
            f"/admin/regions/edit/?id={shuangta}", "/admin/settings/", "/admin/audit/",
            "/admin/audit/?flt0_0=admin&flt2_2=KJ0000000001&flt3_3=2019-01-01&page=1", "/admin/audit/export.csv",
            "/admin/audit/export/csv/", "/admin/audit/new/", "/admin/audit/edit/?id=1"]


class TestWhoGetsIn:
    def test_the_anonymous_sign_in_first(self, client, office):
        response = client.get("/admin/accounts/")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")

    @pytest.mark.parametrize("who", ["shuangta", "longcheng"])
    def test_staff_without_administrator_are_refused(self, login, office, who):
        browser = login(office[who])
        for path in ("/admin/", "/admin/accounts/", "/admin/audit/", "/admin/regions/", "/admin/settings/"):
            assert browser.get(path).status_code == 403, path

    def test_an_applicant_is_refused(self, login, office):
        _, owner = applicant()
        assert login(owner).get("/admin/").status_code == 403

    def test_only_the_province_edits_regions_and_settings(self, login, office):
        county = login(office["county"])
        assert county.get("/admin/regions/").status_code == 403
        assert county.get("/admin/settings/").status_code == 403
        page = text(county.get("/admin/"))
        assert "双塔区" in page and "地区与咨询电话" not in page
        assert login(office["province"]).get("/admin/regions/").status_code == 200


class TestScope:
    def test_lists_counts_and_filters_show_only_the_scope(self, login, office):
        county = login(office["county"])
        page = text(county.get("/admin/accounts/"))
        assert "reviewer_shuangta" in page and "admin_shuangta" in page
        for outside in ("reviewer_longcheng", "admin_chaoyang", "admin_province", "龙城区", "沈阳市"):
            assert outside not in page.encode("unicode_escape").decode("ascii") and outside not in page, outside
        assert re.search(r"列表\s*\(2\)", page)
        assert "reviewer_longcheng" not in text(county.get("/admin/accounts/?search=longcheng"))
        longcheng = region_by_code(db.session, "211303").id
        filtered = text(county.get(f"/admin/accounts/?flt0_0={longcheng}"))
        assert "reviewer_longcheng" not in filtered and not re.search(r"列表\s*\(\d+\)", filtered)

    def test_another_countys_account_answers_as_absent(self, login, office):
        county, other = login(office["county"]), office["longcheng"].id
        for path in (f"/admin/accounts/details/?id={other}", f"/admin/accounts/edit/?id={other}"):
            assert county.get(path).status_code == 404, path
        before = counts()
        for action in ("disable", "reset-password", "grant", "revoke"):
            response = county.submit(f"/admin/accounts/{action}/?id={other}", {"role": "reviewer", "region": "1"},
                                     page="/admin/accounts/")
            assert response.status_code == 404, action
        assert counts() == before

    def test_a_forged_region_in_the_grant_form_is_refused(self, login, office):
        county, target = login(office["county"]), office["shuangta"]
        page = f"/admin/accounts/details/?id={target.id}"
        for code in ("211303", "211300", "210000"):
            response = county.submit(f"/admin/accounts/grant/?id={target.id}",
                                     {"role": "administrator", "region": str(region_by_code(db.session, code).id)},
                                     page=page)
            assert response.status_code == 404, code
        refused = county.submit(f"/admin/accounts/grant/?id={target.id}",
                                {"role": "administrator", "region": str(region_by_code(db.session, "211302").id)},
                                page=page, follow_redirects=True)
        assert "只能在本级以下的地区任命系统管理员" in text(refused)
        db.session.expire_all()
        assert [a.role for a in db.session.get(User, target.id).role_assignments] == ["reviewer"]

    def test_the_audit_log_and_its_export_keep_to_the_scope(self, login, office):
        county = login(office["county"])
        page = text(county.get("/admin/audit/"))
        assert "+cmd" in page and "HYPERLINK" not in page
        response = county.submit("/admin/audit/export.csv", page="/admin/audit/")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        body = response.get_data()
        assert body.startswith("\ufeff".encode("utf-8"))
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
        assert rows[0][:3] == ["时间（北京时间）", "操作人", "操作"]
        assert [row[2] for row in rows[1:] if "cmd" in row[2]] == ["'+cmd|' /C calc'!A0"]
        assert not any("HYPERLINK" in cell for row in rows for cell in row)
        exported = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "audit.export")).all()
        assert [(event.actor_label, event.detail["rows"]) for event in exported] == [("admin_shuangta", len(rows) - 1)]

    def test_the_city_sees_its_counties(self, login, office):
        page = text(login(office["city"]).get("/admin/audit/"))
        assert "+cmd" in page and "HYPERLINK" in page


class TestSafety:
    def test_every_post_refuses_a_missing_csrf_token(self, login, office):
        for who in ("county", "province"):
            browser = login(office[who])
            before = counts()
            for path in post_paths(office):
                response = browser.post(path, data={"role": "reviewer", "region": "1", "id": "1",
                                                    "username": "x_new", "display_name": "某"})
                assert response.status_code == 400, (who, path)
            assert counts() == before

    def test_every_get_is_read_only(self, login, office):
        for who in ("county", "province"):
            browser = login(office[who])
            before = counts()
            for path in get_paths(office):
                response = browser.get(path)
                assert response.status_code in (200, 302, 403, 404, 405), (who, path, response.status_code)
            assert counts() == before, who


class TestAccounts:
    def test_an_administrator_creates_a_reviewer_who_must_choose_a_password(self, login, browser, office):
        county = login(office["county"])
        new_page = text(county.get("/admin/accounts/new/"))
        assert "龙城区" not in new_page and "双塔区" in new_page
        shuangta = region_by_code(db.session, "211302").id
        response = county.submit("/admin/accounts/new/", {
            "username": "wang_shuangta", "display_name": "王审核", "region": str(shuangta), "department": "会计科",
            "phone": "0421-2855527", "role": "reviewer"})
        password = re.search(r'id="one-time-password">([A-Za-z0-9]+)<', text(response)).group(1)
        assert "只显示这一次" in text(response)
        reviewer = browser()
        signed_in = reviewer.submit("/login/staff", {"staff-username": "wang_shuangta", "staff-password": password},
                                    page="/login")
        assert signed_in.headers["Location"].startswith("/account/password")
        assert reviewer.get("/review/").headers["Location"].startswith("/account/password")
        weak = reviewer.submit("/account/password", {"password": "wang_shuangta1", "password_confirm": "wang_shuangta1"})
        assert "不能包含用户名" in text(weak)
        common = reviewer.submit("/account/password", {"password": "password123", "password_confirm": "password123"})
        assert "常见密码" in text(common)
        chosen = reviewer.submit("/account/password", {"password": "Shuangta2019x", "password_confirm": "Shuangta2019x"})
        assert chosen.headers["Location"] == "/review/"
        assert reviewer.get("/review/").status_code == 200

    def test_disabling_ends_the_open_session_at_the_next_request(self, login, office):
        reviewer = login(office["shuangta"])
        assert reviewer.get("/review/").status_code == 200
        county = login(office["county"])
        target = office["shuangta"].id
        response = county.submit(f"/admin/accounts/disable/?id={target}", page=f"/admin/accounts/details/?id={target}",
                                 follow_redirects=True)
        assert "账号已停用" in text(response)
        assert reviewer.get("/review/").headers["Location"].startswith("/login")
        county.submit(f"/admin/accounts/enable/?id={target}", page=f"/admin/accounts/details/?id={target}")
        assert reviewer.get("/review/").headers["Location"].startswith("/login")  # a new sign-in is needed

    def test_a_role_given_takes_effect_on_the_next_request_and_one_taken_ends_the_session(self, login, office):
        reviewer = login(office["shuangta"])
        assert reviewer.get("/credit/dossiers").status_code == 403
        county = login(office["county"])
        target = office["shuangta"].id
        shuangta = region_by_code(db.session, "211302").id
        details, role = f"/admin/accounts/details/?id={target}", {"role": "credit_officer", "region": str(shuangta)}
        granted = county.submit(f"/admin/accounts/grant/?id={target}", role, page=details, follow_redirects=True)
        assert "已授予信用档案管理人员（双塔区）" in text(granted)
        # Rights are read afresh on each request: the open session gains the role without signing in again.
        assert reviewer.get("/credit/dossiers").status_code == 200
        assert reviewer.get("/review/").status_code == 200
        taken = county.submit(f"/admin/accounts/revoke/?id={target}", role, page=details, follow_redirects=True)
        assert "该账号已被强制退出登录" in text(taken)
        assert reviewer.get("/review/").headers["Location"].startswith("/login")

    def test_reset_password_shows_a_new_one_time_password_once(self, login, browser, office):
        county, target = login(office["county"]), office["shuangta"].id
        response = county.submit(f"/admin/accounts/reset-password/?id={target}",
                                 page=f"/admin/accounts/details/?id={target}")
        password = re.search(r'id="one-time-password">([A-Za-z0-9]+)<', text(response)).group(1)
        old = browser().submit("/login/staff", {"staff-username": "reviewer_shuangta", "staff-password": STAFF_PASSWORD},
                               page="/login")
        assert old.status_code == 401
        new = browser().submit("/login/staff", {"staff-username": "reviewer_shuangta", "staff-password": password},
                               page="/login")
        assert new.headers["Location"].startswith("/account/password")


@pytest.fixture
def shipped_regions(app):
    """Put the region tree back as shipped after the test (PostgreSQL keeps the regions table between tests)."""
    yield
    db.session.rollback()
    db.session.execute(Region.__table__.update().values(edited_at=None))
    db.session.commit()
    load_regions(db.session)


@pytest.mark.usefixtures("shipped_regions")
class TestRegionsAndSettings:
    def test_the_province_edits_a_contact_and_contacts_shows_every_office(self, login, client, office):
        province = login(office["province"])
        shuangta = region_by_code(db.session, "211302")
        page = f"/admin/regions/edit/?id={shuangta.id}"
        province.submit(page, {"code": "211302", "name": "双塔区", "kind": "office",
                               "parent": str(shuangta.parent_id), "sort_order": "6", "office_name": "双塔区财政局",
                               "phone": "0421-9999999", "address": "朝阳文化路二段三号", "hours": "工作日 8:30–17:00"})
        contacts = text(client.get("/contacts"))
        assert "0421-9999999" in contacts and "工作日 8:30–17:00" in contacts
        assert "沈阳市财政局" in contacts and "凌源市财政局" in contacts
        load_regions(db.session)  # `kjdms init` again: the administrator's edit stays
        db.session.expire_all()
        assert region_by_code(db.session, "211302").phone == "0421-9999999"
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "region.update"))
        assert event.detail["changes"]["phone"] == {"old": "0421-2855527", "new": "0421-9999999"}

    def test_a_region_with_staff_or_dossiers_cannot_be_deleted(self, login, office):
        province = login(office["province"])
        longcheng = region_by_code(db.session, "211303")
        response = province.submit("/admin/regions/delete/", {"id": str(longcheng.id), "url": "/admin/regions/"},
                                   page="/admin/regions/", follow_redirects=True)
        assert "不能删除" in text(response)
        assert region_by_code(db.session, "211303") is not None

    def test_the_province_sets_the_windows_and_the_database_value_wins(self, login, office):
        province = login(office["province"])
        response = province.submit("/admin/settings/", {"collection_windows": "2026-04-01:2026-06-30",
                                                        "confirmation_deadline": "2026-12-31"},
                                   follow_redirects=True)
        assert "已保存" in text(response)
        now = settings.effective(db.session, get_config())
        assert now.CONFIRMATION_DEADLINE.isoformat() == "2026-12-31"
        assert settings.windows_text(now.COLLECTION_WINDOWS) == "2026-04-01:2026-06-30"
        changes = {event.detail["key"]: (event.detail["old"], event.detail["new"]) for event in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "setting.change"))}
        assert changes == {"collection_windows": ("2019-04-15:2019-06-30", "2026-04-01:2026-06-30"),
                           "confirmation_deadline": ("2020-12-31", "2026-12-31")}
        bad = province.submit("/admin/settings/", {"collection_windows": "2026-06-30:2026-04-01",
                                                   "confirmation_deadline": "2026-12-31"})
        assert "格式应如" in text(bad)


@pytest.mark.usefixtures("shipped_regions")
@pytest.mark.parametrize("bad", ["\x00", "\u202e"])
@pytest.mark.parametrize("form, field, label", [
    ("region", "office_name", "会计管理部门"), ("region", "address", "办公地址"),
    ("account_edit", "display_name", "姓名"), ("account_new", "department", "科室"),
    ("settings", "collection_windows", "信息采集期")])
def test_back_office_forms_refuse_control_characters_naming_the_field(login, office, form, field, label, bad):
    """The back office's forms refuse what the site's refuse: a NUL is no 500 on PostgreSQL, nothing half-saved."""
    province = login(office["province"])
    shuangta = region_by_code(db.session, "211302")
    page, data = {
        "region": (f"/admin/regions/edit/?id={shuangta.id}", {
            "code": "211302", "name": "双塔区", "kind": "office", "parent": str(shuangta.parent_id), "sort_order": "6",
            "office_name": "双塔区财政局", "phone": "0421-2855527", "address": "朝阳文化路", "hours": "工作日"}),
        "account_edit": (f"/admin/accounts/edit/?id={office['shuangta'].id}", {
            "display_name": "王审核", "department": "会计科", "phone": "0421-2855527"}),
        "account_new": ("/admin/accounts/new/", {
            "username": "wang_new", "display_name": "王审核", "region": str(shuangta.id), "department": "会计科",
            "phone": "0421-2855527", "role": "reviewer"}),
        "settings": ("/admin/settings/", {"collection_windows": "2026-04-01:2026-06-30",
                                          "confirmation_deadline": "2026-12-31"}),
    }[form]
    before = counts()
    data[field] = f"{data[field][:2]}{bad}{data[field][2:]}"
    response = province.submit(page, data)
    assert response.status_code < 500
    assert f"{label}：不能包含控制字符或文字方向控制符" in text(response)
    assert counts() == before
    db.session.expire_all()
    assert bad not in repr((region_by_code(db.session, "211302").__dict__, db.session.get(User, office["shuangta"].id)
                            .__dict__, db.session.scalars(select(Setting.value)).all()))
