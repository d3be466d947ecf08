"""Answer a SearchRequest from Whoosh's posting lists with bitsets: exact pieces, scope, facet counts, top hits."""
from __future__ import annotations

import heapq
import logging
import re
from collections import Counter, deque
from itertools import accumulate, repeat
from pickle import loads

from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher
from whoosh.matching import ListMatcher
from whoosh.matching.wrappers import FilterMatcher
from whoosh.reading import TermNotFound
from whoosh.util.numeric import byte_to_length

from .analysis import occurrences, occurs, piece_cover, query_pieces
from .base import FACETS, IndexResults, SearchRequest

# Why not Searcher.search(groupedby=...): it scores every match and asks five column readers
# for its facet values, one Python call each; at 100,000 dossiers a common word took seconds.
# Here every set of documents is a Python int with one bit per document of a segment, so the
# scope, the filters and each facet value cost one C-level AND and bit_count() per segment.
# Only candidates are touched one by one: a piece of several terms is checked against the
# field's normalised text (the column CJKText writes; analysis.occurrences, the rule of
# substring_matches), and the matches are scored.

log = logging.getLogger(__name__)
# The fast paths read private parts of Whoosh (the pin is whoosh-reloaded~=2.7.5). Where a release
# changed them, the slow path still answers right, but is counted here and logged once: the test of
# the speed-ups insists on none, so an upgrade that silently slows every search fails it.
SLOW_PATHS: Counter[str] = Counter()


def _slow_path(name: str, reason: str) -> None:
    if not SLOW_PATHS[name]:
        log.warning("Whoosh search falls back to the slow path for %s: %s", name, reason)
    SLOW_PATHS[name] += 1


# Whoosh's BM25F defaults: a piece of one term scores as Whoosh scored it; a piece of several
# terms by how often the whole piece occurs (Whoosh's spans added up each term's frequency).
B, K1 = 0.75, 1.2
# Below this many matches in a segment, the newest are found by sorting them; above, by walking
# the segment's documents newest first until enough have matched.
SORT_MATCHES_BELOW = 2048
_ONE = re.compile("1")


def bits_of(docnums, count: int) -> int:
    """Return the bitset (bit d set for each d) of docnums, all below count."""
    if not isinstance(docnums, (list, tuple, dict)):
        docnums = list(docnums)
    if len(docnums) < 32:
        # A few shifts cost less than writing out a flag for every document of the segment.
        bits = 0
        for docnum in docnums:
            bits |= 1 << docnum
        return bits
    flags = bytearray(b"0") * count
    # map/deque: the loop over the docnums runs in C.
    deque(map(flags.__setitem__, docnums, repeat(49)), 0)  # 49 is ord("1")
    flags.reverse()
    return int(flags, 2)


def flags_of(bits: int, count: int) -> str:
    """Return bits as a string of "0" and "1", flags[d] == "1" where bit d is set."""
    return format(bits, f"0{count}b")[::-1]


def members(bits: int) -> list[int]:
    """Return the set bits of bits in increasing order."""
    return [match.start() for match in _ONE.finditer(format(bits, "b")[::-1])]


def _blocks(reader, fieldname: str, term: str):
    """Yield (docnums, weights, values) block by block for the term's postings in one segment.

    Deleted documents are included: the caller removes them with the segment's live bits.
    """
    try:
        matcher = reader.postings(fieldname, term)
    except TermNotFound:
        return
    if isinstance(matcher, FilterMatcher):
        matcher = matcher.child
    if isinstance(matcher, W3LeafMatcher):
        # A block at a time, its docnums summed up in C: Whoosh's own reading makes three calls a
        # posting and decodes docnums in a Python generator.
        while matcher.is_active():
            matcher._read_data()
            deltas, weights, values = matcher._data
            docnums = tuple(accumulate(deltas))
            if weights is None or isinstance(weights, float):
                weights = (1.0 if weights is None else weights,) * len(docnums)
            yield docnums, weights, values
            matcher._next_block()
    elif isinstance(matcher, ListMatcher) and matcher._weights is not None and matcher._values is not None:
        yield matcher._ids, matcher._weights, matcher._values
    else:
        _slow_path("postings", type(matcher).__name__)
        docnums, weights, values = [], [], []
        while matcher.is_active():
            docnums.append(matcher.id())
            weights.append(matcher.weight())
            values.append(matcher.value())
            matcher.next()
        yield docnums, weights, values


# Decoded positions by their encoding: the same few positions recur in thousands of postings.
_POSITIONS: dict[bytes, tuple[int, ...]] = {}
_POSITIONS_LIMIT = 200_000


def _positions(value: bytes) -> tuple[int, ...]:
    """Decode the positions of a Positions posting (pack_uint count, then pickled deltas)."""
    found = _POSITIONS.get(value)
    if found is None:
        if len(_POSITIONS) > _POSITIONS_LIMIT:
            _POSITIONS.clear()
        found = _POSITIONS[value] = tuple(accumulate(loads(value[4:])))
    return found


class SegmentData:
    """What the searches of one segment reuse: its value bitsets, newest-first order and field lengths."""

    def __init__(self, reader):
        self.count = reader.doc_count_all()
        self._values: dict[str, dict[str, int]] = {}
        self._lengths: dict[str, list[int]] = {}
        self._newest_first: list[int] | None = None
        self._changed: list[int] | None = None
        self._deleted: tuple[int, int] = (0, 0)
        self._columns: dict[str, tuple] = {}  # (the reader it came from, the column reader)

    def values(self, reader, fieldname: str) -> dict[str, int]:
        """Return each value of a one-word field (state, region_path ...) with the bitset of its documents."""
        found = self._values.get(fieldname)
        if found is None:
            found = {}
            for term in reader.lexicon(fieldname):
                text = term.decode("utf-8")
                found[text] = bits_of((d for block in _blocks(reader, fieldname, text) for d in block[0]), self.count)
            self._values[fieldname] = found
        return found

    def live(self, reader) -> int:
        """Return the bitset of the segment's documents that are not deleted."""
        everything = (1 << self.count) - 1
        if not reader.has_deletions():
            return everything
        segment = reader.segment()
        deleted = segment.deleted_count()
        if self._deleted[0] != deleted:
            self._deleted = (deleted, bits_of(segment.deleted_docs(), self.count))
        return everything & ~self._deleted[1]

    def changed(self, reader) -> list[int]:
        """Return each document's changed time (the date sort's key)."""
        if self._changed is None:
            self._changed = list(reader.column_reader("changed"))
        return self._changed

    def newest_first(self, reader) -> list[int]:
        """Return the segment's documents, the most recently changed first."""
        if self._newest_first is None:
            changed = self.changed(reader)
            self._newest_first = sorted(range(self.count), key=changed.__getitem__, reverse=True)
        return self._newest_first

    def column(self, reader, fieldname: str):
        """Return the reader of the field's column of normalised text, or None if it has none."""
        cached = self._columns.get(fieldname)
        if cached is None or cached[0] is not reader:
            column = reader.column_reader(fieldname, translate=False) if reader.has_column(fieldname) else None
            cached = self._columns[fieldname] = (reader, column)
        return cached[1]

    def lengths(self, reader, fieldname: str) -> list[int]:
        """Return each document's length of fieldname in tokens, as Whoosh stores it for scoring."""
        found = self._lengths.get(fieldname)
        if found is None:
            try:
                # One read of the length column instead of a call per document.
                column = reader._perdoc.column_reader(f"_{fieldname}_len", LENGTHS_COLUMN)
                raw = column._dbfile.get(column._basepos, column._count) + bytes(self.count - column._count)
                found = list(map(byte_to_length, raw))
            except (AttributeError, KeyError, ValueError, OSError) as error:
                _slow_path("lengths", f"{type(error).__name__}: {error}")
                found = [reader.doc_field_length(number, fieldname) for number in range(self.count)]
            self._lengths[fieldname] = found
        return found


class _Scores:
    """BM25 scores by docnum within one segment, as Whoosh's BM25F scores a term."""

    def __init__(self, searcher):
        self.searcher = searcher
        self.by_doc: dict[int, float] = {}

    def add(self, fieldname: str, terms: list[str], tfs: dict[int, int], lengths: list[int]) -> None:
        """Add the score of a piece found tfs[d] times in fieldname of document d."""
        if not tfs:
            return
        searcher = self.searcher
        # A piece of several terms is as rare as its rarest term, at most.
        idf = max(searcher.idf(fieldname, term) for term in terms)
        average = searcher.avg_field_length(fieldname) or 1.0
        norm = K1 * (1 - B)
        per_length = K1 * B / average
        scores = self.by_doc
        get = scores.get
        for docnum, tf in tfs.items():
            scores[docnum] = get(docnum, 0.0) + idf * tf * (K1 + 1) / (tf + norm + per_length * lengths[docnum])


def _field_matches(reader, data: SegmentData, fieldname: str, piece: str, cover, allowed: int, want_tf: bool):
    """Return (bitset, tf by docnum or None) of the allowed documents whose field holds the piece."""
    count = data.count
    if len(cover) == 1:
        blocks = list(_blocks(reader, fieldname, cover[0][1]))
        if not blocks:
            return 0, None
        found = bits_of((d for block in blocks for d in block[0]), count) & allowed
        if not found or not want_tf:
            return found, None
        flags = flags_of(found, count)
        tfs = {d: w for block in blocks for d, w in zip(block[0], block[1]) if flags[d] == "1"}
        return found, tfs
    # Every term of the cover must be in the document before its text is worth reading.
    postings = []
    candidates = allowed
    for _, term in cover:
        blocks = list(_blocks(reader, fieldname, term))
        if not blocks:
            return 0, None
        candidates &= bits_of((d for block in blocks for d in block[0]), count)
        if not candidates:
            return 0, None
        postings.append(blocks)
    column = data.column(reader, fieldname)
    if column is not None:
        count_them = occurrences if want_tf else occurs
        tfs = {}
        for docnum in members(candidates):
            tf = count_them(column[docnum].decode("utf-8"), piece)
            if tf:
                tfs[docnum] = int(tf)
        return bits_of(tfs, count), (tfs if want_tf else None)
    # An index written before CJKText kept its text in a column: check the terms' positions.
    flags = flags_of(candidates, count)
    values = [{d: v for block in blocks for d, v in zip(block[0], block[2]) if flags[d] == "1"}
              for blocks in postings]
    start = cover[0][0]
    rest = [(offset - start, by_doc) for (offset, _), by_doc in zip(cover[1:], values[1:])]
    tfs = {}
    for docnum, value in values[0].items():
        # The positions where the piece could start, narrowed term by term.
        starts = _positions(value)
        for offset, by_doc in rest:
            positions = _positions(by_doc[docnum])
            starts = [position for position in starts if position + offset in positions]
            if not starts:
                break
        else:
            tfs[docnum] = len(starts)
    return bits_of(tfs, count), (tfs if want_tf else None)


def _scope(reader, data: SegmentData, grants) -> int:
    """Return the bitset of the segment's documents the grants reach."""
    regions, states = data.values(reader, "region_path"), data.values(reader, "state")
    reached = 0
    for grant in grants:
        in_regions = 0
        for key in grant.region_keys:
            in_regions |= regions.get(key, 0)
        in_states = 0
        for state in grant.states:
            in_states |= states.get(state, 0)
        reached |= in_regions & in_states
    return reached


def run_search(searcher, caches: dict, request: SearchRequest, text_fields, filter_fields) -> IndexResults:
    """Return the page of matches of request within its grants, with every facet's counts over all of them.

    caches maps segment ids to their SegmentData; entries of segments no longer in the index are dropped.
    """
    grants = [grant for grant in request.grants if grant.region_keys and grant.states]
    typed = bool(request.text.strip()) or bool(request.id_hashes)
    pieces = query_pieces(request.text) if request.text.strip() else []
    if not grants or (typed and not pieces and not request.id_hashes):
        return IndexResults([], 0, {})
    covers = [(piece, piece_cover(piece)) for piece in pieces]
    if len(covers) > 1:
        # The rarest piece first: each narrows the documents the next must be checked in.
        covers.sort(key=lambda item: min(searcher.doc_frequency(field, term)
                                         for field in text_fields for _, term in item[1]))
    by_relevance = bool(covers) and request.sort != "date"
    filters = [(name, value) for name, value in request.filters.items() if name in filter_fields]
    limit = request.page * request.page_size

    if not searcher.doc_count_all():
        return IndexResults([], 0, {name: {} for name in FACETS})
    leaves = searcher.reader().leaf_readers()
    current = {reader.segment().segment_id() for reader, _ in leaves}
    # The cache is shared by the request threads: another may be dropping the same entries right now.
    for key in list(caches):
        if key not in current:
            caches.pop(key, None)
    counts = {name: {} for name in FACETS}
    total = 0
    best = []  # (sort key, -global docnum, global docnum) of each segment's best `limit`
    for reader, offset in leaves:
        key = reader.segment().segment_id()
        data = caches.get(key)
        if data is None:
            data = caches[key] = SegmentData(reader)
        allowed = _scope(reader, data, grants) & data.live(reader)
        for name, value in filters:
            allowed &= data.values(reader, name).get(value, 0)
        for id_hash in request.id_hashes:
            # Looked up, never cached: one document each, and as many values as dossiers.
            allowed &= bits_of((d for block in _blocks(reader, "id_hash", id_hash) for d in block[0]), data.count)
        scores = _Scores(searcher) if by_relevance else None
        for piece, cover in covers:
            if not allowed:
                break
            terms = [term for _, term in cover]
            found = 0
            for fieldname in text_fields:
                bits, tfs = _field_matches(reader, data, fieldname, piece, cover, allowed, by_relevance)
                if bits:
                    found |= bits
                    if scores is not None:
                        scores.add(fieldname, terms, tfs, data.lengths(reader, fieldname))
            allowed &= found
        matched = allowed
        if not matched:
            continue
        total += matched.bit_count()
        for name in FACETS:
            facet = counts[name]
            for value, bits in data.values(reader, name).items():
                number = (matched & bits).bit_count()
                if number:
                    facet[value] = facet.get(value, 0) + number
        best.extend(_best(reader, data, matched, scores, limit, offset))
    top = heapq.nlargest(limit, best)
    start = (request.page - 1) * request.page_size
    ids = [int(searcher.stored_fields(docnum)["key"]) for _, _, docnum in top[start:start + request.page_size]]
    return IndexResults(ids, total, counts)


def _best(reader, data: SegmentData, matched: int, scores, limit: int, offset: int):
    """Return the segment's best `limit` matches as (sort key, -docnum, docnum) with global docnums."""
    if scores is not None:
        flags = flags_of(matched, data.count)
        ranked = ((score, -(offset + d), offset + d) for d, score in scores.by_doc.items() if flags[d] == "1")
        return heapq.nlargest(limit, ranked)
    if matched.bit_count() <= SORT_MATCHES_BELOW:
        changed = data.changed(reader)
        return heapq.nlargest(limit, ((changed[d], -(offset + d), offset + d) for d in members(matched)))
    changed, flags, found = data.changed(reader), flags_of(matched, data.count), []
    for d in data.newest_first(reader):
        if flags[d] == "1":
            found.append((changed[d], -(offset + d), offset + d))
            if len(found) == limit:
                break
    return found
