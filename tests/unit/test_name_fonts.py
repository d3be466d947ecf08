"""Names in the ideograph extensions print on every document: the form, the credit file and the package summary."""
import io
import logging
import re
from datetime import datetime

import pytest
from pypdf import PdfReader

from kjdms.documents.base import unprintable
from kjdms.documents.credit_file import credit_file_pdf
from kjdms.documents.package_summary import summary_pdf

GENERATED_AT = datetime(2019, 5, 6, 10, 30)
# Extension B, Extension A, 〇, a compatibility ideograph of the supplement, Extension E.
NAMES = ["李\U0002003e", "王\u3402〇", "欧阳\U0002f805", "张\U0002b820·买买提"]


def page_text(pdf: bytes) -> str:
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages))


def no_missing_glyphs(caplog) -> bool:
    return not [record for record in caplog.records if "missing" in record.getMessage()]


@pytest.mark.parametrize("name", NAMES)
def test_the_credit_file_prints_the_name(caplog, name):
    with caplog.at_level(logging.WARNING, logger="fpdf"):
        pdf = credit_file_pdf([], name=name, id_number="211302199001011239", dossier_numbers=["KJ0000000001"],
                              generated_at=GENERATED_AT)
    assert f"姓名{name}" in page_text(pdf)
    assert no_missing_glyphs(caplog)


@pytest.mark.parametrize("name", NAMES)
def test_the_package_summary_prints_the_name(caplog, name):
    manifest = {
        "dossier": {"number": "KJ0000000001", "state_title": "已审核确认", "created_at": "2019-05-06T02:30:00+00:00"},
        "person": {"id_number_masked": "2113**********1239"}, "generated_at": "2019-05-06T10:30:00+08:00",
        "files": [], "history": [], "credit_records": [], "revisions": [],
    }
    with caplog.at_level(logging.WARNING, logger="fpdf"):
        pdf = summary_pdf(manifest, [("姓名", name)])
    assert f"姓名{name}" in page_text(pdf)
    assert no_missing_glyphs(caplog)


def test_a_character_no_font_has_is_reported_once():
    assert unprintable("李\U0002ebf0\U0002ebf0 张") == ["\U0002ebf0"]
    assert unprintable("".join(NAMES)) == []
