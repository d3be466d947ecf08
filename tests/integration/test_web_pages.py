"""Every page as every role: each answers as its role allows, none fails, and no GET writes anything but audit."""
import pytest
from sqlalchemy import select
from werkzeug.exceptions import MethodNotAllowed, NotFound

from kjdms.extensions import db
from kjdms.models import AuditEvent
from tests.webclient import APPLICANT_PAGES, POST_ONLY, build_site, database_snapshot, every_get_path, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

APPLICANTS = ("欧阳明月", "张伟", "李四")


@pytest.fixture
def site(people, workflow, blobs):
    return build_site(people, workflow, blobs)


# Reading a document or finding a person by ID number is a disclosure: the only thing a GET writes.
DISCLOSURES = {"document.download", "document.preview", "search.id_number"}


def without_audit(snapshot):
    counts, dossiers = snapshot
    return {table: count for table, count in counts.items() if table != "audit_events"}, dossiers


@pytest.mark.long
def test_no_get_writes_anything_but_disclosure_audit_and_no_page_fails(visitors, site):
    before = database_snapshot()
    last_event = db.session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    answers = {}
    for who, visitor in visitors.items():
        for path in every_get_path(site):
            response = visitor.get(path)
            answers[who, path] = response.status_code
            # 401 only from the API, which answers a missing credential instead of redirecting to a sign-in page.
            expected = (200, 302, 403, 404, 405, 415) + ((401,) if path.startswith("/api/") else ())
            assert response.status_code in expected, (who, path, response.status_code)
    assert without_audit(database_snapshot()) == without_audit(before)
    written = db.session.scalars(select(AuditEvent).where(AuditEvent.id > last_event)).all()
    assert written and {event.action for event in written} <= DISCLOSURES
    # Staff only: a person reading their own documents discloses nothing.
    assert not any(event.actor_label.startswith("applicant:") or event.actor_label == "anonymous"
                   for event in written)
    # And every disclosure a staff member received is one audit row: no document or ID-number search unaudited.
    staff = set(visitors) - {"anonymous", *APPLICANTS}
    disclosed = [(who, path) for (who, path), status in answers.items() if who in staff and (
        (path.startswith("/files/") and status in (200, 415))
        or (path.startswith("/search/?idn=") and path != "/search/?idn=forged" and status == 200))]
    assert disclosed and len(written) == len(disclosed), (len(written), len(disclosed))
    assert all(answers[who, path] == 405 for who in visitors for path in POST_ONLY if "{" not in path)


def test_the_sweep_covers_every_page_of_the_application(app, site):
    urls = app.url_map.bind("localhost")
    swept = set()
    for path in every_get_path(site):
        path = path.split("?")[0]
        try:
            swept.add(urls.match(path, method="GET")[0])
        except MethodNotAllowed:
            swept.add(urls.match(path, method="POST")[0])
        except NotFound:
            assert path == "/no-such-page"
    # "static" is the application's own static folder, and it has none.
    assert {rule.endpoint for rule in app.url_map.iter_rules()} - {"static"} == swept


@pytest.mark.parametrize("path", APPLICANT_PAGES)
def test_applicant_pages_answer_by_role(visitors, path):
    for who, visitor in visitors.items():
        expected = 200 if who in APPLICANTS else 302 if who == "anonymous" else 403
        assert visitor.get(path).status_code == expected, who


def test_the_worklist_answers_by_role(visitors):
    for who, visitor in visitors.items():
        expected = (200 if who in ("reviewer", "city_reviewer", "other_reviewer")
                    else 302 if who == "anonymous" else 403)
        assert visitor.get("/review/").status_code == expected, who


def test_the_search_page_answers_by_role(visitors):
    for who, visitor in visitors.items():
        expected = 302 if who == "anonymous" else 403 if who in APPLICANTS else 200
        assert visitor.get("/search/?q=欧阳明月").status_code == expected, who


def test_review_pages_answer_by_role_region_and_state(visitors, site):
    """欧阳明月's dossier is approved and its change submitted; 张伟's is a draft; 李四's (龙城区) rejected."""
    main, draft, elsewhere, change = (site["named"][key] for key in ("main", "draft", "elsewhere", "change"))
    expected = {
        "reviewer": {main: 200, draft: 200, elsewhere: 404, change: 200},
        "city_reviewer": {main: 200, draft: 200, elsewhere: 200, change: 200},
        "other_reviewer": {main: 404, draft: 404, elsewhere: 200, change: 404},
        "credit_officer": {main: 200, draft: 404, elsewhere: 200, change: 200},
        "archivist": {main: 200, draft: 404, elsewhere: 404, change: 404},
        "administrator": {main: 200, draft: 200, elsewhere: 200, change: 200},
    }
    for who, visitor in visitors.items():
        for dossier in site["dossiers"]:
            want = expected.get(who, {}).get(dossier, 302 if who == "anonymous" else 403)
            assert visitor.get(f"/review/{dossier}").status_code == want, (who, dossier)


def test_pages_are_chinese_and_carry_the_protective_headers(visitors):
    for who, visitor in visitors.items():
        response = visitor.get("/")
        assert '<html lang="zh-CN">' in text(response)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
