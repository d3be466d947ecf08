"""The back office runs no inline script: a policy without 'unsafe-inline', a fresh script nonce per response, and no
page rendering a <script> without a file or that nonce, an on*= handler or a style attribute, even round hostile text."""
from __future__ import annotations

import re

import pytest

from kjdms.extensions import db
from kjdms.permissions import SYSTEM
from kjdms.services import audit
from kjdms.services.api_clients import create_client
from kjdms.services.reference import region_by_code
from tests.helpers import staff as make_staff

SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.I)
# An attribute named on... inside a tag: what a stored or template-written inline handler looks like.
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
NONCE_SOURCE = re.compile(r"'nonce-([^']*)'")
HOSTILE = '<script>alert("audit")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def office(app):
    """The province administrator, a 双塔区 reviewer, an API client, and an audit event holding hostile markup."""
    province = make_staff("admin_province", "administrator", "210000")
    reviewer = make_staff("reviewer_shuangta", "reviewer", "211302")
    region = region_by_code(db.session, "211302")
    client, _ = create_client(db.session, SYSTEM, name="朝阳市会计资格考试报名系统", purpose="资格考试报名核验",
                              regions=[region], rate_per_minute=600)
    event_id = audit.record(db.session, reviewer, HOSTILE, "user", reviewer.id, note=HOSTILE)
    db.session.commit()
    return {"province": province, "ids": {"accounts": reviewer.id, "regions": region.id, "api_clients": client.id,
                                          "audit": event_id}}


def sources(response, directive: str = "script-src") -> list[str]:
    """Return the sources the response's policy names in directive."""
    policy = response.headers["Content-Security-Policy"]
    return next(part.split()[1:] for part in policy.split(";") if part.split()[:1] == [directive])


def every_page(app, ids: dict[str, int]) -> list[str]:
    """Every address of the back office a browser can GET, each model page for a row in scope, lists filtered too."""
    paths = []
    for rule in app.url_map.iter_rules():
        view, _, name = rule.endpoint.partition(".")
        if not rule.rule.startswith("/admin") or "GET" not in rule.methods or rule.endpoint == "admin.static":
            continue
        path = rule.rule.replace("<export_type>", "csv")
        if name in ("details_view", "edit_view"):
            path += f"?id={ids[view]}"
        elif name == "ajax_lookup":
            path += "?name=region&query=x"
        paths.append(path)
    shuangta = ids["regions"]
    return paths + [f"/admin/accounts/?flt0_0={shuangta}", "/admin/accounts/?search=reviewer&sort=0&desc=1",
                    "/admin/audit/?flt0_0=reviewer&flt3_3=2019-01-01", "/admin/regions/?search=双塔",
                    "/admin/api-clients/?search=考试", "/admin/accounts/details/?id=999999"]


def test_every_back_office_page_runs_script_only_from_files_or_with_its_nonce(app, browser, office):
    visitor = browser().enter_as(office["province"])
    pages = every_page(app, office["ids"])
    assert len(pages) > 30  # every view's list, forms, details, exports and lookups
    shown = []
    for path in pages:
        response = visitor.get(path)
        scripts = sources(response)
        assert "'unsafe-inline'" not in scripts and "'unsafe-hashes'" not in scripts and "'self'" in scripts, path
        assert sources(response, "style-src") == ["'self'"], path
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        page = response.get_data(as_text=True)
        nonce = NONCE_SOURCE.search(" ".join(scripts)).group(1)
        for tag in SCRIPT_TAG.findall(page):
            assert " src=" in tag or f'nonce="{nonce}"' in tag, (path, tag)
        assert not HANDLER.search(page), (path, HANDLER.search(page).group(0))
        assert " style=" not in page, path  # the policy refuses style attributes as well
        shown.append(path)
    # The pages that matter were rendered, not answered with a redirect or a refusal.
    for path in ("/admin/", "/admin/accounts/", "/admin/accounts/new/", "/admin/regions/", "/admin/regions/new/",
                 "/admin/settings/", "/admin/audit/", "/admin/api-clients/", "/admin/api-clients/new/",
                 f"/admin/accounts/details/?id={office['ids']['accounts']}",
                 f"/admin/api-clients/details/?id={office['ids']['api_clients']}",
                 f"/admin/regions/edit/?id={office['ids']['regions']}"):
        assert path in shown, path
    # The hostile audit text is on the page, as text.
    log = visitor.get("/admin/audit/").get_data(as_text=True)
    assert "&lt;script&gt;alert(" in log and "<script>alert(" not in log


def test_each_response_names_a_fresh_nonce_and_the_pages_tags_carry_it(browser, office):
    visitor = browser().enter_as(office["province"])
    nonces = []
    for _ in range(3):
        response = visitor.get("/admin/accounts/")
        nonce = NONCE_SOURCE.search(" ".join(sources(response))).group(1)
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", nonce)  # 128 random bits or more, safe inside the header
        # Flask-Admin's own script tags carry it; a tag written into stored text could not know it.
        assert response.get_data(as_text=True).count(f'nonce="{nonce}"') >= 5
        nonces.append(nonce)
    assert len(set(nonces)) == 3


def test_the_policy_keeps_nothing_from_elsewhere_and_no_framing(client, office):
    # Asked by the anonymous (a redirect to sign in): the policy is there before anyone signs in.
    response = client.get("/admin/accounts/")
    policy = response.headers["Content-Security-Policy"]
    assert response.status_code == 302
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in sources(response) and "'unsafe-eval'" not in policy


def test_the_handlers_flask_admin_wrote_inline_are_data_attributes_read_by_a_file(browser, client, office):
    visitor = browser().enter_as(office["province"])
    regions = visitor.get("/admin/regions/").get_data(as_text=True)
    # The delete button asks through data-confirm; "with selected" names its action; the file that reads both loads.
    assert regions.count("data-confirm=") == regions.count('class="fa fa-trash') > 10
    assert 'data-model-action="delete"' in regions
    assert '<script src="/static/back_office.js"></script>' in regions
    accounts = visitor.get("/admin/accounts/").get_data(as_text=True)
    assert re.search(r'class="dropdown-item filter">\s*角色', accounts)
    served = client.get("/static/back_office.js")
    assert served.status_code == 200 and b"data-confirm" in served.data and b"data-model-action" in served.data
