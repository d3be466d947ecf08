"""The staff API: the worklist, a dossier's fields and documents, the audited reveal and the review decision,
with the review pages' scope (404 outside it), roles (403), CSRF, conflicts (409) and Chinese field errors."""
import pytest
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.models import AuditEvent, Dossier, WorkflowHistory
from kjdms.permissions import SYSTEM
from kjdms.services.api_clients import create_client
from kjdms.services.api_tokens import issue_token
from kjdms.services.reference import region_by_code
from tests.helpers import review_queue
from tests.webclient import fresh

CONFLICT = "该档案已被他人处理或修改"


def bearer(credential):
    return {"Authorization": f"Bearer {credential}"}


@pytest.fixture
def tokens(app, people):
    """A staff token for each staff role, and one (refused) for the applicant."""
    return {role: issue_token(app.secret_key, user) for role, user in people.items() if role != "dossier"}


@pytest.fixture
def api(client, tokens):
    """Return a function calling the API as people[role] by their token (None: no credentials)."""
    def call(method, path, role=None, **kwargs):
        headers = bearer(tokens[role]) if role else {}
        return getattr(client, method)(path, headers=headers, **kwargs)
    return call


@pytest.fixture
def queue(people, workflow, blobs):
    """Three dossiers waiting in 双塔区 (10, 5 and 1 days), one in 龙城区, and one approved in 双塔区."""
    return review_queue(people, workflow, blobs)


def audit_rows(action):
    db.session.expire_all()
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def field_errors(response):
    return {error["field"]: error["message"] for error in response.get_json().get("errors", [])}


@pytest.mark.pages
class TestWorklist:
    def test_lists_the_callers_regions_oldest_first_with_masked_id_numbers(self, api, queue):
        body = api("get", "/api/v1/review/worklist", "reviewer").get_json()
        assert [row["name"] for row in body["dossiers"]] == ["孙三", "赵一", "钱二"]
        assert body["total"] == 3 and body["page"] == body["pages"] == 1 and body["page_size"] == 50
        assert body["counts_by_region"] == [{"region": {"code": "211302", "name": "双塔区"}, "count": 3}]
        number = queue["孙三"].person.id_number
        assert body["dossiers"][0]["id_number_masked"] == f"{number[:4]}{'*' * 10}{number[-4:]}"
        text = str(body)
        assert not any(dossier.person.id_number in text for dossier in queue.values())
        assert "李四" not in text and "211303" not in text  # no name, no count, no code from outside the scope

    def test_a_city_reviewer_sees_every_county_below_with_counts(self, api, queue):
        body = api("get", "/api/v1/review/worklist", "city_reviewer").get_json()
        assert [row["name"] for row in body["dossiers"]] == ["孙三", "赵一", "李四", "钱二"]
        assert {row["region"]["code"]: row["count"] for row in body["counts_by_region"]} == {"211302": 3, "211303": 1}

    def test_filters_by_region_and_waiting_time_as_the_page_does(self, api, queue):
        by_region = api("get", "/api/v1/review/worklist?region=211303", "city_reviewer").get_json()
        assert [row["name"] for row in by_region["dossiers"]] == ["李四"] and by_region["total"] == 1
        waited = api("get", "/api/v1/review/worklist?waited=7", "reviewer").get_json()
        assert [row["name"] for row in waited["dossiers"]] == ["孙三"] and waited["total"] == 1

    def test_a_region_outside_the_scope_answers_as_one_that_does_not_exist(self, api, queue):
        outside = api("get", "/api/v1/review/worklist?region=211303", "reviewer")
        unknown = api("get", "/api/v1/review/worklist?region=999999", "reviewer")
        assert outside.status_code == unknown.status_code == 200
        assert outside.get_json() == unknown.get_json()
        assert outside.get_json()["total"] == 0 and outside.get_json()["dossiers"] == []

    def test_a_filter_the_page_does_not_offer_is_named_in_chinese(self, api, queue):
        response = api("get", "/api/v1/review/worklist?waited=5&page=0", "reviewer")
        assert response.status_code == 422 and response.get_json()["code"] == "invalid"
        assert field_errors(response) == {"waited": "已等待天数（waited）：只能是 0、3、7、15、30",
                                          "page": "页码（page）：不能小于 1"}

    def test_only_roles_that_work_the_queue_get_it(self, api, queue):
        for role, status in ((None, 401), ("owner", 401), ("archivist", 403), ("credit_officer", 403),
                             ("administrator", 403)):
            response = api("get", "/api/v1/review/worklist", role)
            assert response.status_code == status, role
            assert "孙三" not in response.get_data(as_text=True)

    def test_a_client_key_and_an_applicants_session_are_refused(self, app, client, auth, queue):
        _, key = create_client(db.session, SYSTEM, name="继续教育系统", purpose="继续教育登记",
                               regions=[region_by_code(db.session, "211302")])
        db.session.commit()
        assert client.get("/api/v1/review/worklist", headers=bearer(key)).status_code == 403
        assert auth("owner").get("/api/v1/review/worklist").status_code == 403

    def test_a_signed_in_reviewer_reads_it_with_the_session_cookie(self, auth, queue):
        response = auth("reviewer").get("/api/v1/review/worklist")
        assert response.status_code == 200 and response.get_json()["total"] == 3


@pytest.mark.pages
class TestDossier:
    def test_shows_the_fields_with_the_id_number_masked(self, api, queue):
        dossier = queue["孙三"]
        response = api("get", f"/api/v1/dossiers/{dossier.id}", "reviewer")
        body = response.get_json()
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
        assert body["number"] == dossier.number and body["state"] == "submitted" and body["state_title"] == "待审核"
        assert body["person"]["name"] == "孙三" and body["person"]["id_number_masked"].count("*") == 10
        assert body["region"] == {"code": "211302", "name": "双塔区"}
        assert body["employer_name"] == dossier.employer_name and body["job_types"] == ["cashier"]
        assert body["lock_version"] == dossier.lock_version
        # Times carry their offset (a JSON Schema date-time), though SQLite hands them back naive.
        assert body["state_changed_at"].endswith(("Z", "+00:00")) and body["history"][0]["at"].endswith(("Z", "+00:00"))
        assert body["may_reveal_id_number"] is True and body["decisions"] == ["approve", "reject"]
        assert [row["action"] for row in body["history"]] == ["submit"] and body["history"][0]["acted_by"] == "本人"
        assert dossier.person.id_number not in response.get_data(as_text=True)

    def test_another_countys_dossier_answers_as_one_that_does_not_exist(self, api, queue):
        other = api("get", f"/api/v1/dossiers/{queue['李四'].id}", "reviewer")
        missing = api("get", "/api/v1/dossiers/987654", "reviewer")
        past_range = api("get", "/api/v1/dossiers/" + "9" * 25, "reviewer")
        assert other.status_code == missing.status_code == past_range.status_code == 404
        assert other.get_json() == missing.get_json() == past_range.get_json() == {
            "code": "not_found", "message": "未找到：地址不存在，或您无权查看。"}
        assert api("get", f"/api/v1/dossiers/{queue['李四'].id}/documents", "reviewer").get_json() == missing.get_json()

    def test_the_pages_answer_404_for_a_number_past_the_id_range_too(self, auth, people):
        assert auth("reviewer").get("/review/" + "9" * 25).status_code == 404

    def test_each_role_sees_what_the_workflow_lets_it_see(self, api, queue):
        waiting, approved = queue["孙三"].id, queue["周五"].id
        # An archivist views approved dossiers only; a credit officer views but cannot decide or reveal.
        assert api("get", f"/api/v1/dossiers/{waiting}", "archivist").status_code == 404
        for role in ("archivist", "credit_officer"):
            body = api("get", f"/api/v1/dossiers/{approved}", role).get_json()
            assert body["state"] == "approved" and body["decisions"] == [] and body["may_reveal_id_number"] is False
        assert api("get", f"/api/v1/dossiers/{waiting}", "owner").status_code == 401

    def test_lists_every_documents_metadata_but_neither_content_nor_file_name(self, api, queue):
        dossier = queue["孙三"]
        body = api("get", f"/api/v1/dossiers/{dossier.id}/documents", "reviewer").get_json()
        versions = {(a.slot, v.number): v for a in dossier.attachments for v in a.versions}
        assert body["dossier_id"] == dossier.id and len(body["documents"]) == len(versions)
        first = body["documents"][0]
        assert first["slot"] == "basic_info_form" and first["slot_title"] == "基本信息表" and first["current"] is True
        for document in body["documents"]:
            version = versions[document["slot"], document["version"]]
            assert (document["sha256"], document["size"], document["media_type"]) == (
                version.sha256, version.size, version.media_type)
            assert set(document) == {"slot", "slot_title", "version", "current", "size", "media_type", "sha256",
                                     "uploaded_at"}


NO_ID_NUMBER = "查看理由（reason）：不能包含身份证号（这段文字写入审计日志，审计日志不记录身份证号）"


@pytest.mark.pages
class TestReveal:
    def test_gives_the_full_number_once_and_audits_who_and_why(self, api, queue):
        dossier = queue["孙三"]
        response = api("post", f"/api/v1/dossiers/{dossier.id}/id-number-reveals", "reviewer",
                       json={"reason": "  核对身份证复印件 "})
        assert response.status_code == 201
        assert response.get_json() == {"dossier_id": dossier.id, "id_number": dossier.person.id_number}
        [event] = audit_rows("dossier.reveal_id_number")
        assert event.actor_label == "reviewer_shuangta" and event.object_id == dossier.id
        assert event.detail == {"reason": "核对身份证复印件"}
        # Reading the dossier again shows it masked: a reveal is for that answer only.
        assert dossier.person.id_number not in api("get", f"/api/v1/dossiers/{dossier.id}", "reviewer").get_data(
            as_text=True)

    def test_a_reason_is_required_and_named_in_chinese(self, api, queue):
        for body, message in (({}, "查看理由（reason）：必填"),
                              ({"reason": " 看 "}, "查看理由（reason）：至少 2 个字符"),
                              ({"reason": "核对\u202e号码"}, "查看理由（reason）：不能包含控制字符或文字方向控制符（U+202E）"),
                              ({"reason": "核对" * 101}, "查看理由（reason）：最多 200 个字符"),
                              # An ID number typed into the reason would land in the audit log.
                              ({"reason": f"核对 {queue['孙三'].person.id_number}"}, NO_ID_NUMBER),
                              ({"reason": "核对２１１３０２１９９００１０１００１Ｘ号"}, NO_ID_NUMBER),
                              ({"reason": "核对旧证号 211302900101001"}, NO_ID_NUMBER)):
            response = api("post", f"/api/v1/dossiers/{queue['孙三'].id}/id-number-reveals", "reviewer", json=body)
            assert response.status_code == 422 and field_errors(response) == {"reason": message}
            assert queue["孙三"].person.id_number not in response.get_data(as_text=True)
        assert audit_rows("dossier.reveal_id_number") == []

    def test_refused_to_whoever_the_page_refuses(self, api, queue):
        for role, target, status in (
            ("other_reviewer", "孙三", 404),  # a reviewer of the wrong county
            ("credit_officer", "孙三", 403),  # sees the dossier, may not reveal
            ("archivist", "孙三", 404),  # does not see a dossier waiting for review
            ("archivist", "周五", 403),
            ("owner", "孙三", 401),
        ):
            response = api("post", f"/api/v1/dossiers/{queue[target].id}/id-number-reveals", role,
                           json={"reason": "核对身份证复印件"})
            assert response.status_code == status, (role, target)
            assert queue[target].person.id_number not in response.get_data(as_text=True)
        assert audit_rows("dossier.reveal_id_number") == []

    def test_the_session_cookie_needs_the_pages_csrf_token(self, auth, queue):
        browser, path = auth("reviewer"), f"/api/v1/dossiers/{queue['孙三'].id}/id-number-reveals"
        refused = browser.post(path, json={"reason": "核对身份证复印件"})
        assert refused.status_code == 400 and refused.get_json()["code"] == "csrf_failed"
        assert audit_rows("dossier.reveal_id_number") == []
        granted = browser.post(path, json={"reason": "核对身份证复印件"},
                               headers={"X-CSRFToken": browser.csrf_token("/review/")})
        assert granted.status_code == 201 and len(audit_rows("dossier.reveal_id_number")) == 1


class TestDecisions:
    """Approve, reject and the conflict on both databases: the one-transaction decision lives in the services below."""

    def test_approve_records_the_decision_and_its_audit_row(self, api, queue):
        dossier = queue["孙三"]
        response = api("post", f"/api/v1/dossiers/{dossier.id}/decisions", "reviewer",
                       json={"decision": "approve", "lock_version": dossier.lock_version})
        assert response.status_code == 201
        body = response.get_json()
        assert body["decision"] == "approve" and body["state"] == "approved" == fresh(Dossier, dossier.id).state
        assert body["lock_version"] == fresh(Dossier, dossier.id).lock_version
        [event] = [e for e in audit_rows("workflow.approve") if e.object_id == dossier.id]
        assert event.actor_label == "reviewer_shuangta" and event.detail["to_state"] == "approved"

    def test_reject_keeps_the_reason_and_the_flagged_items(self, api, queue):
        dossier = queue["赵一"]
        response = api("post", f"/api/v1/dossiers/{dossier.id}/decisions", "reviewer", json={
            "decision": "reject", "comment": "单位名称与代码证不符", "lock_version": dossier.lock_version,
            "flagged": ["attachment:employer_certificate", "employer_name"]})
        assert response.status_code == 201 and response.get_json()["state"] == "rejected"
        row = db.session.scalars(select(WorkflowHistory).where(
            WorkflowHistory.dossier_id == dossier.id, WorkflowHistory.action == "reject")).one()
        assert row.comment == "单位名称与代码证不符" and row.flagged == ["employer_name", "attachment:employer_certificate"]
        assert [e.detail["flagged"] for e in audit_rows("workflow.reject")] == [row.flagged]

    def test_a_stale_lock_version_is_a_conflict_and_changes_nothing(self, api, people, workflow, queue):
        dossier = queue["孙三"]
        read = api("get", f"/api/v1/dossiers/{dossier.id}", "reviewer").get_json()["lock_version"]
        first = api("post", f"/api/v1/dossiers/{dossier.id}/decisions", "city_reviewer",
                    json={"decision": "reject", "comment": "学历证书不清晰", "lock_version": read})
        assert first.status_code == 201
        second = api("post", f"/api/v1/dossiers/{dossier.id}/decisions", "reviewer",
                     json={"decision": "approve", "lock_version": read})
        assert second.status_code == 409 and second.get_json()["code"] == "conflict"
        assert CONFLICT in second.get_json()["message"]
        assert fresh(Dossier, dossier.id).state == "rejected"
        assert dossier.id not in {event.object_id for event in audit_rows("workflow.approve")}

    @pytest.mark.pages
    def test_bad_input_is_named_in_chinese_and_nothing_is_saved(self, api, queue):
        dossier = queue["孙三"]
        before = dossier.lock_version
        for body, errors in (
            ({"decision": "reject"}, {"comment": "意见（comment）：「退回」必须填写理由"}),
            ({"decision": "approve", "flagged": ["employer_name"]}, {"flagged": "有问题的项目（flagged）：只有退回时才能勾选"}),
            ({"decision": "reject", "comment": "不符", "flagged": ["salary"]},
             {"flagged.0": "有问题的项目（flagged.0）：取值不在允许范围内"}),
            ({"decision": "accept", "comment": "x" * 2001, "lock_version": None},
             {"decision": "审核结论（decision）：取值不在允许范围内", "comment": "意见（comment）：最多 2000 个字符",
              "lock_version": "版本号（lock_version）：应为整数"}),
        ):
            response = api("post", f"/api/v1/dossiers/{dossier.id}/decisions", "reviewer",
                           json={"lock_version": before, **body})
            assert response.status_code == 422 and response.get_json()["code"] == "invalid"
            assert field_errors(response) == errors
        assert fresh(Dossier, dossier.id).state == "submitted" and fresh(Dossier, dossier.id).lock_version == before

    @pytest.mark.pages
    def test_a_decision_the_state_does_not_allow_is_refused(self, api, queue):
        dossier = queue["周五"]
        response = api("post", f"/api/v1/dossiers/{dossier.id}/decisions", "reviewer",
                       json={"decision": "approve", "lock_version": dossier.lock_version})
        assert response.status_code == 422 and response.get_json() == {
            "code": "refused", "message": "「已审核确认」状态下不能执行「审核确认」"}

    @pytest.mark.pages
    def test_refused_to_whoever_the_page_refuses(self, api, queue):
        dossier = queue["孙三"]
        for role, status in (("other_reviewer", 404), ("archivist", 403), ("credit_officer", 403),
                             ("administrator", 403), ("owner", 401), (None, 401)):
            response = api("post", f"/api/v1/dossiers/{dossier.id}/decisions", role,
                           json={"decision": "approve", "lock_version": dossier.lock_version})
            assert response.status_code == status, role
        assert fresh(Dossier, dossier.id).state == "submitted"
        assert dossier.id not in {event.object_id for event in audit_rows("workflow.approve")}

    @pytest.mark.pages
    def test_the_session_cookie_needs_the_pages_csrf_token(self, auth, queue):
        browser, dossier = auth("reviewer"), queue["孙三"]
        body = {"decision": "approve", "lock_version": dossier.lock_version}
        refused = browser.post(f"/api/v1/dossiers/{dossier.id}/decisions", json=body)
        assert refused.status_code == 400 and fresh(Dossier, dossier.id).state == "submitted"
        granted = browser.post(f"/api/v1/dossiers/{dossier.id}/decisions", json=body,
                               headers={"X-CSRFToken": browser.csrf_token("/review/")})
        assert granted.status_code == 201
