"""CSRF on every form: a POST without its token, or with a forged or another browser's token, is refused with 400."""
import io

import pytest

from kjdms.extensions import db
from kjdms.samples import sample_pdf
from kjdms.services.lifecycle import fire_transition
from tests.helpers import APPLICANT_PASSWORD, STAFF_PASSWORD, applicant, make_id_number, upload_required
from tests.webclient import basic_information, database_snapshot, fresh, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages


@pytest.fixture
def scene(people, workflow, blobs):
    """The owner's complete draft with its documents, a submitted dossier in 双塔区, and an approved one."""
    upload_required(workflow, blobs, people["dossier"], people["owner"])
    waiting, waiting_owner = applicant(name="赵一")
    upload_required(workflow, blobs, waiting, waiting_owner)
    fire_transition(db.session, workflow, waiting, "submit", waiting_owner)
    done, done_owner = applicant(name="周五")
    upload_required(workflow, blobs, done, done_owner)
    fire_transition(db.session, workflow, done, "submit", done_owner)
    fire_transition(db.session, workflow, done, "approve", people["reviewer"])
    return {"draft": people["dossier"], "submitted": waiting, "approved": done, "approved_owner": done_owner}


def lock(dossier):
    return str(fresh(type(dossier), dossier.id).lock_version)


# name: (who signs in first, the page the form is on, the path it posts to, the data it sends)
FORMS = {
    "login": (None, "/login", "/login", lambda s, p: {
        "name": "张伟", "id_number": p["owner"].person.id_number, "password": APPLICANT_PASSWORD}),
    "staff_login": (None, "/login", "/login/staff", lambda s, p: {
        "staff-username": "reviewer_shuangta", "staff-password": STAFF_PASSWORD}),
    "register": (None, "/register", "/register", lambda s, p: {
        "name": "李娜", "id_number": make_id_number(birth="19920202"), "password": "new-secret-42",
        "password_confirm": "new-secret-42"}),
    "logout": ("owner", "/me/", "/logout", lambda s, p: {}),
    "edit": ("owner", "/me/edit", "/me/edit", lambda s, p: basic_information(employer_name="伪造请求改的单位")),
    "upload": ("owner", "/me/documents", "/me/documents/other", lambda s, p: {
        "file": (io.BytesIO(sample_pdf("forged")), "forged.pdf")}),
    "submit": ("owner", "/me/", "/me/transition/submit", lambda s, p: {"lock_version": lock(s["draft"])}),
    "change": ("approved_owner", "/me/", "/me/change", lambda s, p: {}),
    "approve": ("reviewer", "/review/", "/review/{submitted}/approve", lambda s, p: {
        "lock_version": lock(s["submitted"])}),
    "reject": ("reviewer", "/review/", "/review/{submitted}/reject", lambda s, p: {
        "lock_version": lock(s["submitted"]), "comment": "伪造的退回"}),
    "reveal": ("reviewer", "/review/", "/review/{submitted}/reveal", lambda s, p: {}),
    "notices_read": ("approved_owner", "/notices/", "/notices/read-all", lambda s, p: {}),
    "notices_email": ("owner", "/notices/", "/notices/email", lambda s, p: {"email": "zhangwei@example.com"}),
}


@pytest.mark.parametrize("form", FORMS)
def test_a_post_without_the_right_token_is_refused_and_changes_nothing(browser, people, scene, form):
    who, page, path, data = FORMS[form]
    path = path.format(submitted=scene["submitted"].id)
    user = scene[who] if who in scene else people.get(who)
    visitor = browser().enter_as(user) if user else browser()
    someone_else = browser().csrf_token()
    before = database_snapshot()
    for token in (None, "", "forged-token", someone_else):
        sent = data(scene, people)
        if token is not None:
            sent["csrf_token"] = token
        response = visitor.post(path, data=sent)
        assert response.status_code == 400, (form, token)
        assert "请求无效" in text(response) and "安全令牌" in text(response)
    assert database_snapshot() == before
    if user:  # still signed in: a refused logout did not sign out
        assert visitor.get("/me/" if user.is_applicant else "/review/").status_code == 200
    # The same request with the page's own token goes through: the refusal above was the token's doing.
    good = visitor.post(path, data={**data(scene, people), "csrf_token": visitor.csrf_token(page)})
    assert good.status_code in (200, 302), (form, good.status_code)
    assert database_snapshot() != before or form in ("login", "staff_login", "logout")


def test_the_first_password_form_needs_its_token(browser):
    _, legacy = applicant(name="刘洋", password=None, is_legacy=True)
    visitor = browser()
    visitor.submit("/login", {"name": "刘洋", "id_number": legacy.person.id_number, "password": ""})
    before = database_snapshot()
    response = visitor.post("/login/first-password", data={"password": "new-secret-42",
                                                            "password_confirm": "new-secret-42"})
    assert response.status_code == 400
    assert database_snapshot() == before and fresh(type(legacy), legacy.id).password_hash is None


def test_a_token_is_tied_to_its_session_and_survives_sign_in(browser, people):
    visitor = browser()
    token = visitor.csrf_token("/login")
    assert visitor.post("/login", data={"name": "张伟", "id_number": people["owner"].person.id_number,
                                        "password": APPLICANT_PASSWORD, "csrf_token": token}).status_code == 302
    # Signing in starts a new session, so a token from before it is no longer valid.
    assert visitor.post("/logout", data={"csrf_token": token}).status_code == 400
    assert visitor.submit("/logout", page="/me/").status_code == 302


# Who posts to each blueprint's routes in the sweep below: someone the view would otherwise serve.
SWEEP_USERS = {"applicant": "owner", "review": "reviewer", "credit": "credit_officer", "archive": "archivist",
               "auth": "owner", "stats": "administrator", "reports": "administrator", "admin": "administrator",
               "accounts": "administrator",
               "regions": "administrator", "settings": "administrator", "audit": "administrator",
               "notices": "owner"}


def post_paths(app, scene) -> list[tuple[str, str]]:
    """Return (endpoint, path) for every POST route of the URL map, each value of an any() part included."""
    from werkzeug.routing.converters import AnyConverter

    values = {"dossier_id": [scene["submitted"].id], "slot": ["other"], "record_id": [1], "name": ["submit", "retract"],
              "kind": ["xlsx", "csv", "pdf"], "report_id": ["MOF-20190630"],
              "notice_id": [1]}
    paths = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods:
            continue
        choices = {}
        for argument in rule.arguments:
            converter = rule._converters[argument]
            choices[argument] = list(converter.items) if isinstance(converter, AnyConverter) else values.get(argument)
            assert choices[argument], f"the CSRF sweep has no value for <{argument}> of {rule.rule}: add one"
        combinations = [{}]
        for argument, options in choices.items():
            combinations = [{**combination, argument: option} for combination in combinations for option in options]
        paths += [(rule.endpoint, rule.build(combination, append_unknown=False)[1]) for combination in combinations]
    return paths


def test_every_post_route_of_the_url_map_refuses_a_missing_or_forged_token(app, browser, people, scene):
    paths = post_paths(app, scene)
    assert {path for _, path in paths} >= {"/me/change/cancel", "/logout", "/login/staff"}
    before = database_snapshot()
    for endpoint, path in paths:
        user = people[SWEEP_USERS.get(endpoint.partition(".")[0], "owner")]
        visitor = browser().enter_as(user)
        for data in ({}, {"csrf_token": "forged-token"}, {"csrf_token": browser().csrf_token()}):
            response = visitor.post(path, data={**data, "comment": "伪造", "lock_version": "1"})
            assert response.status_code == 400, (path, data, response.status_code)
    assert database_snapshot() == before
