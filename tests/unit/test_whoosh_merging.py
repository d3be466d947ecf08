"""Writes leave small segments; the indexer merges the smallest beside them when too many, never a rebuild's."""
import threading
from dataclasses import dataclass
from types import SimpleNamespace

from whoosh.reading import SegmentReader

from kjdms.search import WhooshSearchIndex
from kjdms.search.whoosh_merging import (BUSY_SEGMENT_LIMIT, LARGE_SEGMENT_DOCS, MERGE_FANOUT, SEGMENT_LIMIT,
                                        segments_to_merge)
from kjdms.search.whoosh_side_merge import SIDE_FOLDER, SideMerge
from kjdms.worker import merge_continuously
from tests.unit.test_whoosh_speedups import documents


@dataclass(frozen=True)
class Segment:
    """What the policy reads of a Whoosh segment."""

    name: str
    docs: int

    def doc_count_all(self) -> int:
        return self.docs

    def segment_id(self) -> str:
        return self.name


def test_within_the_limit_nothing_is_merged():
    assert segments_to_merge([Segment(f"s{number}", 1) for number in range(SEGMENT_LIMIT)]) == []


def test_over_the_limit_the_smallest_few_are_merged():
    segments = [Segment(f"s{number}", 100 - number) for number in range(SEGMENT_LIMIT + 1)]
    chosen = segments_to_merge(segments)
    assert len(chosen) == MERGE_FANOUT
    assert [segment.docs for segment in chosen] == sorted(segment.docs for segment in segments)[:MERGE_FANOUT]


def test_a_rebuilds_large_segments_are_left_to_an_optimize():
    large = [Segment(f"large{number}", LARGE_SEGMENT_DOCS) for number in range(SEGMENT_LIMIT)]
    assert segments_to_merge(large + [Segment("small", 3)]) == []  # one small segment: nothing to merge it with
    chosen = segments_to_merge(large + [Segment("small", 3), Segment("smaller", 1)])
    assert [segment.name for segment in chosen] == ["smaller", "small"]


def test_no_merge_makes_a_segment_past_the_large_size():
    half = LARGE_SEGMENT_DOCS // 2
    segments = [Segment(f"s{number}", half - 1) for number in range(SEGMENT_LIMIT)] + [Segment("tiny", 1)]
    chosen = segments_to_merge(segments)
    assert [segment.docs for segment in chosen] == [1, half - 1, half - 1]
    assert sum(segment.docs for segment in chosen) <= LARGE_SEGMENT_DOCS


def test_each_write_is_a_segment_until_the_indexer_merges_the_smallest(tmp_path):
    index = WhooshSearchIndex(tmp_path)
    everything = documents()[:SEGMENT_LIMIT + 2]
    for document in everything:
        index.write([document])
    assert len(index._live()._segments()) == SEGMENT_LIMIT + 2  # no merge inside the writes' commits
    removed = everything[1]["dossier_id"]
    index.write([dict(everything[0], stamp="changed")], deleted_ids=[removed])
    assert index.merge_small_segments(busy=True) is False  # while changes wait, more segments are borne
    assert index.merge_small_segments() is True
    assert len(index._live()._segments()) == SEGMENT_LIMIT + 3 - MERGE_FANOUT + 1
    assert index.merge_small_segments() is False  # within the limit again
    expected = {document["dossier_id"]: document["stamp"] for document in everything if document["dossier_id"] != removed}
    expected[everything[0]["dossier_id"]] = "changed"
    assert index.stamps() == expected  # every document once, the replaced one new, the removed one gone


def _merge_beside(index):
    """Return a merge of the smallest segments built beside the live ones (not swapped in), and the ids it holds."""
    live = index._live()
    merge = SideMerge(index.folder / index._generation / SIDE_FOLDER, segments_to_merge(live._segments()))
    merge.build(live, limitmb=16)
    held = []
    for source in merge.sources:
        reader = SegmentReader(live.storage, live.schema, source)
        held += [int(fields["key"]) for fields in reader.all_stored_fields()]
        reader.close()
    return merge, held


def test_changes_made_while_a_merge_is_built_are_carried_into_it(tmp_path):
    index = WhooshSearchIndex(tmp_path)
    everything = documents()[:SEGMENT_LIMIT + 2]
    for document in everything:
        index.write([document])
    merge, held = _merge_beside(index)
    assert len(held) == MERGE_FANOUT and merge.folder.is_dir()
    by_id = {document["dossier_id"]: document for document in everything}
    changed, removed = held[0], held[1]
    # Commits go on while the merge is built: they delete old versions from the segments being merged.
    index.write([dict(by_id[changed], stamp="changed")], deleted_ids=[removed])
    assert merge.swap_in(index._live(), timeout=1.0) is True
    assert not merge.folder.exists()
    expected = {dossier_id: document["stamp"] for dossier_id, document in by_id.items() if dossier_id != removed}
    expected[changed] = "changed"
    assert index.stamps() == expected
    assert index.doc_count() == len(expected)  # the old version of the changed one is not back
    assert len(index._live()._segments()) == SEGMENT_LIMIT + 3 - MERGE_FANOUT + 1
    # The next write finds the old version in the merged segment (a term table it has not opened before).
    index.write([dict(by_id[held[2]], stamp="again")])
    assert index.stamps() == {**expected, held[2]: "again"}
    assert index.doc_count() == len(expected)


def test_a_merge_whose_segments_were_rewritten_meanwhile_is_dropped(tmp_path):
    index = WhooshSearchIndex(tmp_path)
    everything = documents()[:SEGMENT_LIMIT + 2]
    for document in everything:
        index.write([document])
    merge, held = _merge_beside(index)
    index.write([], deleted_ids=[held[0]], optimize=True)  # an optimize rewrites every segment into one
    assert merge.swap_in(index._live(), timeout=1.0) is False
    assert not merge.folder.exists()  # its copies of the documents are gone with it
    assert len(index._live()._segments()) == 1
    assert index.stamps() == {document["dossier_id"]: document["stamp"]
                              for document in everything if document["dossier_id"] != held[0]}


def test_purging_leaves_no_merge_folder_behind(tmp_path):
    index = WhooshSearchIndex(tmp_path)
    index.write(documents()[:2])
    side = tmp_path / index._generation / SIDE_FOLDER
    side.mkdir()
    (side / "MAIN_leftover.seg").write_bytes("张三".encode())  # what a crash in the middle of a merge leaves
    index.purge_deleted()
    assert not side.exists()


def test_the_workers_merger_merges_after_a_drain_and_once_more_when_stopped(tmp_path):
    index = WhooshSearchIndex(tmp_path)
    everything = documents()[:BUSY_SEGMENT_LIMIT + 2]
    for document in everything:
        index.write([document])
    # What merge_continuously reads of the OutboxDrainer: its events and its index.
    drainer = SimpleNamespace(index=index, drained=threading.Event(), arrived=threading.Event())
    stop = threading.Event()
    merger = threading.Thread(target=merge_continuously, args=(drainer, stop))
    merger.start()
    try:
        drainer.arrived.set()  # changes wait: merged only down to the busy limit
        drainer.drained.set()
        for _ in range(6000):  # patience, not a time asserted: a merge of a few one-document segments
            if len(index._live()._segments()) <= BUSY_SEGMENT_LIMIT:
                break
            stop.wait(0.01)
        assert SEGMENT_LIMIT < len(index._live()._segments()) <= BUSY_SEGMENT_LIMIT
    finally:
        stop.set()
        drainer.drained.set()
        merger.join()
    # Stopped, it merged once more with the idle limit, changes waiting or not.
    assert len(index._live()._segments()) <= SEGMENT_LIMIT
    assert index.stamps() == {document["dossier_id"]: document["stamp"] for document in everything}


def test_writes_replace_documents_in_an_older_compound_segment(tmp_path):
    # Before the writer stopped packing segments (and with Whoosh's own writer) a segment is one compound file:
    # the open term tables must read through it, or every drain of an upgraded instance fails.
    from whoosh.writing import SegmentWriter

    from kjdms.search.whoosh_index import whoosh_fields

    index = WhooshSearchIndex(tmp_path)
    everything = documents()[:3]
    writer = SegmentWriter(index._live(), compound=True)
    for document in everything:
        writer.add_document(**whoosh_fields(document))
    writer.commit(merge=False)
    assert [segment.is_compound() for segment in index._live()._segments()] == [True]
    index.write([dict(everything[0], stamp="changed")], deleted_ids=[everything[1]["dossier_id"]])
    assert index.stamps() == {everything[0]["dossier_id"]: "changed", everything[2]["dossier_id"]: everything[2]["stamp"]}


def test_an_optimize_closes_the_term_tables_kept_open(tmp_path):
    index = WhooshSearchIndex(tmp_path)
    for document in documents()[:3]:
        index.write([document])
    assert index._keys._tables  # the writes opened the segments' term tables
    index.purge_deleted()
    assert not index._keys._tables  # the merged-away files (purged people's text) are not held open
