"""Unit tests for kjdms.documents.basic_info_form: the basic-information form as PDF."""

import io
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from kjdms.documents import base as document_base, basic_info_form as basic_form
from kjdms.documents.images import pdf_first_page_png
from kjdms.models import Dossier, Person, Region
from kjdms.documents.basic_info_form import basic_information_form_pdf, field_value
from kjdms.vocabulary import DOSSIER_LABELS as LABELS
from kjdms.validators import id_number_check_digit
from kjdms.vocabulary import JOB_TYPES

ID_BODY = "21130219900101123"
ID_NUMBER = ID_BODY + id_number_check_digit(ID_BODY)
GENERATED_AT = datetime(2019, 5, 6, 10, 30, tzinfo=timezone(timedelta(hours=8)))


def make_dossier(**fields) -> Dossier:
    """Return an unsaved dossier of a Chaoyang accountant, with fields overriding the defaults."""
    province = Region(name="辽宁省")
    city = Region(name="朝阳市", parent=province)
    county = Region(name="双塔区", parent=city)
    person = Person(name="张晓明", id_number=ID_NUMBER, sex="male", birth_date=date(1990, 1, 1))
    values = dict(
        person=person, id=42, state="draft", phone="13800000000", education="bachelor",
        scope_category="in_accounting_work", job_types=["cashier", "checking"],
        employer_name="朝阳市恒信商贸有限公司", employer_uscc="91211300MA0Y8XQ71K",
        employer_region=county, household_region=county, is_student=False,
        qualification_level="intermediate", qualification_certificate_number="Z2019210000123",
        region=county,
    )
    values.update(fields)
    return Dossier(**values)


def pdf_text(pdf: bytes) -> str:
    """Return the text of every page, without whitespace (extraction spaces CJK unevenly)."""
    reader = PdfReader(io.BytesIO(pdf))
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in reader.pages))


@pytest.fixture(scope="module")
def form():
    return basic_information_form_pdf(make_dossier(), generated_at=GENERATED_AT)


@pytest.fixture(scope="module")
def form_text(form):
    return pdf_text(form)


def test_form_is_a_pdf(form):
    assert form.startswith(b"%PDF")


@pytest.mark.parametrize("expected", [
    basic_form.TITLE, "张晓明", ID_NUMBER, "KJ0000000042", "本人签字", "单位盖章", "年", "月", "日",
    basic_form.DECLARATION, "依据辽财会〔2019〕116号", "2019-05-0610:30",
])
def test_form_shows(form_text, expected):
    assert expected in form_text


@pytest.mark.parametrize("expected", [
    "男", "1990年1月1日", "大学本科", "在辽宁行政区域内从事会计工作的人员", "出纳、稽核", "中级",
    "辽宁省/朝阳市/双塔区", "朝阳市恒信商贸有限公司", "91211300MA0Y8XQ71K", "否",
])
def test_form_shows_codes_in_chinese(form_text, expected):
    assert expected in form_text


def test_form_labels_every_basic_information_field(form_text):
    assert all(label in form_text for label in LABELS.values())
    assert basic_form.REGION_LABEL in form_text


def test_rows_hold_every_field_once():
    fields = [field for row in basic_form.ROWS for field in row]
    assert sorted(fields) == sorted([*LABELS, "region"])


def test_form_is_one_a4_portrait_page(form):
    reader = PdfReader(io.BytesIO(form))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)


def test_form_embeds_a_subset_font(form):
    assert b"/FontFile2" in form
    assert len(form) < 100_000


def test_form_asks_viewers_not_to_scale_when_printing(form):
    assert PdfReader(io.BytesIO(form)).trailer["/Root"]["/ViewerPreferences"]["/PrintScaling"] == "/None"


def test_form_renders_with_text(form):
    png = Image.open(io.BytesIO(pdf_first_page_png(form, width=600)))
    assert png.size == (600, round(600 * 297 / 210))
    assert png.convert("L").getextrema()[0] < 50


def test_long_values_keep_the_declaration_with_the_signature_boxes():
    dossier = make_dossier(employer_name="辽宁省朝阳市" * 21, job_types=list(JOB_TYPES))
    reader = PdfReader(io.BytesIO(basic_information_form_pdf(dossier, generated_at=GENERATED_AT)))
    first, last = (re.sub(r"\s+", "", page.extract_text()) for page in (reader.pages[0], reader.pages[-1]))
    assert "、".join(JOB_TYPES.values()) in first
    assert basic_form.DECLARATION in last and "本人签字" in last and "单位盖章" in last
    assert "KJ0000000042" in last  # the footer ties every page to the dossier


def test_empty_values_print_as_a_dash():
    dossier = make_dossier(employer_org_code=None, job_types=[], school_region=None)
    assert {field_value(dossier, f) for f in ("employer_org_code", "job_types", "school_region")} == {"—"}


def test_unknown_codes_print_as_they_are():
    assert field_value(make_dossier(education="retired_code"), "education") == "retired_code"


def test_missing_font_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(document_base, "FONT_CANDIDATES", ((Path(tmp_path / "none.ttc"), 0),))
    with pytest.raises(RuntimeError, match="fonts-wqy-microhei"):
        basic_information_form_pdf(make_dossier(), generated_at=GENERATED_AT)


def test_same_dossier_and_time_give_the_same_bytes(form):
    # Forms are stored by content hash: printing twice must not make two blobs.
    assert basic_information_form_pdf(make_dossier(), generated_at=GENERATED_AT) == form
