"""Fonts parsed once per process: each PDF gets the bytes fpdf2's own add_font gives, also across threads."""
import io
import re
import threading
from datetime import datetime

import pytest
from fpdf import FPDF
from fpdf.fonts import TTFFont
from pypdf import PdfReader

from kjdms.documents import base, fonts
from kjdms.documents.credit_file import credit_file_pdf

GENERATED_AT = datetime(2019, 5, 6, 10, 30)
# Plain Han, then names that need the fallback fonts (Extension B, A, the compatibility supplement, E).
NAMES = ["张晓明", "李\U0002003e", "王\u3402〇", "欧阳\U0002f805", "张\U0002b820·买买提", "赵钱孙"]


def credit_file(name: str) -> bytes:
    return credit_file_pdf([], name=name, id_number="211302199001011239", dossier_numbers=["KJ0000000001"],
                           generated_at=GENERATED_AT)


def page_text(pdf: bytes) -> str:
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages))


@pytest.fixture(scope="module")
def parsed_per_document():
    """The credit files as fpdf2's add_font makes them, parsing the font for every document (the old way)."""
    def add_font(pdf, family, path, index=0):
        pdf.add_font(family, fname=path, collection_font_number=index)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base, "add_parsed_font", add_font)
        return {name: credit_file(name) for name in NAMES}


def test_every_attribute_of_fpdf2s_font_is_shared_or_per_document():
    """Fails when an fpdf2 upgrade adds, renames or drops a TTFFont attribute: then review fonts.py."""
    listed = fonts.SHARED + fonts.PER_DOCUMENT + fonts.UNUSED
    assert sorted(listed) == sorted(TTFFont.__slots__) and len(set(listed)) == len(listed)
    assert callable(FPDF._set_min_pdf_version)  # what add_font calls for a CID-keyed CFF font, and so do we


def test_documents_in_a_row_are_byte_for_byte_what_add_font_makes(parsed_per_document):
    for name in NAMES + NAMES[::-1]:  # each after another that used other glyphs and fallbacks
        pdf = credit_file(name)
        assert pdf == parsed_per_document[name], name
        assert f"姓名{name}" in page_text(pdf)


def test_a_document_embeds_only_the_glyphs_it_uses():
    credit_file("赵钱孙")
    sizes = {name: len(credit_file(name)) for name in ("赵钱孙", "赵钱孙周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张")}
    assert sizes["赵钱孙"] < sizes["赵钱孙周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张"]
    assert credit_file("赵钱孙") == credit_file("赵钱孙")  # the longer name left nothing behind


def test_documents_made_in_several_threads_at_once_are_correct(parsed_per_document):
    fonts._parse.cache_clear()  # the threads race to parse the font first, too
    made, errors = {}, []

    def make(number):
        try:
            for name in NAMES[number % len(NAMES):] + NAMES[:number % len(NAMES)]:
                made[number, name] = credit_file(name)
        except Exception as error:  # reported below: an exception in a thread would pass silently
            errors.append(error)

    threads = [threading.Thread(target=make, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(made) == 4 * len(NAMES)
    for (_, name), pdf in made.items():
        assert pdf == parsed_per_document[name], name


def test_a_font_file_is_parsed_once_per_process():
    fonts._parse.cache_clear()
    for name in NAMES:
        credit_file(name)
    first = fonts._parse.cache_info()
    for name in NAMES:
        credit_file(name)
    again = fonts._parse.cache_info()
    # The main font and the fallbacks these names need, each parsed once; the second round parsed nothing.
    assert first.misses == first.currsize >= 2 and again.misses == first.misses
    assert again.hits - first.hits >= len(NAMES)  # every document took at least the main font from the cache
