"""Contract: every API operation's answers, successes and refusals alike, fit the OpenAPI document the site serves."""
from __future__ import annotations

from datetime import timedelta

import pytest

from kjdms.backends import get_blob_store, get_workflow
from kjdms.extensions import db
from kjdms.models import utcnow
from kjdms.permissions import SYSTEM
from kjdms.services import api_rate
from kjdms.services.api_clients import create_client
from kjdms.services.api_tokens import issue_token
from kjdms.services.reference import region_by_code
from tests.apicontract import assert_conforms, served_document
from tests.helpers import make_id_number, review_queue

# A page sweep's cousin: SQLite only; the services behind these answers are tested on both databases.
pytestmark = pytest.mark.pages

LOOKUP, BATCH = "/api/v1/status-lookups", "/api/v1/status-lookups/batch"


@pytest.fixture
def callers(app, browser, auth, people):
    """Headers or browsers for each kind of caller: none, a client key, a tight-limit key, a staff token, sessions."""
    regions = [region_by_code(db.session, "211300")]
    _, key = create_client(db.session, SYSTEM, name="继续教育系统", purpose="继续教育登记核验", regions=regions,
                           may_see_credit=True)
    _, tight = create_client(db.session, SYSTEM, name="限流测试", purpose="限流", regions=regions, rate_per_minute=1)
    spent_client, spent = create_client(db.session, SYSTEM, name="已用完", purpose="限流", regions=regions,
                                        rate_per_minute=1)
    # This minute's allowance and the next one's used up, so the case meets a full minute even across its turn.
    now = utcnow()
    for moment in (now + timedelta(minutes=1), now):
        assert api_rate.take(db.session, spent_client, 1, now=moment) is None
    return {
        "anonymous": (browser(), {}),
        "client": (browser(), {"Authorization": f"Bearer {key}"}),
        "tight": (browser(), {"Authorization": f"Bearer {tight}"}),
        "spent": (browser(), {"Authorization": f"Bearer {spent}"}),
        "staff_token": (browser(), {"Authorization": f"Bearer {issue_token(app.secret_key, people['reviewer'])}"}),
        "staff_session": (auth("reviewer"), {}),
        "applicant": (auth("owner"), {}),
        "forged": (browser(), {"Authorization": "Bearer kjc_000000000000_forged"}),
    }


def person(people):
    owner = people["owner"].person
    return {"name": owner.name, "id_number": owner.id_number}


# (who, method, path, body, expected status); body None sends none, a str is sent as it is.
CASES = [
    ("client", "GET", "/api/v1/me", None, 200),
    ("staff_token", "GET", "/api/v1/me", None, 200),
    ("staff_session", "GET", "/api/v1/me", None, 200),
    ("anonymous", "GET", "/api/v1/me", None, 401),
    ("forged", "GET", "/api/v1/me", None, 401),
    ("applicant", "GET", "/api/v1/me", None, 403),
    ("staff_session", "POST", "/api/v1/staff-tokens", "csrf", 201),
    ("staff_session", "POST", "/api/v1/staff-tokens", None, 400),
    ("staff_token", "POST", "/api/v1/staff-tokens", None, 403),
    ("anonymous", "POST", "/api/v1/staff-tokens", None, 401),
    ("client", "POST", LOOKUP, "person", 200),
    ("client", "POST", LOOKUP, {"name": "张伟", "id_number": make_id_number(sequence=998)}, 200),
    ("client", "POST", LOOKUP, {"name": "张伟"}, 422),
    ("client", "POST", LOOKUP, "{not json", 400),
    ("client", "POST", LOOKUP, "form", 415),
    ("anonymous", "POST", LOOKUP, "person", 401),
    ("staff_token", "POST", LOOKUP, "person", 403),
    ("tight", "POST", BATCH, "two", 422),
    ("spent", "POST", LOOKUP, "person", 429),
    ("client", "POST", BATCH, "two", 200),
    ("client", "POST", BATCH, {"persons": []}, 422),
]


@pytest.mark.parametrize("who, method, path, body, status", CASES)
def test_each_answer_fits_the_document(app, browser, people, callers, who, method, path, body, status):
    visitor, headers = callers[who]
    document = served_document(browser())
    kwargs = {"headers": dict(headers)}
    if body == "csrf":
        kwargs["headers"]["X-CSRFToken"] = visitor.csrf_token("/review/")
    elif body == "person":
        kwargs["json"] = person(people)
    elif body == "two":
        kwargs["json"] = {"persons": [person(people)] * 2}
    elif body == "form":
        kwargs["data"] = {"name": "张伟"}
    elif isinstance(body, str):
        kwargs.update(data=body, content_type="application/json")
    elif body is not None:
        kwargs["json"] = body
    response = visitor.open(path, method=method, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert_conforms(document, method, path, response)


def test_every_operation_of_the_document_is_exercised(browser):
    document = served_document(browser())
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert operations == {(method, path) for _, method, path, _, _ in CASES} | STAFF_OPERATIONS


# The staff operations, exercised by test_every_staff_answer_fits_the_document.
STAFF_OPERATIONS = {("GET", "/api/v1/review/worklist"), ("GET", "/api/v1/dossiers/{dossier_id}"),
                    ("GET", "/api/v1/dossiers/{dossier_id}/documents"),
                    ("POST", "/api/v1/dossiers/{dossier_id}/id-number-reveals"),
                    ("POST", "/api/v1/dossiers/{dossier_id}/decisions")}


def test_every_staff_answer_fits_the_document(app, browser, people):
    """The staff operations, successes and refusals, on a review queue (tests/helpers.review_queue)."""
    queue = review_queue(people, get_workflow(), get_blob_store())
    tokens = {role: issue_token(app.secret_key, user) for role, user in people.items() if role != "dossier"}
    document = served_document(browser())
    waiting, other, approved = queue["孙三"], queue["李四"], queue["周五"]
    detail, documents = "/api/v1/dossiers/{dossier_id}", "/api/v1/dossiers/{dossier_id}/documents"
    reveals, decisions = "/api/v1/dossiers/{dossier_id}/id-number-reveals", "/api/v1/dossiers/{dossier_id}/decisions"
    calls = [
        ("get", "/api/v1/review/worklist", "/api/v1/review/worklist", "city_reviewer", None),
        ("get", "/api/v1/review/worklist", "/api/v1/review/worklist?waited=5", "reviewer", None),
        ("get", "/api/v1/review/worklist", "/api/v1/review/worklist", "archivist", None),
        ("get", "/api/v1/review/worklist", "/api/v1/review/worklist", None, None),
        ("get", detail, f"/api/v1/dossiers/{waiting.id}", "reviewer", None),
        ("get", detail, f"/api/v1/dossiers/{approved.id}", "archivist", None),
        ("get", detail, f"/api/v1/dossiers/{other.id}", "reviewer", None),
        ("get", documents, f"/api/v1/dossiers/{waiting.id}/documents", "reviewer", None),
        ("get", documents, f"/api/v1/dossiers/{other.id}/documents", "reviewer", None),
        ("post", reveals, f"/api/v1/dossiers/{waiting.id}/id-number-reveals", "reviewer", {"reason": "核对复印件"}),
        ("post", reveals, f"/api/v1/dossiers/{waiting.id}/id-number-reveals", "reviewer", {}),
        ("post", reveals, f"/api/v1/dossiers/{approved.id}/id-number-reveals", "archivist", {"reason": "核对复印件"}),
        ("post", decisions, f"/api/v1/dossiers/{waiting.id}/decisions", "reviewer", {"decision": "reject"}),
        ("post", decisions, f"/api/v1/dossiers/{waiting.id}/decisions", "reviewer",
         {"decision": "approve", "lock_version": waiting.lock_version}),
        ("post", decisions, f"/api/v1/dossiers/{waiting.id}/decisions", "reviewer",
         {"decision": "approve", "lock_version": waiting.lock_version}),
        ("post", decisions, f"/api/v1/dossiers/{approved.id}/decisions", "credit_officer",
         {"decision": "approve", "lock_version": 1}),
    ]
    seen = set()
    for method, template, path, role, body in calls:
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
        response = browser().open(path, method=method.upper(), headers=headers,
                                  **({"json": body} if body is not None else {}))
        assert_conforms(document, method, template, response)
        seen.add((template, response.status_code))
    assert {status for _, status in seen} == {200, 201, 401, 403, 404, 409, 422}
    assert {(method.upper(), template) for method, template, *_ in calls} == STAFF_OPERATIONS

