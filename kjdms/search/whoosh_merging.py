"""When Whoosh segments are merged: never on the commit that writes changes, by the indexer when they grow too many.

Each drain commits its batch as a segment of its own (merge=False): Whoosh's default policy merged
small segments inside every commit, 40% of its time. After each batch the indexer calls
merge_small_segments, which merges only when the segments outnumber SEGMENT_LIMIT (BUSY_SEGMENT_LIMIT
while more changes wait), and then the smallest few (tiers: a merged segment is merged again only
once MERGE_FANOUT others as small have gathered), so each change is rewritten a few times at most.
The count stays within BUSY_SEGMENT_LIMIT plus the segments of LARGE_SEGMENT_DOCS or more (a
rebuild's, and one per that many changes). The merge itself is built beside the live segments
(whoosh_side_merge): it holds the writer only to swap the merged segment in.
"""
from __future__ import annotations

# Searches and updates open every segment: beyond this many the indexer merges the smallest once the
# outbox is empty; while changes wait, only beyond BUSY_SEGMENT_LIMIT (a merge would hold them up).
SEGMENT_LIMIT = 12
BUSY_SEGMENT_LIMIT = 24
# How many of the smallest segments one merge takes.
MERGE_FANOUT = 6
# Nor does a merge make a segment larger than this: a merge reads every posting back in Python, about as
# slow as indexing the documents again, and the changes queued meanwhile wait. A rebuild's segments are
# larger: only an optimize (purge_deleted) or a reindex rewrites them.
LARGE_SEGMENT_DOCS = 5_000


def segments_to_merge(segments, limit: int = SEGMENT_LIMIT) -> list:
    """Return the segments to merge now: the smallest few when there are more than limit, else none."""
    if len(segments) <= limit:
        return []
    chosen, total = [], 0
    for segment in sorted(segments, key=lambda segment: segment.doc_count_all())[:MERGE_FANOUT]:
        if total + segment.doc_count_all() > LARGE_SEGMENT_DOCS:
            break
        chosen.append(segment)
        total += segment.doc_count_all()
    return chosen if len(chosen) > 1 else []

