"""API clients in the back office: the key shown once, rotated and revoked at once, and each administrator's scope."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from kjdms.extensions import db
from kjdms.models import ApiClient, AuditEvent
from kjdms.permissions import SYSTEM
from kjdms.services.api_clients import MAX_NAME, create_client
from kjdms.services.regions import delete_region
from kjdms.services.reference import region_by_code
from kjdms.validators import ValidationError
from tests.helpers import staff as make_staff
from tests.webclient import text

KEY = re.compile(r'id="api-key">(kjc_[^<]+)<')
ERROR = re.compile(r'invalid-feedback[^>]*>([^<]+)<')


@pytest.fixture
def office(app):
    """Administrators of the province and of Chaoyang, and a reviewer."""
    return {"province": make_staff("admin_province", "administrator", "210000"),
            "city": make_staff("admin_chaoyang", "administrator", "211300"),
            "reviewer": make_staff("reviewer_shuangta", "reviewer", "211302")}


def region_id(code: str) -> str:
    return str(region_by_code(db.session, code).id)


def works(browser, key: str) -> int:
    return browser().get("/api/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code


def create(visitor, **fields):
    data = {"name": "朝阳市会计资格考试报名系统", "purpose": "资格考试报名核验", "regions": [region_id("211302")],
            "rate_per_minute": "600", "expires_on": ""}
    return visitor.submit("/admin/api-clients/new/", {**data, **fields})


def test_the_key_is_shown_once_and_only_its_hash_is_kept(browser, office):
    admin = browser().enter_as(office["city"])
    page = create(admin)
    key = KEY.search(text(page)).group(1)
    assert works(browser, key) == 200
    client = db.session.scalars(select(ApiClient)).one()
    assert client.created_by_id == office["city"].id and key not in client.key_hash
    for path in ("/admin/api-clients/", f"/admin/api-clients/details/?id={client.id}"):
        shown = text(admin.get(path))
        assert client.name in shown and key not in shown and key.split("_", 2)[2] not in shown
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "api_client.create")).one()
    assert event.actor_id == office["city"].id and event.detail["regions"] == ["211302"]


def test_rotating_replaces_the_key_at_once_and_revoking_ends_it(browser, office):
    admin = browser().enter_as(office["province"])
    old = KEY.search(text(create(admin))).group(1)
    client_id = db.session.scalar(select(ApiClient.id))
    details = f"/admin/api-clients/details/?id={client_id}"
    new = KEY.search(text(admin.submit(f"/admin/api-clients/rotate/?id={client_id}", page=details))).group(1)
    assert new != old and works(browser, old) == 401 and works(browser, new) == 200
    assert admin.submit(f"/admin/api-clients/revoke/?id={client_id}", page=details).status_code == 302
    assert works(browser, new) == 401
    assert "已撤销" in text(admin.get(details)) and "rotate" not in text(admin.get(details))
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "api_client")).all()
    assert actions == ["api_client.create", "api_client.rotate", "api_client.revoke"]


def test_bad_fields_are_named_and_nothing_is_saved(browser, office):
    admin = browser().enter_as(office["province"])
    page = create(admin, name="", purpose="", regions=[], rate_per_minute="0")
    assert ERROR.findall(text(page)) == ["名称：必填", "用途：必填", "可查询地区：至少选择一个", "每分钟查询上限：必填，至少为1"]
    create(admin)
    duplicate = create(admin)
    assert ERROR.findall(text(duplicate)) == ["名称：已被使用"]
    past = create(admin, name="另一个系统", expires_on="2019-06-30")
    assert ERROR.findall(text(past)) == ["到期日期：应晚于今天"]
    assert db.session.scalar(select(func.count()).select_from(ApiClient)) == 1


def test_a_city_administrator_manages_only_clients_within_the_city(browser, office):
    _, _ = create_client(db.session, SYSTEM, name="全省继续教育系统", purpose="继续教育登记",
                         regions=[region_by_code(db.session, "210000")])
    province_client = db.session.scalar(select(ApiClient.id))
    city = browser().enter_as(office["city"])
    assert "全省继续教育系统" not in text(city.get("/admin/api-clients/"))
    assert city.get(f"/admin/api-clients/details/?id={province_client}").status_code == 404
    details = "/admin/api-clients/"
    assert city.submit(f"/admin/api-clients/rotate/?id={province_client}", page=details).status_code == 404
    assert city.submit(f"/admin/api-clients/revoke/?id={province_client}", page=details).status_code == 404
    # Regions outside the city are not offered, and a forged one is refused with nothing saved.
    form = text(city.get("/admin/api-clients/new/"))
    assert "龙城区" in form and "沈阳市" not in form
    forged = create(city, name="伪造", regions=[region_id("210100")])
    assert forged.status_code == 200 and db.session.scalar(select(func.count()).select_from(ApiClient)) == 1
    assert db.session.scalar(select(ApiClient.revoked_at).where(ApiClient.id == province_client)) is None


def test_only_administrators_reach_the_page_and_every_change_needs_its_token(browser, office):
    assert browser().enter_as(office["reviewer"]).get("/admin/api-clients/").status_code == 403
    assert browser().get("/admin/api-clients/").status_code == 302
    admin = browser().enter_as(office["province"])
    create(admin)
    client_id = db.session.scalar(select(ApiClient.id))
    for path in ("/admin/api-clients/new/", f"/admin/api-clients/rotate/?id={client_id}",
                 f"/admin/api-clients/revoke/?id={client_id}"):
        assert admin.post(path, data={"name": "x"}).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(ApiClient)) == 1
    assert db.session.scalar(select(ApiClient.revoked_at)) is None


def test_a_name_leaves_room_for_the_audit_label_and_a_region_a_client_asks_about_stays(app):
    """The audit names a client "api:<name>" in 64 characters; deleting a region a client may ask about is refused."""
    with pytest.raises(ValidationError) as refused:
        create_client(db.session, SYSTEM, name="系" * (MAX_NAME + 1), purpose="继续教育登记",
                      regions=[region_by_code(db.session, "211302")])
    assert refused.value.field == "name" and f"不超过{MAX_NAME}个字符" in refused.value.message
    client, _ = create_client(db.session, SYSTEM, name="系" * MAX_NAME, purpose="继续教育登记",
                              regions=[region_by_code(db.session, "211302")])
    assert len(client.label) <= 64
    with pytest.raises(ValidationError, match="接口客户端"):
        delete_region(db.session, SYSTEM, region_by_code(db.session, "211302"))
