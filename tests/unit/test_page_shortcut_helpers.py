"""Unit tests for helpers that replaced per-item work in templates: the pager's numbers, a text's visible length."""
import sys

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
