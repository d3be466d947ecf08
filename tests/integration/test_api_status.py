"""Status lookups by downstream systems: the minimum about a person, only with name and ID number, only in scope."""
import itertools
import logging
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from kjdms.backends import get_config
from kjdms.extensions import db
from kjdms.local_time import local_today
from kjdms.models import ApiClient, ApiRateWindow, AuditEvent, utcnow
from kjdms.permissions import SYSTEM
from kjdms.request_log import RequestLog
from kjdms.services.api_clients import create_client
from kjdms.services.credit import record_finding
from kjdms.services.lifecycle import fire_transition, purge_dossier
from kjdms.services.reference import region_by_code
from tests.helpers import applicant, make_id_number, upload_required

SINGLE, BATCH = "/api/v1/status-lookups", "/api/v1/status-lookups/batch"
NUMBERS = itertools.count(1)
NOBODY = make_id_number(birth="19800101", sequence=999)  # valid, and nobody's
NOT_FOUND = {"found": False, "collected": False, "state": None, "region_code": None, "region_name": None,
             "qualification_level": None, "last_approved_on": None, "live_credit_finding": None,
             "legacy_confirmation": None}


def new_client(region_codes, **options):
    """Return the key of a client allowed to ask about region_codes."""
    regions = [region_by_code(db.session, code) for code in region_codes]
    options.setdefault("name", f"下游系统{next(NUMBERS)}")
    _, key = create_client(db.session, SYSTEM, purpose="会计资格考试报名核验", regions=regions, **options)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def scene(people, workflow, blobs):
    """An approved person in 双塔区 with a live credit finding, a draft in 双塔区, an approved person in 龙城区."""
    approved, owner = applicant(name="欧阳明月", qualification_level="intermediate",
                              qualification_certificate_number="2019211000001")
    upload_required(workflow, blobs, approved, owner)
    fire_transition(db.session, workflow, approved, "submit", owner)
    record_finding(db.session, workflow, approved, people["credit_officer"], kind="falsified_information",
                   finding="学历证书系伪造", found_on=date(2019, 5, 1), today=date(2019, 5, 2),
                   evidence=[approved.attachment("education_certificate").versions[0].id],
                   id_hash_key=get_config().ID_HASH_KEY)
    fire_transition(db.session, workflow, approved, "approve", people["reviewer"])
    elsewhere, elsewhere_owner = applicant(name="李四", region_code="211303")
    upload_required(workflow, blobs, elsewhere, elsewhere_owner, seed=1)
    fire_transition(db.session, workflow, elsewhere, "submit", elsewhere_owner)
    fire_transition(db.session, workflow, elsewhere, "approve", people["city_reviewer"])
    return {"approved": approved, "draft": people["dossier"], "elsewhere": elsewhere}


def query(dossier, name=None):
    return {"name": name or dossier.person.name, "id_number": dossier.person.id_number}


def test_a_matching_person_gets_the_minimum_and_nothing_else(client, scene):
    shuangta = new_client(["211302"])
    answer = client.post(SINGLE, json=query(scene["approved"]), headers=shuangta)
    assert answer.status_code == 200
    assert answer.get_json() == {
        "found": True, "collected": True, "state": "approved", "region_code": "211302", "region_name": "双塔区",
        "qualification_level": "intermediate", "last_approved_on": local_today().isoformat(),
        "live_credit_finding": None, "legacy_confirmation": "not_legacy"}
    draft = client.post(SINGLE, json=query(scene["draft"]), headers=shuangta).get_json()
    assert draft["found"] and not draft["collected"] and draft["state"] == "draft" and draft["last_approved_on"] is None


def test_the_credit_finding_is_told_only_to_a_client_allowed_to_know_it(client, scene):
    with_credit = new_client(["211300"], may_see_credit=True)
    assert client.post(SINGLE, json=query(scene["approved"]), headers=with_credit).get_json()[
        "live_credit_finding"] is True
    assert client.post(SINGLE, json=query(scene["elsewhere"]), headers=with_credit).get_json()[
        "live_credit_finding"] is False
    without = new_client(["211300"])
    assert client.post(SINGLE, json=query(scene["approved"]), headers=without).get_json()[
        "live_credit_finding"] is None


def test_another_name_another_city_and_nobody_all_look_the_same(client, scene):
    shuangta = new_client(["211302"])
    nobody = {"name": "欧阳明月", "id_number": NOBODY}
    answers = [client.post(SINGLE, json=body, headers=shuangta) for body in (
        query(scene["approved"], name="欧阳明日"), query(scene["elsewhere"]), nobody)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.get_data() for answer in answers] == [answers[2].get_data()] * 3
    assert answers[2].get_json() == NOT_FOUND
    # The city's client does see 龙城区's person: the refusal above was the region, not the person.
    assert client.post(SINGLE, json=query(scene["elsewhere"]), headers=new_client(["211300"])).get_json()["found"]


def test_a_name_typed_with_spaces_or_another_dot_still_matches(client, people):
    dossier, _ = applicant(name="阿依古丽·买买提")
    answer = client.post(SINGLE, json=query(dossier, name="阿依古丽・买买提 "), headers=new_client(["211302"]))
    assert answer.get_json()["found"]


def test_a_legacy_person_yet_to_confirm_is_pending(client, people):
    dossier, _ = applicant(name="王芳")
    dossier.person.is_legacy, dossier.to_confirm = True, True
    db.session.commit()
    answer = client.post(SINGLE, json=query(dossier), headers=new_client(["211302"])).get_json()
    assert answer["legacy_confirmation"] == "pending" and not answer["collected"]


def test_a_purged_person_is_found_by_the_hashes_the_tombstone_keeps(client, people, workflow, blobs):
    dossier, _ = applicant(name="赵敏")
    asked = query(dossier)
    purge_dossier(db.session, workflow, blobs, dossier, people["administrator"], "逾期未进行信息更新和确认",
                  id_hash_key=get_config().ID_HASH_KEY)
    key = new_client(["211302"])
    answer = client.post(SINGLE, json=asked, headers=key).get_json()
    assert answer["found"] and answer["state"] == "purged" and answer["qualification_level"] is None
    assert client.post(SINGLE, json={**asked, "name": "赵明"}, headers=key).get_json() == NOT_FOUND


def test_a_batch_answers_in_order_and_counts_as_its_persons(client, scene):
    key = new_client(["211302"])
    persons = [query(scene["draft"]), query(scene["elsewhere"]), query(scene["approved"])]
    answer = client.post(BATCH, json={"persons": persons}, headers=key)
    assert [result["state"] for result in answer.get_json()["results"]] == ["draft", None, "approved"]
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "api_status_lookup")).one()
    assert event.actor_label.startswith("api:") and event.actor_id is None and event.detail == {
        "purpose": "会计资格考试报名核验", "persons": 3, "found": 2}


def test_a_batch_of_more_than_1000_or_a_bad_item_is_refused_naming_the_field(client, scene):
    key = new_client(["211302"], rate_per_minute=5000)
    too_many = client.post(BATCH, json={"persons": [query(scene["draft"])] * 1001}, headers=key)
    assert too_many.status_code == 422 and too_many.get_json()["errors"][0]["field"] == "persons"
    bad = client.post(BATCH, json={"persons": [query(scene["draft"]), {"name": "张伟", "id_number": NOBODY[:-1] + ("0" if NOBODY[-1] != "0" else "1")}]},
                      headers=key)
    assert bad.status_code == 422
    assert [(error["field"], "校验位" in error["message"]) for error in bad.get_json()["errors"]] == [
        ("persons.1.id_number", True)]
    assert db.session.query(AuditEvent).filter_by(action="api_status_lookup").count() == 0


@pytest.mark.parametrize("body, field", [
    ({"id_number": NOBODY}, "name"),
    ({"name": "张\u202e伟", "id_number": NOBODY}, "name"),
    ({"name": "Zhang Wei", "id_number": NOBODY}, "name"),
    ({"name": "张伟", "id_number": NOBODY[:-1]}, "id_number"),
    ({"name": "张伟", "id_number": NOBODY, "phone": "1"}, "phone"),
])
def test_bad_input_names_the_field_in_chinese(client, people, body, field):
    answer = client.post(SINGLE, json=body, headers=new_client(["211302"]))
    assert answer.status_code == 422 and answer.get_json()["code"] == "invalid"
    assert [error["field"] for error in answer.get_json()["errors"]] == [field]


def test_the_rate_limit_answers_429_with_retry_after(client, scene):
    key = new_client(["211302"], rate_per_minute=3)
    assert client.post(BATCH, json={"persons": [query(scene["draft"])] * 2}, headers=key).status_code == 200
    refused = client.post(BATCH, json={"persons": [query(scene["draft"])] * 2}, headers=key)
    assert refused.status_code == 429 and refused.get_json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.post(SINGLE, json=query(scene["draft"]), headers=key).status_code == 200
    assert client.post(SINGLE, json=query(scene["draft"]), headers=key).status_code == 429
    # Another client's allowance is its own.
    assert client.post(SINGLE, json=query(scene["draft"]), headers=new_client(["211302"])).status_code == 200
    assert db.session.scalar(select(ApiRateWindow.count).join(ApiClient).where(ApiClient.rate_per_minute == 3)) == 3


def test_a_batch_larger_than_a_minutes_allowance_is_refused_as_such_and_uses_none_of_it(client, scene):
    key = new_client(["211302"], rate_per_minute=3)
    refused = client.post(BATCH, json={"persons": [query(scene["draft"])] * 4}, headers=key)
    body = refused.get_json()
    assert refused.status_code == 422 and "Retry-After" not in refused.headers
    assert [error["field"] for error in body["errors"]] == ["persons"] and "上限（3 人）" in body["message"]
    assert client.post(BATCH, json={"persons": [query(scene["draft"])] * 3}, headers=key).status_code == 200


def test_a_past_minute_no_longer_counts(app, scene):
    from kjdms.services import api_rate
    new_client(["211302"], rate_per_minute=2)
    record = db.session.scalars(select(ApiClient)).one()
    earlier = utcnow() - timedelta(minutes=2)
    assert api_rate.take(db.session, record, 2, now=earlier) is None
    assert api_rate.take(db.session, record, 1, now=earlier) is not None
    assert api_rate.take(db.session, record, 2) is None
    assert db.session.scalar(select(ApiRateWindow.count)) == 2  # the past minute's row is gone


@pytest.mark.parametrize("spoil", ["revoked", "expired"])
def test_revoked_or_expired_keys_cannot_look_up(client, scene, spoil):
    key = new_client(["211302"])
    record = db.session.scalars(select(ApiClient)).one()
    if spoil == "revoked":
        record.revoked_at = utcnow()
    else:
        record.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    answer = client.post(SINGLE, json=query(scene["draft"]), headers=key)
    assert answer.status_code == 401 and "found" not in answer.get_json()


def test_staff_and_applicants_cannot_use_the_downstream_lookup(app, auth, people, scene):
    from kjdms.services.api_tokens import issue_token
    token = issue_token(app.secret_key, people["reviewer"])
    answer = app.test_client().post(SINGLE, json=query(scene["draft"]), headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403 and "found" not in answer.get_json()
    # A signed-in browser posting without the page's CSRF token is refused before anything is looked up.
    owner = auth("owner").post(SINGLE, json=query(scene["draft"]))
    assert owner.status_code == 400 and owner.get_json()["code"] == "csrf_failed"


def test_id_numbers_never_reach_the_logs_or_the_audit(app, client, scene, caplog):
    logged = RequestLog(app.wsgi_app)
    app.wsgi_app = logged
    numbers = [scene[name].person.id_number for name in ("approved", "draft", "elsewhere")]
    key = new_client(["211302"], rate_per_minute=3)
    with caplog.at_level(logging.DEBUG):
        client.post(SINGLE, json=query(scene["approved"]), headers=key)
        client.post(BATCH, json={"persons": [query(scene["draft"]), query(scene["elsewhere"])]}, headers=key)
        client.post(SINGLE, json=query(scene["approved"]), headers=key)  # over the limit: 429
        client.post(SINGLE, json={"name": "张伟", "id_number": numbers[0][:-1] + "Z"}, headers=key)  # 422
        client.post(SINGLE, json=query(scene["approved"]), headers={"Authorization": "Bearer kjc_x"})  # 401
    assert any(record.name == "kjdms.requests" for record in caplog.records)
    logs = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert not [number for number in numbers if number in logs or number[:-1] in logs]
    audit = " ".join(str(event.detail) for event in db.session.scalars(select(AuditEvent)))
    assert not [number for number in numbers if number in audit]
