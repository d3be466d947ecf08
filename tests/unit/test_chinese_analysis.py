"""Check that the Chinese analysis finds exactly what a brute-force substring scan finds."""

import re
import unicodedata
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st
from whoosh.fields import ID, TEXT, Schema
from whoosh.filedb.filestore import RamStorage
from whoosh.qparser import MultifieldParser

from kjdms.search.analysis import (
    chinese_analyzer,
    normalize,
    query_pieces,
    query_terms,
    substring_matches,
    text_query,
)

RELEVANCE = yaml.safe_load((Path(__file__).parent.parent / "search" / "relevance.yaml").read_text("utf-8"))
DOCUMENTS = RELEVANCE["documents"]
QUERIES = RELEVANCE["queries"]
FIELDS = ("name", "employer", "text")

# Written apart from kjdms.search.analysis on purpose: the reference must not share its bugs.
DOTS = str.maketrans({"・": "·", "•": "·", "‧": "·", "･": "·"})
# Characters the query parser reads as syntax; the search page's parser turns that syntax off.
PARSER_SYNTAX = set("()[]{}:*?+-^~\"'!")


def reference_normalize(text):
    """Return text as a person comparing strings would: NFKC, lower case, one kind of dot."""
    return unicodedata.normalize("NFKC", text).casefold().translate(DOTS)


def reference_pattern(piece):
    """Return a regex for piece as a substring, whole-word at a Latin or digit end."""
    pattern = re.escape(piece)
    if re.match(r"[a-z0-9]", piece):
        pattern = r"(?<![a-z0-9])" + pattern
    if re.search(r"[a-z0-9]$", piece):
        pattern += r"(?![a-z0-9])"
    return re.compile(pattern)


def scan(documents, query):
    """Return the ids of documents whose fields contain every piece of query, by brute force."""
    pieces = [reference_pattern(piece) for piece in reference_normalize(query).split()]
    if not pieces:
        return set()
    return {
        document["id"]
        for document in documents
        if all(any(piece.search(reference_normalize(document[field])) for field in FIELDS) for piece in pieces)
    }


def build_index(documents):
    """Index documents in memory with the Chinese analyzer on every text field."""
    schema = Schema(id=ID(stored=True, unique=True),
                    **{field: TEXT(analyzer=chinese_analyzer(), multitoken_query="phrase") for field in FIELDS})
    # Whoosh's writer spools into <tempdir>/<indexname>.tmp even for a RAM index, and removes that folder when it
    # finishes: a name of its own keeps two test processes from removing each other's (FileNotFoundError).
    index = RamStorage().create_index(schema, indexname=f"analysis-{uuid.uuid4().hex}")
    with index.writer() as writer:
        for document in documents:
            writer.add_document(**{key: document[key] for key in ("id", *FIELDS)})
    return index


def search(index, query):
    """Return the ids the index finds for typed query text."""
    with index.searcher() as searcher:
        return {hit["id"] for hit in searcher.search(text_query(FIELDS, query), limit=None)}


@pytest.fixture(scope="module")
def index():
    return build_index(DOCUMENTS)


def query_id(query):
    return f"{query['kind']}:{query['query']}"


def test_relevance_set_covers_every_case():
    kinds = {query["kind"] for query in QUERIES}
    assert {"name2", "name3", "compound_surname", "single_char", "minority", "employer",
            "certificate", "mixed", "several_pieces", "no_match", "punctuation"} <= kinds
    assert 150 <= len(DOCUMENTS) <= 300 and len(QUERIES) >= 60
    assert len({document["id"] for document in DOCUMENTS}) == len(DOCUMENTS)
    assert all(query["expected"] for query in QUERIES if query["kind"] != "no_match")


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_expected_documents_are_the_substring_matches(query):
    assert scan(DOCUMENTS, query["query"]) == set(query["expected"])


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_index_finds_exactly_the_substring_matches(index, query):
    assert search(index, query["query"]) == scan(DOCUMENTS, query["query"])


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_reference_in_the_module_agrees_with_the_scan(query):
    found = {document["id"] for document in DOCUMENTS
             if substring_matches([document[field] for field in FIELDS], query["query"])}
    assert found == scan(DOCUMENTS, query["query"])


@pytest.mark.parametrize("query", [query for query in QUERIES if not PARSER_SYNTAX & set(query["query"])],
                         ids=query_id)
def test_query_parser_with_phrase_multitoken_queries_agrees(index, query):
    parser = MultifieldParser(FIELDS, index.schema)
    with index.searcher() as searcher:
        found = {hit["id"] for hit in searcher.search(parser.parse(query["query"]), limit=None)}
    assert found == scan(DOCUMENTS, query["query"])


@pytest.mark.parametrize("piece, terms", [
    ("张", ["张"]),
    ("张伟", ["张伟"]),
    ("欧阳明", ["欧阳", "阳明"]),
    ("阿依古丽·买买提", ["阿依", "依古", "古丽", "丽", "·", "买买", "买提"]),
    ("ABC科技", ["abc", "科技"]),
    ("2019年", ["2019", "年"]),
    ("Ｚ２０１９２１００００１２３", ["z2019210000123"]),
    ("（中级）", ["(", "中级", "级", ")"]),
])
def test_query_terms(piece, terms):
    assert query_terms(piece) == terms


def test_query_terms_refuses_whitespace():
    with pytest.raises(ValueError):
        query_terms("张伟 双塔")


def test_tokens_put_a_bigram_at_the_position_of_its_first_character():
    tokens = [(token.text, token.pos, token.startchar, token.endchar)
              for token in chinese_analyzer()("张伟 ABC科技", positions=True, chars=True)]
    assert tokens == [
        ("张", 0, 0, 1), ("张伟", 0, 0, 2), ("伟", 1, 1, 2),
        # The space skips position 2, so no phrase spans it.
        ("abc", 3, 3, 6), ("科", 4, 6, 7), ("科技", 4, 6, 8), ("技", 5, 7, 8),
    ]


def test_name_dots_and_full_width_forms_are_normalized():
    assert normalize("阿依努尔・卡德尔 ＡＢＣ") == "阿依努尔·卡德尔 abc"
    assert query_pieces("司马光\u3000财政局") == ["司马光", "财政局"]


@pytest.mark.parametrize("typed", ["", "   ", "\u3000"])
def test_blank_query_finds_nothing(index, typed):
    assert search(index, typed) == set()


# A small alphabet makes shared characters, repeats, dots and word edges frequent.
ALPHABET = "张伟明欧阳·・ ab1Ａ（）"
texts = st.text(alphabet=ALPHABET, max_size=12)


@settings(max_examples=150, deadline=None)
@given(fields=st.lists(st.tuples(texts, texts, texts), min_size=1, max_size=6), data=st.data())
def test_index_equals_scan_on_arbitrary_text(fields, data):
    documents = [{"id": str(number), **dict(zip(FIELDS, values))} for number, values in enumerate(fields)]
    index = build_index(documents)
    # Queries cut from the documents hit far more often than random ones.
    source = data.draw(st.sampled_from([value for document in documents for value in fields[int(document["id"])]]))
    start = data.draw(st.integers(0, len(source)))
    end = data.draw(st.integers(start, len(source)))
    parser = MultifieldParser(FIELDS, index.schema)
    for query in (source[start:end], data.draw(texts)):
        expected = scan(documents, query)
        assert search(index, query) == expected, query
        with index.searcher() as searcher:
            assert {hit["id"] for hit in searcher.search(parser.parse(query), limit=None)} == expected, query


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20))
def test_every_token_maps_back_to_its_source(value):
    for token in chinese_analyzer()(value, positions=True, chars=True):
        assert 0 <= token.startchar < token.endchar <= len(value)
        assert token.text in normalize(value[token.startchar:token.endchar])


# Any Unicode, so that NFKC expansions (㈱), combining marks, odd spaces and rare ideographs
# reach the tokenizer; the scan here is the module's own, checked above on the ASCII cases.
@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.text(max_size=10), min_size=1, max_size=4), data=st.data())
def test_index_equals_module_scan_on_any_unicode(values, data):
    documents = [{"id": str(number), "name": value, "employer": "", "text": ""} for number, value in enumerate(values)]
    index = build_index(documents)
    source = data.draw(st.sampled_from(values))
    start = data.draw(st.integers(0, len(source)))
    for query in (source[start:data.draw(st.integers(start, len(source)))], data.draw(st.text(max_size=4))):
        expected = {document["id"] for document in documents
                    if substring_matches([document[field] for field in FIELDS], query)}
        assert search(index, query) == expected, query
