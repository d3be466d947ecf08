"""A test browser for the web pages (CSRF on), and what the web tests read back from the database."""
from __future__ import annotations

import io
import re

from flask.testing import FlaskClient
from sqlalchemy import func, select

from kjdms.extensions import db
from kjdms.models import (AttachmentVersion, AuditEvent, Dossier, LoginFailure, Notification, Person, User,
                          WorkflowHistory)
from kjdms.samples import sample_png
from kjdms.services.attachments import add_attachment_version
from kjdms.services.dossiers import update_basic_information
from kjdms.services.lifecycle import fire_transition
from kjdms.services.sessions import start_session
from kjdms.services.working_copy import open_working_copy, start_working_copy
from tests.helpers import USCC_SHUANGTA, applicant, upload_required

CSRF_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
COUNTED = (Person, User, Dossier, WorkflowHistory, AuditEvent, AttachmentVersion, LoginFailure, Notification)


class WebClient(FlaskClient):
    """One browser: each request runs in its own application context, as under a real server."""

    def open(self, *args, **kwargs):
        # The app fixture keeps an application context pushed for the test's own queries. A request
        # would otherwise share its g and its database session, and flask-login's user cached in g
        # would leak from one browser to the next (an anonymous client would see /me/).
        with self.application.app_context():
            return super().open(*args, **kwargs)

    def csrf_token(self, page: str = "/login") -> str:
        """GET page and return the CSRF token its forms carry."""
        response = self.get(page)
        match = CSRF_TOKEN.search(response.get_data(as_text=True))
        assert match, f"no CSRF token on {page} (status {response.status_code})"
        return match.group(1)

    def submit(self, path: str, data=None, *, page: str | None = None, **kwargs):
        """POST data to path as the form on page (path itself by default) does, with its CSRF token."""
        data = dict(data or {})
        data["csrf_token"] = self.csrf_token(page or path)
        return self.post(path, data=data, **kwargs)

    def enter_as(self, user: User) -> WebClient:
        """Mark the session signed in as user, as the login form leaves it (test_web_auth tests the form itself).

        Quicker than the form: checking a scrypt password costs a tenth of a second, and the sweeps sign in dozens.
        """
        with self.session_transaction() as session:
            session["_user_id"] = str(user.id)
            session["_fresh"] = True
            start_session(session, user)
        return self

    def upload(self, slot: str, data: bytes | None, filename: str, comment: str = ""):
        """Upload data under filename into slot through the documents page."""
        upload = {"comment": comment, "file": (io.BytesIO(data), filename) if data is not None else ""}
        return self.submit(f"/me/documents/{slot}", upload, page="/me/documents", content_type="multipart/form-data")

    def fire(self, name: str, comment: str = ""):
        """Post the applicant's workflow button name (submit, retract, revise) from /me/, offered there or not."""
        page = self.get("/me/")
        offered = re.search(r'name="lock_version"[^>]*value="(\d+)"', text(page))
        # Not offered: post as a forger who knows the dossier's version would (without one it is a 400).
        version = offered.group(1) if offered else str(self.working_dossier().lock_version)
        return self.post(f"/me/transition/{name}", data={"csrf_token": csrf_of(page), "comment": comment,
                                                         "lock_version": version})

    def working_dossier(self) -> Dossier:
        """Return the dossier the signed-in person works on: the open working copy, else the dossier itself."""
        with self.session_transaction() as session:
            user = db.session.get(User, int(session["_user_id"]))
        dossier = user.person.dossier
        return open_working_copy(db.session, dossier) or dossier


def text(response) -> str:
    """Return the response body as text."""
    return response.get_data(as_text=True)


def flashes(response) -> list[str]:
    """Return the flashed messages shown on the page."""
    return [re.sub(r"<[^>]+>", "", message).strip()
            for message in re.findall(r'<div class="alert alert-\w+" role="alert">(.*?)</div>', text(response), re.S)]


def csrf_of(response) -> str:
    """Return the CSRF token in a page already fetched."""
    return CSRF_TOKEN.search(text(response)).group(1)


def lock_version_of(response) -> str:
    """Return the lock_version a page's workflow form was rendered with."""
    return re.search(r'name="lock_version"[^>]*value="(\d+)"', text(response)).group(1)


def fresh(model, object_id):
    """Return the row as the database now holds it (requests commit in sessions of their own)."""
    db.session.expire_all()
    return db.session.get(model, object_id)


def row_counts() -> dict[str, int]:
    """Return how many rows each table the web pages write to holds."""
    db.session.expire_all()
    return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model)) for model in COUNTED}


def database_snapshot() -> tuple:
    """Return the row counts, every dossier's state, version and fields, notices read and e-mail addresses set."""
    counts = row_counts()
    dossiers = db.session.execute(select(
        Dossier.id, Dossier.state, Dossier.lock_version, Dossier.employer_name, Dossier.phone,
        Dossier.checked_in_at).order_by(Dossier.id)).all()
    read = db.session.scalar(select(func.count()).select_from(Notification).where(Notification.read_at.is_not(None)))
    emails = db.session.scalars(select(User.email).where(User.email.is_not(None)).order_by(User.id)).all()
    return counts, [tuple(row) for row in dossiers] + [("notices read", read), ("e-mail addresses", tuple(emails))]


def basic_information(**overrides) -> dict:
    """Return the edit form as a person fills it in completely, employed in 双塔区."""
    data = {
        "name": "张伟", "phone": "13904211234", "education": "bachelor", "scope_category": "in_accounting_work",
        "job_types": ["cashier", "checking"], "employer_name": "朝阳市双塔区示范会计服务有限公司",
        "employer_uscc": USCC_SHUANGTA, "employer_org_code": USCC_SHUANGTA[8:17], "employer_region": "211302",
        "household_region": "211302", "school_region": "", "qualification_level": "none",
        "qualification_certificate_number": "", "legacy_certificate_number": "",
    }
    data.update(overrides)
    return data


def decide(browser, dossier_id, name, comment="", fields=(), page=None):
    """Press approve or reject on the review page as loaded (now, or earlier when page is given)."""
    page = page or browser.get(f"/review/{dossier_id}")
    # A page without the buttons carries no version: send the current one, as a hand-made request would.
    version = lock_version_of(page) if 'name="lock_version"' in text(page) else fresh(Dossier, dossier_id).lock_version
    return browser.post(f"/review/{dossier_id}/{name}", data={
        "csrf_token": csrf_of(page), "lock_version": version, "comment": comment, "fields": list(fields)})


# Every page, for the sweeps: the paths are filled in from build_site's ids.
PUBLIC_PAGES = ("/", "/favicon.ico", "/contacts", "/account/password", "/login", "/login?next=/me/", "/register", "/login/first-password",
                "/bootstrap/static/css/bootstrap.min.css", "/no-such-page")
APPLICANT_PAGES = ("/me/", "/me/edit", "/me/form.pdf", "/me/documents", "/me/credit", "/me/credit.pdf")
REVIEW_PAGES = ("/review/", "/review/?waited=7", "/review/?page=2", "/review/?region={region}", "/review/{dossier}",
                "/review/decided", "/review/decided?action=reject&page=2", "/review/decided?action=forged")
FILE_PAGES = ("/files/{version}", "/files/{version}/preview.png")
# The site has no credit record: record 1 is a missing one (test_web_credit covers the pages with records).
CREDIT_PAGES = ("/credit/", "/credit/dossiers", "/credit/dossiers?page=2", "/credit/dossier/{dossier}", "/credit/dossier/{dossier}/records/1/correct")
SEARCH_PAGES = ("/search/", "/search/?q=欧阳明月", "/search/?q=朝阳市&state=submitted&sort=date", "/search/?page=2",
                "/search/?q=2113*", "/search/?region={region}", "/search/?idn=forged")
STATS_PAGES = ("/stats/", "/stats/?region={region}", "/stats/?as_of=2020-06-30&row=education&column=sex",
               "/stats/?as_of=bad&row=nonsense", "/stats/plotly.min.js")
# Run 1 and report MOF-20190630 do not exist on the swept site: tests/stats/test_web_reports.py has them.
REPORT_PAGES = ("/reports/", "/reports/runs/1")
ADMIN_PAGES = ("/admin/", "/admin/settings/", "/admin/static/admin/js/helpers.js") + tuple(
    f"/admin/{view}/{page}" for view in ("accounts", "regions", "audit", "api-clients")
    for page in ("", "new/", "edit/?id=1", "details/?id=1", "export/csv/", "ajax/lookup/?name=region&query=x"))
ARCHIVE_PAGES = ("/archive/", "/archive/?state=archived&page=2", "/archive/{dossier}",
                 "/archive/{dossier}/as-of?date=2020-06-30")
POST_ONLY = ("/logout", "/login/staff", "/me/change", "/me/change/cancel", "/me/transition/submit",
             "/me/documents/other", "/review/{dossier}/approve", "/review/{dossier}/reject", "/review/{dossier}/reveal",
             "/credit/dossier/{dossier}/record", "/credit/dossier/{dossier}/export",
             "/archive/{dossier}/archive", "/archive/{dossier}/package", "/stats/export.xlsx",
             "/reports/generate", "/reports/MOF-20190630/download", "/admin/audit/export.csv", "/notices/1/read", "/notices/read-all", "/notices/email",
             "/api/v1/staff-tokens", "/api/v1/status-lookups", "/api/v1/status-lookups/batch",
             "/admin/api-clients/rotate/", "/admin/api-clients/revoke/") + tuple(
    f"/admin/accounts/{action}/" for action in ("action", "ajax/update", "delete", "disable", "enable", "grant",
                                                "reset-password", "revoke")) + tuple(
    f"/admin/{view}/{action}/" for view in ("regions", "audit", "api-clients")
    for action in ("action", "ajax/update", "delete"))
NOTICE_PAGES = ("/notices/", "/notices/?page=2")
API_PAGES = ("/api/v1/openapi.json", "/api/v1/docs/", "/api/v1/docs/assets/swagger-ui.css", "/api/v1/me",
             "/api/v1/review/worklist", "/api/v1/dossiers/{dossier}", "/api/v1/dossiers/{dossier}/documents",
             "/api/v1/dossiers/{dossier}/id-number-reveals", "/api/v1/dossiers/{dossier}/decisions")
STAGES = ("draft", "submitted", "rejected", "change_submitted")


def build_site(people, workflow, blobs, *, stage="change_submitted", id_number=None) -> dict:
    """Fill the site: 欧阳明月 in 双塔区 at stage, the people fixture's 张伟 (draft, two versions), 李四 in 龙城区 (rejected).

    Returns the persons' users by name, and every dossier, version and region id a page can be asked for.
    """
    fire = lambda dossier, name, actor, comment=None: fire_transition(  # noqa: E731
        db.session, workflow, dossier, name, actor, comment)
    main, main_owner = applicant(name="欧阳明月", id_number=id_number)
    upload_required(workflow, blobs, main, main_owner)
    if stage != "draft":
        fire(main, "submit", main_owner)
    if stage == "rejected":
        fire(main, "reject", people["reviewer"], "学历证书不清晰")
    if stage == "change_submitted":
        fire(main, "approve", people["reviewer"], "信息属实")
        copy = start_working_copy(db.session, workflow, main, main_owner)
        update_basic_information(db.session, workflow, copy, {"employer_name": "朝阳市双塔区新华会计师事务所有限公司"},
                                 main_owner)
        add_attachment_version(db.session, workflow, blobs, copy, "basic_info_form", sample_png(seed=42),
                               main_owner, filename="新表.png")
        fire(copy, "submit", main_owner)
    upload_required(workflow, blobs, people["dossier"], people["owner"])
    add_attachment_version(db.session, workflow, blobs, people["dossier"], "other", sample_png(seed=7),
                           people["owner"], filename="其他.png")
    add_attachment_version(db.session, workflow, blobs, people["dossier"], "other", sample_png(seed=8),
                           people["owner"], filename="其他2.png")
    elsewhere, elsewhere_owner = applicant(name="李四", region_code="211303", employer_name="朝阳市龙城区会计服务中心")
    upload_required(workflow, blobs, elsewhere, elsewhere_owner)
    fire(elsewhere, "submit", elsewhere_owner)
    fire(elsewhere, "reject", people["other_reviewer"], "请补充资格证书")
    db.session.expire_all()
    all_dossiers = db.session.scalars(select(Dossier).order_by(Dossier.id)).all()
    named = {"main": main.id, "draft": people["dossier"].id, "elsewhere": elsewhere.id}
    named.update({"change": dossier.id for dossier in all_dossiers if dossier.is_working_copy})
    return {
        "persons": {"欧阳明月": main_owner, "张伟": people["owner"], "李四": elsewhere_owner},
        "named": named,
        "dossiers": [dossier.id for dossier in all_dossiers],
        "versions": [version.id for dossier in all_dossiers for attachment in dossier.attachments
                     for version in attachment.versions],
        "regions": sorted({dossier.region_id for dossier in all_dossiers}),
    }


def every_get_path(site: dict) -> list[str]:
    """Return every page path a browser can ask for on site, POST-only ones included (they must answer 405)."""
    paths = list(PUBLIC_PAGES) + list(APPLICANT_PAGES)
    for pattern in (REVIEW_PAGES + SEARCH_PAGES + STATS_PAGES + REPORT_PAGES + ADMIN_PAGES + CREDIT_PAGES + ARCHIVE_PAGES
                    + FILE_PAGES + NOTICE_PAGES + API_PAGES + POST_ONLY):
        if "{region}" in pattern:
            paths += [pattern.format(region=region) for region in site["regions"]]
        elif "{dossier}" in pattern:
            paths += [pattern.format(dossier=dossier) for dossier in site["dossiers"]]
        elif "{version}" in pattern:
            paths += [pattern.format(version=version) for version in site["versions"]]
        else:
            paths.append(pattern)
    # A full ID number typed into the search box is sealed into the address at once; both ends swept.
    from kjdms.views.search import seal_id_numbers
    for user in site["persons"].values():
        paths += [f"/search/?q={user.person.id_number}", f"/search/?idn={seal_id_numbers([user.person.id_number])}"]
    return paths
