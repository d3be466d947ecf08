"""Whoosh's segment names stay unique when other code seeds Python's random generator."""
from __future__ import annotations

import random

from whoosh.fields import ID, Schema

from kjdms.search.whoosh_storage import create_index
from kjdms.search.whoosh_writing import FastSegmentWriter


def test_two_writers_after_the_same_seed_keep_both_segments(tmp_path):
    index = create_index(tmp_path, Schema(key=ID(stored=True, unique=True)))
    for key in ("a", "b"):
        random.seed(1)  # as Hypothesis does before each example: Whoosh drew the same segment name twice
        writer = FastSegmentWriter(index)
        writer.add_document(key=key)
        writer.commit(merge=False)
    names = [segment.segment_id() for segment in index._segments()]
    assert len(set(names)) == 2
    with index.searcher() as searcher:
        assert sorted(fields["key"] for fields in searcher.all_stored_fields()) == ["a", "b"]
