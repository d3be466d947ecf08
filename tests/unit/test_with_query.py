"""Unit tests for the with_query template global: a query string as url_for writes it, kept per process."""
from urllib.parse import urlencode

from markupsafe import Markup

from kjdms.views.filters import with_query


def test_it_writes_the_arguments_that_are_not_none_in_order_as_urlencode_does():
    assert with_query("/review/", region=12, waited=None, page=3) == "/review/?region=12&page=3"
    text = {"q": "王芳 & 张伟/?#", "kind": "a+b c"}
    assert with_query("/search/", **text) == "/search/?" + urlencode(text)


def test_no_argument_leaves_the_address_as_it_was_given():
    assert with_query("/review/", region=None) == "/review/"
    assert type(with_query(Markup("/review/"), region=None)) is Markup
    assert type(with_query("/review/", region=None)) is str


def test_answers_kept_for_equal_values_still_follow_the_value_written():
    # True == 1 and they hash alike: a cache keyed by the values themselves would answer one for the other.
    assert with_query("/review/", page=1) == "/review/?page=1"
    assert with_query("/review/", page=True) == "/review/?page=True"
    assert with_query("/review/", page=1.0) == "/review/?page=1.0"
    assert with_query("/review/", page=1) == "/review/?page=1"
