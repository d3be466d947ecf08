"""Unit tests for helpers that replaced per-item work: the pager's numbers, a text's visible length, safe headers."""
import sys

from werkzeug.wrappers import Response

from kjdms.views.home import SAFE_HEADERS, safe_headers

from kjdms.display import visible_length
from kjdms.views.filters import pager_numbers


def test_the_pager_links_what_testing_every_number_linked():
    for pages in range(1, 15):
        for page in range(-3, pages + 6):
            expected = [number for number in range(1, pages + 1)
                        if number == 1 or number == pages or abs(number - page) <= 2]
            assert pager_numbers(page, pages) == expected, (page, pages)


def test_a_long_listing_gets_its_ends_and_the_neighbours_of_the_page():
    assert pager_numbers(1, 200) == [1, 2, 3, 200]
    assert pager_numbers(100, 200) == [1, 98, 99, 100, 101, 102, 200]
    assert pager_numbers(999, 200) == [1, 200]


def test_the_visible_length_skips_exactly_what_isspace_calls_whitespace():
    every_character = "".join(map(chr, range(sys.maxunicode + 1)))
    assert visible_length(every_character) == sum(not character.isspace() for character in every_character)
    assert visible_length(" 会计\u3000人员\n\t信息 \u00a0采集\u2028") == 8
    assert visible_length("") == 0 and visible_length(" \n\u3000") == 0


def test_the_safe_headers_are_what_one_setdefault_each_wrote_and_a_header_set_before_stays():
    for before in ([], [("Cache-Control", "public, max-age=86400")], [("content-security-policy", "sandbox"),
                                                                       ("Vary", "Cookie")]):
        by_setdefault, at_once = Response("x", headers=before), Response("x", headers=before)
        for name, value in SAFE_HEADERS:
            by_setdefault.headers.setdefault(name, value)
        assert list(safe_headers(at_once).headers) == list(by_setdefault.headers)
    assert len(SAFE_HEADERS) == 5 and safe_headers(Response("x")).headers["Cache-Control"] == "no-store"
