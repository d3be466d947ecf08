"""Check that the faster Whoosh writer writes what Whoosh writes, and that the bitset search answers as a scan does."""

import random
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st
from whoosh import index as whoosh_index
from whoosh.fields import TEXT

from kjdms.search import FACETS, ScopeGrant, SearchRequest, WhooshSearchIndex
from kjdms.search.analysis import (chinese_analyzer, index_frequencies, normalize, occurrences, query_pieces,
                                   substring_matches)
from kjdms.search.whoosh_index import TEXT_FIELDS, schema, whoosh_fields
from kjdms.search.whoosh_writing import FastSegmentWriter

RELEVANCE = yaml.safe_load((Path(__file__).parent.parent / "search" / "relevance.yaml").read_text("utf-8"))
# A small tree: 1 above 2 and 3, 2 above 4 and 5 (region_path lists a region and those above it).
PATHS = (["4", "2", "1"], ["5", "2", "1"], ["3", "1"], ["_none"])
STATES = ("draft", "submitted", "approved", "rejected", "archived")


def documents(seed=1):
    """Return the relevance set's dossiers as services.indexing documents, with scattered values."""
    rng = random.Random(seed)
    found = []
    for number, document in enumerate(RELEVANCE["documents"], start=1):
        path = rng.choice(PATHS)
        found.append({
            "dossier_id": number, "name": document["name"], "employer": document["employer"],
            "numbers": [], "region_text": "", "attachments": [document["text"]],
            "region_path": path, "region": path[0], "state": rng.choice(STATES),
            "qualification": rng.choice(("none", "junior", "intermediate")), "education": "bachelor",
            "scope": "in_accounting_work", "job_types": ["cashier"], "year": str(rng.randint(2019, 2021)),
            "has_credit": rng.choice("01"), "kind": "dossier", "id_hash": f"hash{number}",
            "changed": rng.randrange(10**9, 2 * 10**9), "stamp": f"s{number}",
        })
    return found


def scan_search(documents_by_id, request):
    """Answer request by brute force over the documents the index holds: the reference."""
    reached = lambda document: any(set(document["region_path"]) & set(grant.region_keys)  # noqa: E731
                                   and document["state"] in grant.states for grant in request.grants)
    typed = request.text.strip() or request.id_hashes
    if not any(grant.region_keys and grant.states for grant in request.grants) or \
            (typed and not query_pieces(request.text) and not request.id_hashes):
        return [], 0, {}
    found = [document for document in documents_by_id.values()
             if reached(document)
             and all(document[name] == value or (name == "region_path" and value in document[name])
                     for name, value in request.filters.items())
             and all(document["id_hash"] == id_hash for id_hash in request.id_hashes)
             and (not query_pieces(request.text) or substring_matches(
                 [document[name] if isinstance(document[name], str) else "\n".join(document[name])
                  for name in TEXT_FIELDS], request.text))]
    counts = {name: dict(Counter(document[name] for document in found)) for name in FACETS}
    newest_first = sorted(found, key=lambda document: (-document["changed"], document["dossier_id"]))
    return [document["dossier_id"] for document in newest_first], len(found), counts


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """Return a live index of three segments, some documents replaced, some removed."""
    search_index = WhooshSearchIndex(tmp_path_factory.mktemp("index"))
    everything = documents()
    rebuild = search_index.start_rebuild()
    for start in range(0, len(everything), 100):
        rebuild.add(everything[start:start + 100], last_id=everything[start:start + 100][-1]["dossier_id"])
        rebuild._commit()  # a segment per chunk, as a large rebuild makes
    rebuild.swap()
    changed = [dict(document, state="approved", changed=document["changed"] + 1) for document in everything[::7]]
    search_index.write(changed, deleted_ids=[3, 30, 90])
    held = {document["dossier_id"]: document for document in everything + changed}
    for removed in (3, 30, 90):
        del held[removed]
    return search_index, held


def requests():
    """Return requests of every kind: relevance queries, several grants, filters, dates, ID hashes."""
    everyone = (ScopeGrant(("1", "_none"), STATES),)
    some = (ScopeGrant(("2",), ("submitted", "approved")), ScopeGrant(("3",), ("draft",)))
    found = []
    for query in RELEVANCE["queries"]:
        found.append(SearchRequest(text=query["query"], grants=everyone, page_size=1000))
        found.append(SearchRequest(text=query["query"], grants=some, sort="date", page_size=1000))
    found += [
        SearchRequest(text="", grants=everyone, page_size=1000),
        SearchRequest(text="会计", grants=some, filters={"qualification": "junior"}, page_size=1000),
        SearchRequest(text="会计 有限公司", grants=everyone, filters={"region_path": "2", "year": "2020"}, page_size=1000),
        SearchRequest(text="", grants=some, id_hashes=("hash5", "hash6"), page_size=1000),
        SearchRequest(text="", grants=everyone, id_hashes=("hash8",), page_size=1000),
        SearchRequest(text="\u200b", grants=everyone),
        SearchRequest(text="会计", grants=()),
    ]
    return found


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


def test_an_index_with_positions_still_answers_exactly(tmp_path):
    # Written before CJKText kept the text in a column: pieces are checked by their positions.
    old = schema()
    for name in TEXT_FIELDS:
        old.remove(name)
        old.add(name, TEXT(analyzer=chinese_analyzer(), phrase=True))
    (tmp_path / "gen-1").mkdir()
    whoosh_index.create_in(str(tmp_path / "gen-1"), old)
    (tmp_path / "live").symlink_to("gen-1")
    search_index = WhooshSearchIndex(tmp_path)
    held = {document["dossier_id"]: document for document in documents()}
    search_index.write(held.values())
    for request in requests():
        ids, total, counts = scan_search(held, request)
        results = search_index.search(request)
        assert (results.total, set(results.dossier_ids)) == (total, set(ids)), request.text


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


@pytest.mark.parametrize("limitmb, chunks", [(128, 1), (1, 1), (128, 3)])
def test_fast_writer_writes_what_whoosh_writes(tmp_path, limitmb, chunks):
    everything = [whoosh_fields(document) for document in documents()]
    plain = schema()
    for name in TEXT_FIELDS:
        plain.remove(name)
        plain.add(name, TEXT(analyzer=chinese_analyzer(), phrase=False))

    def build(folder, fields, writer_for):
        (tmp_path / folder).mkdir()
        built = whoosh_index.create_in(str(tmp_path / folder), fields)
        size = -(-len(everything) // chunks)
        for start in range(0, len(everything), size):
            writer = writer_for(built)
            for document in everything[start:start + size]:
                writer.add_document(**document)
            writer.commit(merge=False)
        if chunks > 1:
            writer_for(built).commit(optimize=True)  # a merge, through the pool
        with built.searcher() as searcher:
            reader = searcher.reader()
            lengths = [reader.doc_field_length(d, name) for d in range(reader.doc_count_all()) for name in TEXT_FIELDS]
            columns = [list(reader.column_reader(name, translate=False)) if reader.has_column(name) else None
                       for name in TEXT_FIELDS]
            return list(reader.iter_postings()), lengths, list(reader.all_stored_fields()), columns

    *expected, _ = build("whoosh", plain, lambda built: built.writer())
    *found, columns = build("fast", schema(), lambda built: FastSegmentWriter(built, limitmb=limitmb))
    assert found == expected
    assert columns == [[normalize(document[name]).encode("utf-8") for document in everything] for name in TEXT_FIELDS]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("张伟明 会计a1Ｚ２·・（）\u200b\t\n〇々㈱x_-.,，。") | st.characters(), max_size=40))
def test_index_frequencies_are_the_tokenizer_counts(value):
    assert index_frequencies(value) == Counter(token.text for token in chinese_analyzer()(value))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("张伟会计ab1 ·"), max_size=30), st.text(alphabet=st.sampled_from("张伟会计ab1·"), min_size=1, max_size=3))
def test_occurrences_count_what_occurs_finds(haystack, piece):
    haystack, piece = normalize(haystack), normalize(piece)
    assert (occurrences(haystack, piece) > 0) == substring_matches([haystack], piece)


def test_mapped_storage_reads_the_bytes_written_and_an_empty_file_falls_back(tmp_path):
    from kjdms.search.whoosh_storage import MappedFileStorage

    storage = MappedFileStorage(str(tmp_path))
    (tmp_path / "posting").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty").write_bytes(b"")
    mapped = storage.open_file("posting")
    try:
        mapped.seek(250)
        assert mapped.read(10) == bytes(range(250, 256)) + bytes(range(4))
    finally:
        mapped.close()
    empty = storage.open_file("empty")
    try:
        assert empty.read() == b""
    finally:
        empty.close()



def test_every_search_takes_the_fast_paths(index, monkeypatch):
    from kjdms.search import whoosh_matching

    search_index, _ = index
    monkeypatch.setattr(whoosh_matching, "SLOW_PATHS", Counter())
    for request in requests():
        search_index.search(request)
    # The postings were read a block at a time and the field lengths from their column: an upgrade of
    # Whoosh that changed the private parts these read would show here, not as a slower site.
    assert whoosh_matching.SLOW_PATHS == Counter()


def test_a_slow_path_is_counted_when_whoosh_lacks_what_the_fast_one_reads(tmp_path, monkeypatch):
    from kjdms.search import whoosh_matching

    search_index = WhooshSearchIndex(tmp_path)  # its own: the shared one keeps what it read cached
    held = {document["dossier_id"]: document for document in documents()}
    search_index.write(held.values())
    monkeypatch.setattr(whoosh_matching, "SLOW_PATHS", Counter())
    monkeypatch.setattr(whoosh_matching, "W3LeafMatcher", type("NotTheMatcher", (), {}))  # as after an upgrade
    monkeypatch.setattr(whoosh_matching, "LENGTHS_COLUMN", None)
    request = SearchRequest(text="会计", grants=(ScopeGrant(("1", "_none"), STATES),), page_size=1000)
    _, total, _ = scan_search(held, request)
    assert search_index.search(request).total == total  # still right, only slower
    assert whoosh_matching.SLOW_PATHS["postings"] > 0 and whoosh_matching.SLOW_PATHS["lengths"] > 0
