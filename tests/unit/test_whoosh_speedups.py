"""Check that the faster Whoosh writer writes what Whoosh writes, and that the bitset search answers as a scan does."""

from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st
from whoosh import index as whoosh_index
from whoosh.fields import TEXT

from kjdms.search import ScopeGrant, SearchRequest, WhooshSearchIndex
from kjdms.search.analysis import chinese_analyzer, index_frequencies, normalize, occurrences, substring_matches
from kjdms.search.whoosh_index import TEXT_FIELDS, schema, whoosh_fields
from kjdms.search.whoosh_writing import INLINE_POSTINGS, FastSegmentWriter, InliningCodec
from tests.search_reference import STATES, documents, fill, requests, scan_search

@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """Return a live index of three segments, some documents replaced, some removed."""
    search_index = WhooshSearchIndex(tmp_path_factory.mktemp("index"))
    # A segment per chunk, as a large rebuild makes.
    held = fill(search_index, after_chunk=lambda rebuild: rebuild._commit())
    return search_index, held


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


@pytest.mark.parametrize("limitmb, chunks, codec", [(128, 1, None), (1, 1, None), (128, 3, None),
                                                    (128, 1, InliningCodec), (128, 3, InliningCodec)])
def test_fast_writer_writes_what_whoosh_writes(tmp_path, limitmb, chunks, codec):
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
            # An inlined posting without a value reads back as "" (Whoosh's ListMatcher), a block's as None.
            postings = [(*posting[:4], None if posting[4] == "" else posting[4]) for posting in reader.iter_postings()]
            return postings, lengths, list(reader.all_stored_fields()), columns

    *expected, _ = build("whoosh", plain, lambda built: built.writer())
    # With InliningCodec: short posting lists in the term table, read back the same (a merge included).
    codec_options = {"codec": codec()} if codec else {}
    *found, columns = build("fast", schema(), lambda built: FastSegmentWriter(built, limitmb=limitmb, **codec_options))
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


def test_a_batchs_short_posting_lists_are_kept_in_the_term_table(tmp_path):
    search_index = WhooshSearchIndex(tmp_path)
    search_index.write(documents()[:5])
    with search_index._live().reader() as reader:
        infos = [reader.term_info(fieldname, text) for fieldname, text in reader.all_terms()]
    assert infos and all(info.is_inlined() for info in infos if info.doc_frequency() < INLINE_POSTINGS)
