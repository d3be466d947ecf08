"""Every real name: ideographs of every block and 〇 are accepted, printed on the form and found by search."""
import io
import logging
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from kjdms.extensions import db
from kjdms.models import Person
from tests.helpers import make_id_number
from tests.webclient import basic_information, database_snapshot, text

# A page sweep: SQLite only; the services under these pages are tested on both databases.
pytestmark = pytest.mark.pages

PASSWORD = "new-secret-42"
# 𠀾 U+2003E (Extension B) stands where the BMP has no character; 㐂 U+3402 is Extension A.
EXTENSION_B_NAME = "李\U0002003e"
EDITED_EXTENSION_B_NAME = "李\U0002003e\u3402"
ZERO_NAME = "王〇"
EDITED_ZERO_NAME = "王〇〇"


def pdf_name(pdf: bytes) -> str:
    """Return what the form's 姓名 row reads as, extracted from the PDF."""
    page = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    return re.search(r"姓名\s*(\S+)\s*性别", page).group(1)


@pytest.mark.parametrize("name, edited", [(EXTENSION_B_NAME, EDITED_EXTENSION_B_NAME), (ZERO_NAME, EDITED_ZERO_NAME)],
                         ids=["extension B", "ling"])
def test_a_name_goes_through_register_edit_form_and_search(browser, people, caplog, name, edited):
    person = browser()
    id_number = make_id_number()
    registered = person.submit("/register", {"name": name, "id_number": id_number, "password": PASSWORD,
                                             "password_confirm": PASSWORD})
    assert registered.status_code == 302, text(registered)
    assert db.session.scalar(select(Person.name).where(Person.id_number == id_number)) == name

    saved = person.submit("/me/edit", basic_information(name=edited))
    assert saved.status_code == 302, text(saved)
    assert edited in text(person.get("/me/"))

    with caplog.at_level(logging.WARNING, logger="fpdf"):
        form = person.get("/me/form.pdf")
    assert form.status_code == 200
    assert pdf_name(form.data) == edited
    assert not [record for record in caplog.records if "missing" in record.getMessage()]

    reviewer = browser().enter_as(people["reviewer"])
    found = text(reviewer.get("/search/", query_string={"q": edited}))
    assert f"{edited}</a>" in re.sub(r"</?mark>", "", found)


@pytest.mark.parametrize("typed, stored", [
    ("阿依古丽·买买提", "阿依古丽·买买提"),
    ("阿依古丽•买买提", "阿依古丽·买买提"),   # U+2022 bullet
    ("阿依古丽‧买买提", "阿依古丽·买买提"),   # U+2027 hyphenation point (Big5)
    ("阿依古丽・买买提", "阿依古丽·买买提"),   # U+30FB katakana middle dot
    ("阿依古丽．买买提", "阿依古丽·买买提"),   # U+FF0E full-width full stop
    (" 张 三 ", "张三"),
    ("\u4e0d\ufa0e", "\u4e0d\ufa0e"),           # a compatibility ideograph stays itself
])
def test_dots_and_spaces_are_normalised(browser, typed, stored):
    id_number = make_id_number()
    response = browser().submit("/register", {"name": typed, "id_number": id_number, "password": PASSWORD,
                                              "password_confirm": PASSWORD})
    assert response.status_code == 302, text(response)
    assert db.session.scalar(select(Person.name).where(Person.id_number == id_number)) == stored


def test_a_person_signs_in_typing_another_dot(browser):
    id_number = make_id_number()
    browser().submit("/register", {"name": "阿依古丽·买买提", "id_number": id_number, "password": PASSWORD,
                                   "password_confirm": PASSWORD})
    response = browser().submit("/login", {"name": "阿依古丽・买买提", "id_number": id_number, "password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"].startswith("/me")


@pytest.mark.parametrize("name, message", [
    ("Zhang San", "姓名：不能包含“Z”"),
    ("张3", "姓名：不能包含“3”"),
    ("张@", "姓名：不能包含“@”"),
    ("张.三", "姓名：不能包含“.”"),
    ("ㄓㄤ三", "姓名：不能包含“ㄓ”"),
    ("·张三", "姓名：“·”只能在两个汉字之间"),
    ("张三·", "姓名：“·”只能在两个汉字之间"),
    ("张··三", "姓名：“·”只能在两个汉字之间"),
    ("张", "姓名：应为2至30个汉字，当前为 1 个"),
    ("张" * 31, "姓名：应为2至30个汉字，当前为 31 个"),
    # Extension I (Unicode 15.1): accepted by the pattern, but no installed font prints it yet.
    ("李\U0002ebf0", "姓名：“\U0002ebf0”字尚无可打印的字形"),
])
def test_other_names_are_refused_naming_the_field_and_nothing_is_saved(browser, name, message):
    before = persons_and_dossiers()
    response = browser().submit("/register", {"name": name, "id_number": make_id_number(), "password": PASSWORD,
                                              "password_confirm": PASSWORD})
    assert response.status_code == 422
    assert message in text(response)
    assert persons_and_dossiers() == before


def persons_and_dossiers():
    """Return what a registration writes (the attempt itself is counted by the throttle, on purpose)."""
    counts, dossiers = database_snapshot()
    counts.pop("login_failures")
    return counts, dossiers
