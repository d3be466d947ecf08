"""Control characters, NUL and direction overrides in any form field of any page: refused naming the field, never a 5xx, nothing left behind."""
import io
import re
from html import unescape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kjdms.extensions import db
from kjdms.models import AttachmentVersion, AuditEvent
from kjdms.samples import sample_pdf
from kjdms.validators import forbidden_character
from tests.integration.test_web_csrf import scene  # noqa: F401  (the same scene of every form)
from tests.webclient import database_snapshot, text

FORBIDDEN = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\u202a", "\u202e", "\u2066", "\u2069"]
FORM = re.compile(r'<form\b([^>]*)>(.*?)</form>', re.S)
FIELD = re.compile(r'<(input|textarea|select)\b([^>]*)>', re.S)


def attribute(tag: str, name: str) -> str | None:
    found = re.search(rf'\b{name}="([^"]*)"', tag)
    return unescape(found.group(1)) if found else None


def post_forms(page_html: str, page_path: str):
    """Yield (action, {field: value}) for every POST form of a page, each field as the page fills it."""
    for attributes, body in FORM.findall(page_html):
        if (attribute(attributes, "method") or "get").lower() != "post":
            continue
        fields = {}
        for kind, tag in FIELD.findall(body):
            name = attribute(tag, "name")
            if not name or attribute(tag, "type") in ("submit", "file"):
                continue
            fields.setdefault(name, attribute(tag, "value") or "")
        yield attribute(attributes, "action") or page_path, fields


def pages(scene, people):
    dossier = scene["submitted"].id
    return {
        None: ["/login", "/register"],
        "owner": ["/me/", "/me/edit", "/me/documents"],
        "reviewer": [f"/review/{dossier}"],
        "credit_officer": [f"/credit/dossier/{dossier}"],
        "archivist": [f"/archive/{dossier}"],
    }


def test_every_form_field_refuses_control_characters_without_a_server_error(browser, people, scene, blobs):
    before, blobs_before = database_snapshot(), set(blobs.iter_hashes())
    tried, refused = 0, []
    for who, paths in pages(scene, people).items():
        visitor = browser().enter_as(people[who]) if who else browser()
        for path in paths:
            for action, fields in post_forms(text(visitor.get(path)), path):
                for field in [name for name in fields if name != "csrf_token"]:
                    bad = FORBIDDEN[tried % len(FORBIDDEN)]
                    page = visitor.get(path)  # a fresh token: a refused form may not leave one behind
                    data = dict(next(f for a, f in post_forms(text(page), path) if a == action))
                    data[field] = f"甲{bad}乙"
                    response = visitor.post(action, data=data, follow_redirects=True)
                    tried += 1
                    assert response.status_code < 500, (who, action, field, response.status_code)
                    if "不能包含控制字符" in text(response):
                        refused.append((action, field))
    assert tried >= 30
    assert database_snapshot() == before
    assert set(blobs.iter_hashes()) == blobs_before
    # Each field is named in its message: the form fields (not only hidden ones) all refused.
    assert ("/login/staff", "staff-username") in refused and ("/me/edit", "employer_name") in refused


@pytest.mark.parametrize("bad", ["\x00", "\u202e"])
def test_the_message_names_the_field(browser, people, bad):
    visitor = browser().enter_as(people["owner"])
    response = visitor.submit("/me/edit", {"name": "张伟", "employer_name": f"示范{bad}公司"})
    assert "工作单位名称：不能包含控制字符或文字方向控制符" in text(response)


def test_nul_in_the_staff_user_name_is_refused_without_signing_in(client):
    response = client.submit("/login/staff", {"staff-username": "admin\x00", "staff-password": "x"}, page="/login")
    assert response.status_code == 401 and "用户名：不能包含控制字符" in text(response)


@pytest.mark.parametrize("path, name", [("/archive/?state=approved%00", "state"), ("/search/?region=1%00", "region"),
                                        ("/review/?waited=%1b7", "waited")])
def test_control_characters_in_an_address_parameter_are_a_400_naming_it(auth, path, name):
    response = auth("archivist" if path.startswith("/archive") else "reviewer").get(path)
    assert response.status_code == 400 and f"地址参数“{name}”：不能包含控制字符" in text(response)


@pytest.mark.parametrize("bad", ["%00", "%1B", "%C2%85", "%E2%80%AE", "%E2%81%A6"])
def test_the_search_box_refuses_control_characters_naming_it(auth, bad):
    response = auth("reviewer").get(f"/search/?q=abc{bad}def")
    page = text(response)
    assert response.status_code == 400 and "检索内容：不能包含控制字符或文字方向控制符" in page
    # The box keeps what may stay, to be corrected in place; nothing was searched.
    assert 'value="abcdef"' in page and 'id="results"' not in page and 'id="no-results"' not in page


def test_a_refused_search_box_neither_seals_nor_searches_an_id_number(auth, people):
    number = people["owner"].person.id_number
    response = auth("reviewer").get(f"/search/?q={number}%00")
    assert response.status_code == 400 and "检索内容：不能包含控制字符" in text(response)
    assert number not in text(response)  # neither sealed into a link nor echoed in the box
    db.session.expire_all()
    assert db.session.query(AuditEvent).filter(AuditEvent.action == "search.id_number").count() == 0


def test_the_search_box_still_takes_tab_and_plain_text(auth):
    response = auth("reviewer").get("/search/?q=abc%09def")
    assert response.status_code == 200 and "不能包含控制字符" not in text(response)


def test_an_upload_named_with_a_direction_override_is_stored_as_it_displays(browser, people, blobs):
    visitor = browser().enter_as(people["owner"])
    visitor.upload("other", sample_pdf("override"), "invoice\u202efdp.exe\x00.pdf")
    db.session.expire_all()
    names = [version.original_filename for version in db.session.query(AttachmentVersion)]
    assert names == ["invoicefdp.exe.pdf"]


def test_a_comment_with_nul_leaves_no_blob_behind(browser, people, blobs):
    visitor = browser().enter_as(people["owner"])
    response = visitor.submit("/me/documents/other", {"comment": "说明\x00", "file": (
        io.BytesIO(sample_pdf("nul comment")), "a.pdf")}, page="/me/documents", content_type="multipart/form-data",
        follow_redirects=True)
    assert response.status_code == 200 and "说明：不能包含控制字符" in text(response)
    assert list(blobs.iter_hashes()) == []


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Cs", "Lo", "Zs"]), max_size=12))
def test_only_tab_and_newlines_pass_among_the_controls(value):
    allowed = all(character in "\t\n\r" or not (
        ord(character) < 0x20 or 0x7f <= ord(character) <= 0x9f or 0xd800 <= ord(character) <= 0xdfff
        or 0x202a <= ord(character) <= 0x202e or 0x2066 <= ord(character) <= 0x2069) for character in value)
    assert (forbidden_character(value) is None) == allowed
