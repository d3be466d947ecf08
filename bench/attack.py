"""Attack a fresh demo instance over real HTTP and print the figures that must be zero.

Run by hand, not by the test suite:

    .venv/bin/python bench/attack.py [--database postgresql://postgres@127.0.0.1:5432/test] [--searches 4000]

A temporary folder gets a new instance (`kjdms init`, `kjdms demo`), served by `kjdms serve` (waitress) on a
free port; SQLite by default, a PostgreSQL URL gets a fresh schema, dropped afterwards. Every request is real
HTTP from this process; the database is only read, except in the last phase, which tampers with copies of it.
What each figure means is in bench/README.md ("attack.py").
"""
from __future__ import annotations

import argparse
import collections
import html
import html.parser
import http.client
import http.cookies
import itertools
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from worklist import database  # noqa: E402  (a fresh SQLite folder or PostgreSQL schema)

from kjdms import create_app  # noqa: E402
from kjdms.config import Config  # noqa: E402
from kjdms.extensions import db  # noqa: E402
from kjdms.models import (AttachmentVersion, AuditEvent, Dossier, Person, Region, RoleAssignment,  # noqa: E402
                          User)
from kjdms.samples import sample_pdf, sample_png  # noqa: E402

KJDMS = str(Path(sys.executable).with_name("kjdms"))
MISSING = 999_999  # an id no object has: what any refusal must look like
XSS = '"><script>alert({n})</script><img src=x onerror=alert({n})>'  # numbered: each post its own
XSS_RAW = ("<script>alert(", "<img src=x onerror")
CONTROLS = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\u202e", "\u2066"]
TEXT_TYPES = ("text/html", "application/json", "text/csv", "text/plain", "text/javascript")
REFUSED = (403, 404)


# ---------------------------------------------------------------- one browser over real HTTP

class Response:
    """What came back: status, headers (lower-case names), body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        """Return the body decoded when it is text, else ''."""
        kind = self.headers.get("content-type", "")
        return self.body.decode("utf-8", "replace") if kind.startswith(TEXT_TYPES) else ""

    @property
    def location(self) -> str:
        """Return the redirect's path without its query ('' when none)."""
        return urllib.parse.urlsplit(self.headers.get("location", "")).path


class Browser:
    """A cookie jar and a kept-alive connection to the server; counts each request and each 5xx."""

    def __init__(self, port: int, figures: collections.Counter, phase: str):
        self.port, self.figures, self.phase = port, figures, phase
        self.cookies: dict[str, str] = {}
        self.connection: http.client.HTTPConnection | None = None

    def copy(self) -> Browser:
        """Return another browser holding a copy of this one's cookies (a stolen cookie)."""
        other = Browser(self.port, self.figures, self.phase)
        other.cookies = dict(self.cookies)
        return other

    def request(self, method: str, path: str, data=None, files=None) -> Response:
        """Send one request and return its response; a closed connection is counted and opened again, once."""
        body, headers = b"", {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if files:
            body, kind = multipart(data or {}, files)
            headers["Content-Type"] = kind
        elif data is not None:
            body = urllib.parse.urlencode(data, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(2):
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                self.connection.request(method, path, body=body or None, headers=headers)
                raw = self.connection.getresponse()
                response = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, raw.read())
                break
            except (http.client.HTTPException, OSError):
                # Waitress closes a kept-alive connection idle for two minutes (between phases): one new one.
                self.connection = None
                self.figures[f"{self.phase}: reconnects"] += 1
                if attempt:
                    raise
        if response.headers.get("connection", "").lower() == "close":
            self.connection = None
        self.figures["requests sent"] += 1
        if response.status >= 500:
            self.figures["5xx"] += 1
            self.figures[f"{self.phase}: 5xx"] += 1
            print(f"  5xx {response.status} {method} {path}", file=sys.stderr)
        for header in [v for k, v in self._raw_cookies(raw)]:
            cookie = http.cookies.SimpleCookie(header)
            for name, morsel in cookie.items():
                if morsel.value and morsel["expires"][:16] != "Thu, 01 Jan 1970":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return response

    @staticmethod
    def _raw_cookies(raw) -> list[tuple[str, str]]:
        return [(k, v) for k, v in raw.getheaders() if k.lower() == "set-cookie"]

    def get(self, path: str) -> Response:
        """GET path."""
        return self.request("GET", path)

    def token(self, page: str = "/login") -> str:
        """Return the CSRF token of this session, from page's forms."""
        found = CSRF.search(self.get(page).text) or CSRF.search(self.get("/").text)
        return html.unescape(found.group(1)) if found else ""

    def post(self, path: str, data: dict, *, page: str | None = None, files=None) -> Response:
        """POST data with this session's CSRF token, as the form on page would."""
        return self.request("POST", path, {**data, "csrf_token": self.token(page or "/login")}, files)


CSRF = re.compile(r'name="(?:staff-)?csrf_token"[^>]*value="([^"]+)"')


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    """Return a multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f'Content-Type: application/octet-stream\r\n\r\n'.encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class FormReader(html.parser.HTMLParser):
    """Collect a page's POST forms: (action, {field: value}, [text field names]) as a browser would send them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[str, dict, list[str]]] = []
        self._form = self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (attrs.get("method") or "get").lower() == "post":
            self._form = (attrs.get("action") or "", {}, [], [])  # the last: its buttons' own actions
            self.forms.append(self._form)
        elif tag == "button" and self._form is not None and attrs.get("formaction"):
            self._form[3].append(attrs["formaction"])
        elif self._form is None or not attrs.get("name"):
            return
        elif tag == "input":
            kind, name = (attrs.get("type") or "text").lower(), attrs["name"]
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self._form[1].setdefault(name, []).append(attrs.get("value") or "on")
            elif kind == "submit" and attrs.get("formaction"):
                self._form[3].append(attrs["formaction"])
            elif kind not in ("submit", "file", "button", "image", "reset"):
                self._form[1][name] = attrs.get("value") or ""
                if kind in ("text", "search", "email", "tel", "date", "number", "password", "url"):
                    self._form[2].append(name)
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self._form[1][self._textarea] = ""
            self._form[2].append(self._textarea)
        elif tag == "select":
            self._select = attrs["name"]
        elif tag == "option" and self._select and ("selected" in attrs or self._select not in self._form[1]):
            self._form[1][self._select] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea and self._form is not None:
            self._form[1][self._textarea] += data


def post_forms(page: Response, path: str) -> list[tuple[str, dict, list[str]]]:
    """Return the POST forms of a page, actions resolved against path."""
    reader = FormReader()
    reader.feed(page.text)
    return [(urllib.parse.urljoin(path, html.unescape(action) or path), fields, texts)
            for form_action, fields, texts, button_actions in reader.forms
            for action in (button_actions or [form_action])]


# ---------------------------------------------------------------- the instance

class Instance:
    """A freshly initialised demo instance served by `kjdms serve` on a free port."""

    def __init__(self, folder: Path, url: str):
        self.folder, self.url = folder, url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KJDMS_")}
        self.env.update(KJDMS_STORAGE_DIR=str(folder), KJDMS_DATABASE_URL=url, KJDMS_OCR="0")
        self.server: subprocess.Popen | None = None
        self.port = free_port()
        self.app = None

    def kjdms(self, *args: str, url: str | None = None) -> subprocess.CompletedProcess:
        """Run a kjdms command on this instance (or on the database at url)."""
        env = dict(self.env, KJDMS_DATABASE_URL=url or self.url)
        return subprocess.run([KJDMS, *args], env=env, capture_output=True, text=True, timeout=600)

    def start(self) -> list[list[str]]:
        """Initialise, load the demo, serve; return the demo sign-ins, one list of words each."""
        for step in (("init",), ("demo",)):
            done = self.kjdms(*step)
            if done.returncode:
                raise SystemExit(f"kjdms {' '.join(step)} failed:\n{done.stdout}\n{done.stderr}")
        sign_ins = [line.split() for line in done.stdout.splitlines() if line.startswith("  ")]
        self.server = subprocess.Popen([KJDMS, "serve", "--port", str(self.port)], env=self.env,
                                       stdout=subprocess.DEVNULL, stderr=open(self.folder / "serve.log", "w"))
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        self.app = create_app(Config(environ={}, STORAGE_DIR=self.folder, DATABASE_URL=self.url))
        return sign_ins

    def stop(self) -> None:
        """Stop the server this instance started."""
        if self.server is not None:
            self.server.terminate()
            self.server.wait(30)
            self.server = None


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------- who may see what

class Identity:
    """A visitor: the outsider, an applicant or a staff user, with the dossiers their scope holds."""

    def __init__(self, label: str, kind: str, sign_in: dict | None):
        self.label, self.kind, self.sign_in = label, kind, sign_in
        self.browser: Browser | None = None

    def in_scope(self, dossier: Dossier, user: User | None) -> bool:
        """Tell whether dossier lies in this identity's scope (its own for an applicant, its regions for staff)."""
        if self.kind == "outsider" or user is None:
            return False
        if self.kind == "applicant":
            return dossier.person_id == user.person_id
        covered = set()
        for assignment in user.role_assignments:
            covered |= subtree(assignment.region)
        return dossier.region_id in covered if dossier.region_id else province_id() in covered

    @property
    def home(self) -> str:
        """Return a page only a live session of this identity can open."""
        return "/me/" if self.kind == "applicant" else "/search/"


def subtree(region: Region) -> set[int]:
    """Return the ids of region and every region below it."""
    found, todo = set(), [region]
    while todo:
        current = todo.pop()
        found.add(current.id)
        todo.extend(current.children)
    return found


def province_id() -> int:
    return db.session.scalar(sa.select(Region.id).where(Region.parent_id.is_(None)).order_by(Region.id))


def identities(sign_ins: list[list[str]]) -> list[Identity]:
    """Return the outsider, every demo applicant and every demo staff user."""
    found = [Identity("outsider", "outsider", None)]
    for words in sign_ins:
        if words[0] == "applicant":
            password = words[4] if not words[4].startswith("（") else None
            found.append(Identity(words[1], "applicant", {"name": words[1], "id_number": words[3],
                                                         "password": password}))
        else:
            found.append(Identity(words[1], "staff", {"username": words[1], "password": words[2]}))
    return found


def sign_in(identity: Identity, port: int, figures, phase: str) -> Browser:
    """Sign identity in through the real forms (setting a first password where the site asks) and return it."""
    browser = Browser(port, figures, phase)
    if identity.kind == "outsider":
        browser.get("/")
        return browser
    details = identity.sign_in
    if identity.kind == "staff":
        answer = browser.post("/login/staff", {"staff-username": details["username"],
                                               "staff-password": details["password"]})
    else:
        answer = browser.post("/login", {"name": details["name"], "id_number": details["id_number"],
                                         "password": details["password"] or ""})
    if answer.location in ("/login/first-password", "/account/password"):
        details["password"] = "Attack-pass-2026"
        answer = browser.post(answer.location, {"password": details["password"],
                                                "password_confirm": details["password"]}, page=answer.location)
    if answer.status != 302:
        raise SystemExit(f"{identity.label} could not sign in: {answer.status}")
    return browser


def user_of(identity: Identity) -> User | None:
    """Return identity's account row, read afresh."""
    if identity.kind == "staff":
        return db.session.scalar(sa.select(User).where(User.username == identity.sign_in["username"]))
    if identity.kind == "applicant":
        return db.session.scalar(sa.select(User).join(Person, User.person_id == Person.id)
                                 .where(Person.id_number == identity.sign_in["id_number"]))
    return None


# ---------------------------------------------------------------- phase: the access matrix

def markers(dossier: Dossier) -> list[str]:
    """Return what shows a dossier or its person on a page: number, links, name, full and masked ID number."""
    found = [dossier.number, f"/review/{dossier.id}\"", f"/archive/{dossier.id}\"", f"/credit/dossier/{dossier.id}\""]
    person = dossier.person
    if person.name:
        found += [person.name, html.escape(person.name)]
    if person.id_number:
        found += [person.id_number, f"{person.id_number[:4]}**********{person.id_number[-4:]}"]
    return found


def matrix_urls(app, dossiers, versions, users) -> list[tuple[str, str, str, int | None]]:
    """Return (method, path, object kind, object id) for every route of the URL map, each object filled in."""
    urls = []
    fill = {"slot": ["basic_info_form", "other"], "name": ["submit"],
            "action": ["correct", "revoke"], "export_type": ["csv"], "kind": ["xlsx", "csv"],
            "filename": ["style.css"], "record_id": [1]}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "bootstrap.static", "admin.static"):
            urls.append(("GET", "/static/style.css" if rule.endpoint == "static" else rule.rule.replace(
                "<path:filename>", "css/bootstrap.min.css" if rule.endpoint == "bootstrap.static"
                else "admin/js/helpers.js"), "", None))
            continue
        methods = sorted(rule.methods & {"GET", "POST"})
        arguments = sorted(rule.arguments)
        objects: list[tuple[str, int | None]] = [("", None)]
        # The missing object first: what a refusal looks like, to compare the others with.
        if "dossier_id" in arguments:
            objects = [("dossier", MISSING)] + [("dossier", d) for d in dossiers]
        elif "version_id" in arguments:
            objects = [("version", MISSING)] + [("version", v) for v in versions]
        elif rule.endpoint.startswith("accounts.") and rule.endpoint.split(".")[1] in (
                "details_view", "edit_view", "disable_view", "enable_view", "reset_view", "grant_view",
                "revoke_view", "delete_view"):
            objects = [("account", MISSING)] + [("account", u) for u in users]
        # Every value an any() converter takes (approve and reject ...), the first of fill's for the others.
        choices = [[(name, value) for value in (getattr(rule._converters[name], "items", None) or fill[name])]
                   for name in arguments if name not in ("dossier_id", "version_id")]
        for method, (kind, object_id), chosen in itertools.product(methods, objects, itertools.product(*choices)):
            values = dict(chosen)
            if kind in ("dossier", "version"):
                values[f"{kind}_id"] = object_id
            with app.test_request_context():
                path = app.url_for(rule.endpoint, **values)
            urls.append((method, path + (f"?id={object_id}" if kind == "account" else ""), kind, object_id))
    return urls


def run_matrix(instance: Instance, people: list[Identity], figures, phase: str) -> None:
    """Every identity × every route: no other region's dossier in a body, no answer but 403/404 for one."""
    app = instance.app
    with app.app_context():
        db.session.expire_all()
        all_dossiers = db.session.scalars(sa.select(Dossier)).all()
        version_dossier = dict(db.session.execute(
            sa.select(AttachmentVersion.id, Dossier.id).select_from(AttachmentVersion)
            .join(AttachmentVersion.attachment).join(Dossier)).all())
        staff_users = db.session.scalars(sa.select(User).where(User.username.is_not(None))).all()
        urls = matrix_urls(app, [d.id for d in all_dossiers], sorted(version_dossier), [u.id for u in staff_users])
        id_numbers = {d.person.id_number for d in all_dossiers if d.person.id_number}
        for identity in people:
            user = user_of(identity)
            outside = [d for d in all_dossiers if not identity.in_scope(d, user)]
            outside_ids = {d.id for d in outside}
            watch = sorted({m for d in outside for m in markers(d)}, key=len, reverse=True)
            own_ids = set() if identity.kind != "applicant" else {d.person.id_number for d in all_dossiers
                                                                   if d.id not in outside_ids}
            admin_of = admin_scope(user) if identity.kind == "staff" else set()
            baseline: dict[tuple[str, str], tuple[int, str]] = {}
            browser = identity.browser
            browser.phase = phase
            token = browser.token("/login")
            for method, path, kind, object_id in urls:
                target = version_dossier.get(object_id) if kind == "version" else object_id
                foreign = (kind in ("dossier", "version") and target in outside_ids) or (
                    kind == "account" and object_id != MISSING and
                    any(u.id == object_id and u.region_id not in admin_of for u in staff_users))
                if method == "POST" and not (foreign or object_id == MISSING):
                    continue  # writes on the identity's own objects belong to the later phases
                if method == "POST":
                    response = browser.request("POST", path, form_for(path, token))
                else:
                    response = browser.get(path)
                figures[f"{phase}: requests"] += 1
                key = (method, re.sub(r"\d+", "N", path))
                if object_id == MISSING:
                    baseline[key] = (response.status, response.location)
                    continue
                body = response.text
                leaked = [m for m in watch if m in body]
                shown = [n for n in id_numbers - own_ids if n in body and not (
                    method == "POST" and path.endswith("/reveal"))]
                if leaked:
                    figures["leaks"] += 1
                    figures[f"{phase}: leaks in a body"] += 1
                    print(f"  leak {identity.label} {method} {path}: {leaked[:3]}", file=sys.stderr)
                if shown and identity.kind == "staff":
                    figures["disclosures without an audit row"] += 1
                    print(f"  full ID number on a page: {identity.label} {method} {path}", file=sys.stderr)
                if foreign:
                    figures[f"{phase}: other regions' objects asked for"] += 1
                    answer = (response.status, response.location)
                    expected = baseline.get(key)
                    if response.status not in REFUSED and (expected is None or answer != expected):
                        figures["leaks"] += 1
                        figures[f"{phase}: leaks by status"] += 1
                        print(f"  status leak {identity.label} {method} {path}: {answer} vs {expected}",
                              file=sys.stderr)
            count_leaks(identity, user, all_dossiers, figures, phase)


def admin_scope(user: User | None) -> set[int]:
    """Return the region ids an administrator's roles cover (empty for other staff)."""
    covered: set[int] = set()
    for assignment in (user.role_assignments if user else []):
        if assignment.role == "administrator":
            covered |= subtree(assignment.region)
    return covered


def form_for(path: str, token: str) -> dict:
    """Return a plausible filled form for any POST route: what each of them reads, and the token."""
    return {"csrf_token": token, "comment": "攻击测试", "lock_version": "1", "reason": "攻击测试",
            "kind": "other", "finding": "攻击测试", "legal_basis": "攻击测试", "found_on": "2020-01-01",
            "role": "reviewer", "region": "1", "action": "delete", "rowid": "1", "url": "/admin/"}


def count_leaks(identity: Identity, user, all_dossiers, figures, phase: str) -> None:
    """Compare the counts a staff user's search shows with the dossiers their scope holds: never more."""
    if identity.kind != "staff":
        return
    in_scope = {d.id for d in all_dossiers if identity.in_scope(d, user) and d.state != "purged"}
    page = identity.browser.get("/search/")
    total = re.search(r'档案检索 <span class="badge[^"]*">(\d+)</span>', page.text)
    facets = [int(n) for n in re.findall(r'(?:[?&]|&amp;)region=(\d+)', page.text)]
    figures[f"{phase}: counts checked"] += 1
    covered = set().union(*(subtree(a.region) for a in user.role_assignments)) if user.role_assignments else set()
    if (total and int(total.group(1)) > len(in_scope)) or any(region not in covered for region in facets):
        figures["leaks"] += 1
        figures[f"{phase}: count leaks"] += 1
        print(f"  count leak {identity.label}: {total and total.group(1)} > {len(in_scope)}", file=sys.stderr)


# ---------------------------------------------------------------- phase: CSRF

def run_csrf(instance: Instance, people: list[Identity], figures) -> None:
    """Every POST route without a token, as every identity: refused with 400, nothing written."""
    posts = [(m, p) for m, p, kind, object_id in matrix_urls(instance.app, [1], [1], [1]) if m == "POST"]
    before = snapshot(instance)
    for identity in people:
        identity.browser.phase = "csrf"
        for _, path in posts:
            response = identity.browser.request("POST", path, {"comment": "x", "staff-username": "admin"})
            figures["csrf: POSTs without a token"] += 1
            if response.status == 400:
                figures["csrf: refused with 400"] += 1
            else:
                figures["csrf: not refused"] += 1
                print(f"  CSRF not refused: {identity.label} {path} {response.status}", file=sys.stderr)
    figures["csrf: rows written"] += changed(before, snapshot(instance))


# Written or drained by the server on its own: failed sign-ins are counted, the worker empties the outbox.
VOLATILE = ("login_failures", "index_outbox")


def snapshot(instance: Instance) -> dict[str, int]:
    """Return the row count of every table but the sign-in counters, and the number of stored blobs."""
    with instance.app.app_context():
        counts = {table.name: db.session.scalar(sa.select(sa.func.count()).select_from(table))
                  for table in db.metadata.sorted_tables if table.name not in VOLATILE}
        counts["state"] = hash(tuple(db.session.execute(sa.select(
            Dossier.id, Dossier.state, Dossier.lock_version, Dossier.employer_name)).all()))
    blobs = instance.folder / "blobs"
    counts["blobs"] = sum(1 for path in blobs.rglob("*") if path.is_file()) if blobs.exists() else 0
    return counts


def changed(before: dict, after: dict) -> int:
    """Return how many of the snapshot's figures differ (and name them)."""
    different = [name for name in before if before[name] != after.get(name)]
    if different:
        print(f"  changed: {different}", file=sys.stderr)
    return len(different)


# ---------------------------------------------------------------- phase: control characters in every field

def form_pages(instance: Instance, identity: Identity) -> list[str]:
    """Return the pages whose forms identity can fill in."""
    if identity.kind == "outsider":
        return ["/login", "/register"]
    if identity.kind == "applicant":
        return ["/me/", "/me/edit", "/me/documents"]
    with instance.app.app_context():
        user = user_of(identity)
        ids = [d.id for d in db.session.scalars(sa.select(Dossier)) if identity.in_scope(d, user)]
        # The back office's edit pages of a region and an account in scope: forms filled in as they stand.
        covered = admin_scope(user)
        regions = sorted(covered)[:1]
        accounts = [u.id for u in db.session.scalars(sa.select(User).where(User.username.is_not(None)))
                    if u.region_id in covered and u.id != user.id][:1]
    pages = [f"/{area}/{i}" for i in ids[:3] for area in ("review", "credit/dossier", "archive")]
    return pages + ["/admin/accounts/new/", "/admin/settings/", "/admin/regions/new/"] + [
        f"/admin/regions/edit/?id={i}" for i in regions] + [f"/admin/accounts/edit/?id={i}" for i in accounts]


def each_field(instance: Instance, people: list[Identity], value_of, figures, phase: str):
    """Post every text field of every form of every identity's pages with value_of(n) in it; yield responses."""
    tried = 0
    for identity in people:
        browser = identity.browser
        browser.phase = phase
        for page_path in form_pages(instance, identity):
            page = browser.get(page_path)
            for action, fields, texts in post_forms(page, page_path):
                if action.endswith(("/logout", "/reveal", "/package", "/export", "/export.xlsx", "/export.csv")):
                    continue
                for name in texts:
                    fresh = next((f for a, f, _ in post_forms(browser.get(page_path), page_path) if a == action),
                                 fields)
                    data = dict(fresh, **{name: value_of(tried)})
                    tried += 1
                    figures[f"{phase}: fields posted"] += 1
                    response = browser.request("POST", action, data)
                    if response.status == 302:  # the answer is flashed on the page it leads to
                        response = browser.get(response.headers["location"])
                    yield identity, action, name, response


def run_controls(instance: Instance, people: list[Identity], figures) -> None:
    """NUL, C0/C1 controls and direction overrides in every field: refused naming it, 0 rows or blobs left."""
    before = snapshot(instance)
    for identity, action, name, response in each_field(
            instance, people, lambda n: f"甲{CONTROLS[n % len(CONTROLS)]}乙", figures, "control characters"):
        if "不能包含控制字符" in response.text:
            figures["control characters: refused naming the field"] += 1
        elif response.status in (403, 404, 409):
            figures["control characters: refused before reading (not allowed now)"] += 1
        else:
            print(f"  not named: {identity.label} {action} {name} {response.status}", file=sys.stderr)
    figures["control characters: rows or blobs left"] += changed(before, snapshot(instance))


# ---------------------------------------------------------------- phase: hostile uploads

HOSTILE = {
    "HTML named .pdf": ("a.pdf", b"<html><script>alert(1)</script></html>"),
    "script named .png": ("a.png", b"#!/bin/sh\nrm -rf /\n"),
    "EXE named .pdf": ("setup.pdf", b"MZ\x90\x00" + b"\x00" * 200),
    "SVG with script": ("a.png", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    "PDF named .png": ("a.png", sample_pdf("mismatch")),
    "PNG named .exe": ("a.exe", sample_png(seed=3)),
    "truncated PNG": ("a.png", sample_png(seed=4)[:60]),
    "decompression bomb": ("bomb.png", None),
    "over the size cap": ("big.pdf", b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024 + 10)),
}


def bomb_png() -> bytes:
    """Return a small PNG that decodes to 40,000 × 40,000 pixels."""
    import io
    import zlib
    import struct

    width = height = 40_000
    raw = zlib.compress(b"\x00" * (width // 8 + 1) * 1000, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    stream = io.BytesIO(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return stream.getvalue()


def run_uploads(instance: Instance, people: list[Identity], figures) -> None:
    """Hostile files into an applicant's draft: every one refused, no version or blob left."""
    applicant = next(i for i in people if i.kind == "applicant")
    browser = applicant.browser
    browser.phase = "uploads"
    before = snapshot(instance)
    for label, (filename, content) in HOSTILE.items():
        content = bomb_png() if content is None else content
        token = browser.token("/me/documents")
        response = browser.request("POST", "/me/documents/other", {"csrf_token": token, "comment": label},
                                   {"file": (filename, content)})
        figures["uploads: hostile files sent"] += 1
        page = browser.get("/me/documents").text if response.status == 302 else response.text
        if response.status in (400, 413, 415, 422) or "alert-danger" in page or "invalid-feedback" in page:
            figures["uploads: refused"] += 1
    figures["uploads: hostile files kept"] += changed(before, snapshot(instance))


# ---------------------------------------------------------------- phase: stored XSS

def run_xss(instance: Instance, people: list[Identity], figures) -> None:
    """The payload in every text field, then every page of every identity: escaped everywhere, never raw."""
    for _ in each_field(instance, people, lambda n: XSS.format(n=n), figures, "stored xss"):
        pass
    for identity in people:
        identity.browser.phase = "stored xss"
        for path in form_pages(instance, identity) + ["/", "/me/", "/review/", "/search/?q=script", "/archive/",
                                                      "/credit/dossiers", "/admin/accounts/", "/admin/audit/",
                                                      "/admin/regions/", "/contacts"]:
            body = identity.browser.get(path).text
            figures["stored xss: pages read back"] += 1
            if "&lt;script&gt;alert(" in body:
                figures["stored xss: payloads shown escaped"] += 1
            if any(raw in body for raw in XSS_RAW):
                figures["stored xss: payloads shown raw"] += 1
                print(f"  raw payload: {identity.label} {path}", file=sys.stderr)


# ---------------------------------------------------------------- phase: disclosures against the audit log

def run_disclosures(instance: Instance, people: list[Identity], figures) -> None:
    """Staff downloads, previews, reveals and ID-number searches: one audit row each, none missing."""
    with instance.app.app_context():
        start = db.session.scalar(sa.select(sa.func.max(AuditEvent.sequence))) or 0
        versions = db.session.scalars(sa.select(AttachmentVersion.id)).all()
        dossiers = db.session.scalars(sa.select(Dossier).where(Dossier.state != "purged")).all()
        numbers = [(d.id, d.person.id_number) for d in dossiers if d.person.id_number]
    done: collections.Counter = collections.Counter()
    for identity in [i for i in people if i.kind == "staff"]:
        browser = identity.browser
        browser.phase = "disclosures"
        for version in versions:
            for suffix, action in (("", "document.download"), ("/preview.png", "document.preview")):
                response = browser.get(f"/files/{version}{suffix}")
                if response.status == 200:
                    done[(identity.label, action)] += 1
        for dossier_id, number in numbers:
            response = browser.post(f"/review/{dossier_id}/reveal", {}, page=f"/review/{dossier_id}")
            if response.status == 200 and number in response.text:
                done[(identity.label, "dossier.reveal_id_number")] += 1
            sealed = browser.get(f"/search/?q={number}")
            if sealed.status == 302 and browser.get(sealed.headers["location"]).status == 200:
                done[(identity.label, "search.id_number")] += 1
    with instance.app.app_context():
        rows = collections.Counter(tuple(row) for row in db.session.execute(
            sa.select(AuditEvent.actor_label, AuditEvent.action).where(AuditEvent.sequence > start)).all())
    figures["disclosures made"] += sum(done.values())
    for key, made in done.items():
        missing = max(0, made - rows.get(key, 0))
        figures["disclosures without an audit row"] += missing
        if missing:
            print(f"  unaudited: {key} {missing} of {made}", file=sys.stderr)


# ---------------------------------------------------------------- phase: searches while writing

UPLOADS_PER_WRITER = 20


def run_concurrency(instance: Instance, people: list[Identity], figures, searches: int) -> None:
    """Searchers on four threads while two applicants edit their information and upload: 0 errors."""
    staff = [i for i in people if i.kind == "staff" and i.label.startswith("reviewer")]
    # Those who may edit now (a draft, a rejected dossier): their writes reach the index while others search.
    writers = [i for i in people if i.kind == "applicant" and i.browser.get("/me/edit").status == 200][:2]
    words = ["会计", "张伟", "有限公司", "朝阳市", "示范", "王芳 双塔", "", "欧阳", "资格证书", "李娜"]
    stop = threading.Event()
    lock = threading.Lock()

    def search(number: int) -> None:
        browser = staff[number % len(staff)].browser.copy()
        browser.phase = "concurrency"
        for n in range(searches // 4):
            response = browser.get(f"/search/?q={urllib.parse.quote(words[n % len(words)])}"
                                   + ("&sort=date" if n % 3 == 0 else ""))
            with lock:
                figures["concurrency: searches"] += 1
                figures["concurrency: errors"] += response.status >= 500

    def write(identity: Identity) -> None:
        browser = identity.browser.copy()
        browser.phase = "concurrency"
        n = 0
        while not stop.is_set():
            n += 1
            page = browser.get("/me/edit")
            form = next((f for a, f, _ in post_forms(page, "/me/edit") if a.endswith("/me/edit")), None)
            # Every other write a new document version instead, the first UPLOADS_PER_WRITER: each is a new
            # object the second matrix asks every identity for, so more would only lengthen it.
            if form is not None and (n % 2 or n > 2 * UPLOADS_PER_WRITER):
                form["employer_name"] = f"朝阳市示范会计服务有限公司第{n}分公司"
                response = browser.request("POST", "/me/edit", form)
            else:
                response = browser.request("POST", "/me/documents/other", {
                    "csrf_token": browser.token("/me/documents")}, {"file": ("a.png", sample_png(seed=n))})
            with lock:
                figures["concurrency: writes"] += 1
                figures[f"concurrency: writes answered {response.status}"] += 1
                figures["concurrency: errors"] += response.status >= 500

    threads = [threading.Thread(target=search, args=(n,)) for n in range(4)]
    writing = [threading.Thread(target=write, args=(w,)) for w in writers]
    for thread in threads + writing:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    for thread in writing:
        thread.join()


# ---------------------------------------------------------------- phase: sessions after sign-out

def run_sessions(instance: Instance, people: list[Identity], figures) -> None:
    """Copies of session cookies after sign-out, a password change, a reset, losing a role, being disabled: none usable.

    The province's administrator does the reset, revoke and disable in the back office, as an office would.
    """
    port = instance.port

    def usable(identity: Identity, stolen: Browser, how: str) -> None:
        figures["sessions: cookies reused"] += 1
        response = stolen.get(identity.home)
        if response.status == 200:
            figures["sessions usable after sign-out"] += 1
            print(f"  still signed in after {how}: {identity.label}", file=sys.stderr)

    for identity in people[1:]:
        browser = sign_in(identity, port, figures, "sessions")
        stolen = browser.copy()
        browser.post("/logout", {}, page=identity.home)
        usable(identity, stolen, "sign-out")
    admin = next(i for i in people if i.label == "admin")
    office = sign_in(admin, port, figures, "sessions")
    for identity in [i for i in people if i.kind == "staff" and i is not admin]:
        with instance.app.app_context():
            user = user_of(identity)
            account, (role, region) = user.id, next((a.role, a.region_id) for a in user.role_assignments)
        details = f"/admin/accounts/details/?id={account}"

        def act(action: str, **fields) -> Response:
            return office.post(f"/admin/accounts/{action}/?id={account}", fields, page=details)

        stolen = sign_in(identity, port, figures, "sessions").copy()
        one_time = re.search(r'id="one-time-password">([^<]+)<', act("reset-password").text)
        usable(identity, stolen, "a password reset")
        identity.sign_in["password"] = html.unescape(one_time.group(1)) if one_time else identity.sign_in["password"]
        # Signed in with the one-time password, the account may only choose its own: a copy taken then must die.
        browser = Browser(port, figures, "sessions")
        browser.post("/login/staff", {"staff-username": identity.label, "staff-password": identity.sign_in["password"]})
        stolen, identity.sign_in["password"] = browser.copy(), "Attack-pass-2027"
        browser.post("/account/password", {"password": "Attack-pass-2027", "password_confirm": "Attack-pass-2027"},
                     page="/account/password")
        figures["sessions: cookies reused"] += 1
        if stolen.get("/account/password").status == 200 or stolen.get(identity.home).status == 200:
            figures["sessions usable after sign-out"] += 1
            print(f"  still signed in after a password change: {identity.label}", file=sys.stderr)
        stolen = sign_in(identity, port, figures, "sessions").copy()
        act("revoke", role=role, region=str(region))
        usable(identity, stolen, "losing a role")
        act("grant", role=role, region=str(region))
        stolen = sign_in(identity, port, figures, "sessions").copy()
        act("disable")
        usable(identity, stolen, "being disabled")
        act("enable")


# ---------------------------------------------------------------- phase: tampering with the audit log

TAMPERING = {
    "update": "UPDATE audit_events SET actor_label = 'someone_else' WHERE sequence = 5",
    "delete": "DELETE FROM audit_events WHERE sequence = 5",
    "insert": "UPDATE audit_events SET sequence = sequence + 1000000 WHERE sequence >= 5;"
              "UPDATE audit_events SET sequence = sequence - 999999 WHERE sequence >= 1000000;"
              "INSERT INTO audit_events (occurred_at, actor_label, action, object_type, detail, sequence, "
              "previous_hash, row_hash) SELECT occurred_at, 'forger', action, object_type, detail, 5, row_hash, "
              "row_hash FROM audit_events WHERE sequence = 4",
    "reorder": "UPDATE audit_events SET sequence = -sequence WHERE sequence IN (5, 6);"
               "UPDATE audit_events SET sequence = 11 + sequence WHERE sequence IN (-5, -6)",
    "truncate-and-rewrite": None,
}


def run_tampering(instance: Instance, figures) -> None:
    """Each tampering on a copy of the database, past the triggers: kjdms audit verify (and the anchor) catch it."""
    anchor = instance.kjdms("audit", "anchor").stdout.strip()
    refused, tried = refused_live(instance)
    figures["tampering: refused on the live database by its triggers"] += refused
    figures["tampering: tried on the live database"] += tried
    for name, statement in TAMPERING.items():
        with copy_of(instance) as url:
            engine = sa.create_engine(url)
            with engine.begin() as connection:
                if statement is None:
                    connection.execute(sa.text("DELETE FROM audit_events"))
                    connection.execute(sa.text("DELETE FROM audit_chain_head"))
                else:
                    for part in statement.split(";"):
                        connection.execute(sa.text(part))
            engine.dispose()
            if statement is None:  # a consistent new chain, written by the application's own code
                rewrite_chain(instance, url)
            plain, anchored = instance.kjdms("audit", "verify", url=url), instance.kjdms(
                "audit", "verify", "--anchor", anchor, url=url)
        figures["tampering: cases"] += 1
        caught = anchored.returncode == 1 if statement is None else plain.returncode == 1
        if not caught:
            figures["tampering not detected"] += 1
            print(f"  not detected: {name}\n{plain.stdout}{anchored.stdout}", file=sys.stderr)
        print(f"  {name}: verify → {plain.returncode}, with the anchor → {anchored.returncode}", file=sys.stderr)


def refused_live(instance: Instance) -> tuple[int, int]:
    """Try UPDATE, DELETE (and TRUNCATE on PostgreSQL) on the live audit log, rolled back; return (refused, tried)."""
    statements = ["UPDATE audit_events SET actor_label = 'x'", "DELETE FROM audit_events"]
    if instance.url.startswith("postgresql"):
        statements += ["TRUNCATE audit_events", "TRUNCATE credit_records", "TRUNCATE users CASCADE"]
    engine, refused = sa.create_engine(instance.url), 0
    for statement in statements:
        with engine.connect() as connection:
            try:
                connection.execute(sa.text(statement))
            except sa.exc.DatabaseError:
                refused += 1
            connection.rollback()
    engine.dispose()
    return refused, len(statements)


class copy_of:
    """A copy of the instance's database without the append-only triggers, as an attacker holding it would make."""

    def __init__(self, instance: Instance):
        self.instance = instance

    def __enter__(self) -> str:
        url = self.instance.url
        if url.startswith("sqlite"):
            self.path = Path(tempfile.mktemp(suffix=".sqlite3", dir=self.instance.folder))
            source = sqlite3.connect(url.split("///", 1)[1])
            target = sqlite3.connect(self.path)
            source.backup(target)
            for (name,) in target.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                target.execute(f'DROP TRIGGER "{name}"')
            target.commit()
            source.close()
            target.close()
            return f"sqlite:///{self.path}"
        base, schema = url.split("?")[0], re.search(r"search_path%3D(\w+)", url).group(1)
        self.schema, self.engine = f"{schema}_copy", sa.create_engine(base)
        with self.engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            tables = connection.execute(sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}).scalars()
            for table in tables:
                connection.execute(sa.text(f'CREATE TABLE "{self.schema}"."{table}" (LIKE "{schema}"."{table}" '
                                           "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"))
                connection.execute(sa.text(f'INSERT INTO "{self.schema}"."{table}" SELECT * FROM "{schema}"."{table}"'))
        return f"{base}?options=-csearch_path%3D{self.schema}"

    def __exit__(self, *exc):
        if self.instance.url.startswith("sqlite"):
            self.path.unlink()
        else:
            with self.engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            self.engine.dispose()


def rewrite_chain(instance: Instance, url: str) -> None:
    """Write a fresh, self-consistent chain into the copy at url, one event fewer than before."""
    from kjdms.services import audit

    app = create_app(Config(environ={}, STORAGE_DIR=instance.folder, DATABASE_URL=url))
    with app.app_context():
        for number in range(5):
            audit.record(db.session, None, "forged.event", "dossier", number)
            db.session.commit()
        db.session.remove()
        db.engine.dispose()


# ---------------------------------------------------------------- the run

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a PostgreSQL URL (a fresh schema is made there); SQLite by default")
    parser.add_argument("--searches", type=int, default=4000, help="searches during the concurrent writes")
    parser.add_argument("--keep", action="store_true", help="keep the instance's folder")
    options = parser.parse_args()
    url = options.database
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    folder = Path(tempfile.mkdtemp(prefix="kjdms-attack-"))
    figures: collections.Counter = collections.Counter()
    started = time.perf_counter()
    with database(url, folder) as (database_url, label):
        instance = Instance(folder, database_url)
        try:
            people = identities(instance.start())
            for identity in people:
                identity.browser = sign_in(identity, instance.port, figures, "sign-in")
            phases = [
                ("matrix", lambda: run_matrix(instance, people, figures, "matrix")),
                ("csrf", lambda: run_csrf(instance, people, figures)),
                ("control characters", lambda: run_controls(instance, people, figures)),
                ("concurrency", lambda: run_concurrency(instance, people, figures, options.searches)),
                ("uploads", lambda: run_uploads(instance, people, figures)),
                ("disclosures", lambda: run_disclosures(instance, people, figures)),
                ("stored xss", lambda: run_xss(instance, people, figures)),
                ("matrix after the writes", lambda: run_matrix(instance, people, figures, "matrix 2")),
                ("sessions", lambda: run_sessions(instance, people, figures)),
            ]
            for name, phase in phases:
                moment = time.perf_counter()
                phase()
                print(f"{name}: {time.perf_counter() - moment:.0f} s", file=sys.stderr)
        finally:
            instance.stop()
        run_tampering(instance, figures)
    if not options.keep:
        shutil.rmtree(folder, ignore_errors=True)
    print_table(label, len(people), figures, time.perf_counter() - started)


ZEROS = ("5xx", "leaks", "sessions usable after sign-out", "disclosures without an audit row",
         "tampering not detected", "csrf: not refused", "csrf: rows written", "control characters: rows or blobs left",
         "uploads: hostile files kept", "stored xss: payloads shown raw", "concurrency: errors")


def print_table(label: str, identities_count: int, figures, seconds: float) -> None:
    """Print the figures, those that must be zero first."""
    print(f"\nkjdms attack run on {label}: {identities_count} identities, {seconds:.0f} s, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'figure':<58} {'value':>8}")
    print(f"{'requests sent':<58} {figures['requests sent']:>8}")
    for name in ZEROS:
        print(f"{name + ' (must be 0)':<58} {figures[name]:>8}")
    for name in sorted(set(figures) - set(ZEROS) - {"requests sent"}):
        print(f"{name:<58} {figures[name]:>8}")


if __name__ == "__main__":
    main()
