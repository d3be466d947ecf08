"""The API's frame: the published OpenAPI 3.1 document and its page, JSON errors, keys, staff tokens and CSRF."""
from datetime import timedelta

import pytest

from kjdms.extensions import db
from kjdms.models import AuditEvent, utcnow
from kjdms.permissions import SYSTEM
from kjdms.services.api_clients import create_client
from kjdms.services.api_tokens import issue_token
from kjdms.services.reference import region_by_code
from kjdms.services.sessions import end_all_sessions


def bearer(credential):
    return {"Authorization": f"Bearer {credential}"}


@pytest.fixture
def client_key(app):
    """A usable key of a client allowed to ask about 双塔区."""
    _, key = create_client(db.session, SYSTEM, name="考试报名系统", purpose="资格考试报名核验",
                           regions=[region_by_code(db.session, "211302")])
    return key


def test_the_document_is_openapi_3_1_with_its_security_schemes(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    assert {"/api/v1/me", "/api/v1/staff-tokens"} <= set(document["paths"])
    assert set(document["components"]["securitySchemes"]) == {"bearer", "session"}
    # The page's own routes and the document itself are not operations of the API.
    assert not [path for path in document["paths"] if path.startswith("/api/v1/docs") or path.endswith(".json")]


def test_the_docs_page_runs_on_files_kjdms_serves_itself(client):
    page = client.get("/api/v1/docs/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "/api/v1/openapi.json" in html
    assert "http://" not in html and "https://" not in html  # no CDN: the intranet has no internet
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    for asset in ("/api/v1/docs/assets/swagger-ui-bundle.js", "/api/v1/docs/assets/swagger-ui.css",
                  "/static/api/docs.js"):
        assert asset in html and client.get(asset).status_code == 200
    assert client.get("/api/v1/docs/assets/LICENSE").status_code == 404


@pytest.mark.parametrize("method, path, status, code", [
    ("get", "/api/v1/nowhere", 404, "not_found"),
    ("delete", "/api/v1/me", 405, "method_not_allowed"),
    ("get", "/api/v1/me", 401, "unauthenticated"),
    ("post", "/api/v1/staff-tokens", 401, "unauthenticated"),
])
def test_errors_under_the_api_are_json_in_chinese(client, method, path, status, code):
    response = getattr(client, method)(path)
    body = response.get_json()
    assert response.status_code == status and body["code"] == code
    assert any("\u4e00" <= character <= "\u9fff" for character in body["message"])
    # UTF-8 on the wire, readable in a log or a terminal, not \u escapes.
    assert body["message"].encode() in response.data and b"\\u" not in response.data
    if status == 405:
        assert "GET" in response.headers["Allow"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_pages_keep_their_html_errors(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_a_client_key_names_its_client(client, client_key):
    body = client.get("/api/v1/me", headers=bearer(client_key)).get_json()
    assert body == {"kind": "client", "name": "考试报名系统", "regions": ["211302"], "expires_at": None}


@pytest.mark.parametrize("spoil", ["revoked", "expired", "altered", "unknown"])
def test_revoked_expired_or_altered_keys_are_refused(app, client, client_key, spoil):
    from kjdms.models import ApiClient
    record = db.session.query(ApiClient).one()
    if spoil == "revoked":
        record.revoked_at = utcnow()
    elif spoil == "expired":
        record.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    key = {"altered": client_key[:-1] + ("A" if client_key[-1] != "A" else "B"),
           "unknown": "kjc_000000000000_" + "x" * 43}.get(spoil, client_key)
    response = client.get("/api/v1/me", headers=bearer(key))
    assert response.status_code == 401 and response.get_json()["code"] == "invalid_credentials"


def test_only_a_hash_of_the_key_is_stored(app, client_key):
    from kjdms.models import ApiClient
    record = db.session.query(ApiClient).one()
    # The secret part may itself hold "_" (URL-safe base64): split off the mark and the prefix only.
    _, prefix, secret = client_key.split("_", 2)
    assert secret not in record.key_hash and record.key_prefix == prefix


def test_a_staff_session_gets_a_token_only_with_its_csrf_token(app, auth, people):
    browser = auth("reviewer")
    refused = browser.post("/api/v1/staff-tokens")
    assert refused.status_code == 400 and refused.get_json()["code"] == "csrf_failed"
    token = browser.csrf_token("/review/")
    granted = browser.post("/api/v1/staff-tokens", headers={"X-CSRFToken": token})
    assert granted.status_code == 201
    issued = granted.get_json()["token"]
    assert issued.startswith("kjs_")
    assert db.session.query(AuditEvent).filter_by(action="api_token_issued").count() == 1
    # The token works with no cookie at all, and names the user.
    me = browser.application.test_client().get("/api/v1/me", headers=bearer(issued)).get_json()
    assert me == {"kind": "staff", "name": "reviewer_shuangta", "regions": ["211302"], "expires_at": None}


def test_a_token_cannot_buy_another_token(app, client, people):
    token = issue_token(app.secret_key, people["reviewer"])
    response = client.post("/api/v1/staff-tokens", headers=bearer(token))
    assert response.status_code == 403


def test_a_staff_token_ends_with_the_users_sessions(app, client, people):
    token = issue_token(app.secret_key, people["reviewer"])
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    end_all_sessions(db.session, people["reviewer"])
    db.session.commit()
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_a_token_is_refused_for_an_applicant_and_a_client_cannot_act_as_staff(app, client, people, client_key):
    assert client.get("/api/v1/me", headers=bearer(issue_token(app.secret_key, people["owner"]))).status_code == 401
    assert client.post("/api/v1/staff-tokens", headers=bearer(client_key)).status_code == 403


def test_an_applicant_session_is_not_an_api_caller(auth, people):
    assert auth("owner").get("/api/v1/me").status_code == 403


def test_a_bearer_header_outweighs_the_session_cookie(auth, people):
    browser = auth("reviewer")
    assert browser.get("/api/v1/me", headers=bearer("kjs_forged")).status_code == 401


def test_a_control_character_in_an_api_address_is_refused_in_json(client):
    response = client.get("/api/v1/me?x=%00")
    assert response.status_code == 400 and response.get_json()["code"] == "invalid"
