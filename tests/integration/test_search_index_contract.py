"""Every search index answers as the brute-force scan does: the relevance set, scope, filters, facets, order, pages."""
import pytest
import sqlalchemy as sa

from kjdms.search import ScopeGrant, SearchRequest, WhooshSearchIndex
from kjdms.search.analysis import query_pieces
from kjdms.search.postgres_index import PostgresSearchIndex
from tests.conftest import fresh_schema
from tests.search_reference import RELEVANCE, STATES, fill, requests, scan_search


@pytest.fixture(scope="module")
def postgres_engine():
    """An engine on a schema of its own on the real PostgreSQL, dropped at the end."""
    for url in fresh_schema("kjdms_index"):
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture(scope="module", params=["whoosh", pytest.param("postgres", marks=pytest.mark.postgres)])
def index(request, tmp_path_factory):
    """Return an index rebuilt from the relevance set, then some documents replaced and some removed."""
    if request.param == "whoosh":
        search_index = WhooshSearchIndex(tmp_path_factory.mktemp("index"))
    else:
        search_index = PostgresSearchIndex(lambda engine=request.getfixturevalue("postgres_engine"): engine)
    held = fill(search_index)
    return search_index, held


@pytest.mark.parametrize("request_", requests(), ids=lambda request: f"{request.text}|{request.sort}")
def test_search_finds_and_counts_what_a_scan_does(index, request_):
    search_index, held = index
    ids, total, counts = scan_search(held, request_)
    results = search_index.search(request_)
    assert results.total == total
    assert {name: values for name, values in results.facets.items() if values} == \
        {name: values for name, values in counts.items() if values}
    if request_.sort == "date" or not query_pieces(request_.text):
        assert results.dossier_ids == ids  # the same order: newest first
    else:
        assert set(results.dossier_ids) == set(ids)


def test_relevance_queries_find_the_expected_documents(index):
    index, _ = index
    names = {number: document["id"] for number, document in enumerate(RELEVANCE["documents"], start=1)}
    everyone = (ScopeGrant(("1", "_none"), STATES),)
    for query in RELEVANCE["queries"]:
        results = index.search(SearchRequest(text=query["query"], grants=everyone, page_size=1000))
        # 3, 30 and 90 were removed from the index.
        assert {names[number] for number in results.dossier_ids} == set(query["expected"]) - {"d003", "d030", "d090"}


def test_pages_follow_one_another(index):
    index, _ = index
    everyone = (ScopeGrant(("1", "_none"), STATES),)
    whole = index.search(SearchRequest(text="会计", grants=everyone, page_size=1000)).dossier_ids
    pages = [index.search(SearchRequest(text="会计", grants=everyone, page=page, page_size=7)).dossier_ids
             for page in range(1, 4)]
    assert sum(pages, []) == whole[:21]


def test_a_word_is_found_whole_and_marks_quotes_and_backslashes_are_plain_text(index):
    search_index, _ = index
    everyone = (ScopeGrant(("1", "_none"), STATES),)
    odd = {"dossier_id": 10_001, "name": "O'Brien\\张", "employer": "abc科技 x\x00y", "numbers": ["Z2019"],
           "region_text": "", "attachments": ["it's 100% \\ 'quoted' & | ! <-> :*"], "region_path": ["1"],
           "region": "1", "state": "draft", "qualification": "none", "education": "", "scope": "", "year": "2020",
           "has_credit": "0", "kind": "dossier", "id_hash": "odd", "job_types": [], "changed": 1, "stamp": "odd"}
    search_index.write([odd])
    try:
        def found(typed):
            return 10_001 in search_index.search(SearchRequest(text=typed, grants=everyone, page_size=1000)).dossier_ids

        for typed in ("o'brien", "'quoted'", "\\", "100%", "&", "<->", ":*", "abc科技", "z2019", "x"):
            assert found(typed), typed
        for typed in ("rien", "Z201", "bc科技", "2019"):
            assert not found(typed), typed
    finally:
        search_index.write([], [10_001])
