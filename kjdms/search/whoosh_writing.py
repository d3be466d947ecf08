"""A faster Whoosh writer: CJK fields indexed without Token objects, field lengths read once per segment."""
from __future__ import annotations

from pickle import dumps

from whoosh.fields import TEXT
from whoosh.system import pack_uint
from whoosh.writing import PostingPool, SegmentWriter

from .analysis import chinese_analyzer, index_positions

# Measured with bench/search.py: these three account for about half of Whoosh's indexing time
# in Python. The index they write is the one Whoosh's own code would write, byte for byte.


# Most terms occur once in a field: their encoded positions come from this table, not from pickle.
_ONE_POSITION = [pack_uint(1) + dumps([position], 2) for position in range(4096)]
_WEIGHTS = [float(count) for count in range(64)]
# A term's bytes are shared by all its postings in the writer's pool: about a third less memory,
# so a rebuild's segments can be larger before the pool spills to disk (spilling doubles the time).
_TERM_BYTES: dict[str, bytes] = {}
_TERM_BYTES_LIMIT = 1_000_000


class CJKText(TEXT):
    """A TEXT field of the Chinese analyzer with positions, indexed through analysis.index_positions."""

    def __init__(self, **kwargs):
        super().__init__(analyzer=chinese_analyzer(), phrase=True, **kwargs)

    def index(self, value, **kwargs):
        """Return (term bytes, frequency, weight, positions) for each term, as Positions.word_values encodes them."""
        if not isinstance(value, str):
            return super().index(value, **kwargs)
        boost = self.format.field_boost
        weights = _WEIGHTS if boost == 1.0 else [count * boost for count in range(64)]
        one, term_bytes = _ONE_POSITION, _TERM_BYTES
        if len(term_bytes) > _TERM_BYTES_LIMIT:
            term_bytes.clear()
        postings = []
        for term, positions in index_positions(value).items():
            count = len(positions)
            if count == 1 and positions[0] < 4096:
                encoded = one[positions[0]]
            else:
                deltas = [positions[0]] + [b - a for a, b in zip(positions, positions[1:])]
                encoded = pack_uint(count) + dumps(deltas, 2)
            data = term_bytes.get(term)
            if data is None:
                data = term_bytes[term] = term.encode("utf-8")
            postings.append((data, count, weights[count] if count < 64 else count * boost, encoded))
        return postings


class _TermPool(PostingPool):
    """Whoosh's posting pool, keeping each term's postings together as they arrive.

    Postings arrive in document order, so a term's list is already sorted: flushing sorts
    the terms, not every posting, and a posting costs three list slots instead of a tuple
    (about a sixth of the memory, so a rebuild's segments can hold five times the documents).
    Over limitmb it spills a sorted run to disk, as PostingPool does.
    """

    def __init__(self, tempstore, segment, limitmb=128, **kwargs):
        super().__init__(tempstore, segment, limitmb=limitmb, **kwargs)
        self._fields: dict[str, dict[bytes, list]] = {}
        self._unsorted: set[tuple[str, bytes]] = set()

    def add(self, item):
        """Add a (fieldname, term bytes, docnum, weight, value bytes) posting."""
        fieldname, term, docnum, weight, value = item
        terms = self._fields.get(fieldname)
        if terms is None:
            terms = self._fields[fieldname] = {}
            self.fieldnames.add(fieldname)
        postings = terms.get(term)
        if postings is None:
            terms[term] = [docnum, weight, value]
            size = 160 + len(term)
        else:
            if docnum < postings[-3]:
                self._unsorted.add((fieldname, term))  # only if a merge hands postings over out of order
            postings += (docnum, weight, value)
            size = 28
        # Encoded positions of more than one occurrence are the posting's own bytes; the others are shared.
        if value is not None and len(value) > 16:
            size += 33 + len(value)
        self.currentsize += size
        if self.currentsize > self.limit:
            self.save()

    def _sorted_postings(self):
        """Yield every posting in (fieldname, term, docnum) order."""
        for fieldname in sorted(self._fields):
            terms = self._fields[fieldname]
            for term in sorted(terms):
                postings = terms[term]
                triples = zip(postings[0::3], postings[1::3], postings[2::3])
                if (fieldname, term) in self._unsorted:
                    triples = sorted(triples, key=lambda triple: triple[0])
                for docnum, weight, value in triples:
                    yield fieldname, term, docnum, weight, value

    def save(self):
        """Write the postings held in memory to a sorted run on disk."""
        if self._fields:
            path, run = self._new_run()
            self._write_run(run, self._sorted_postings())
            self._add_run(path)
            self._fields, self._unsorted = {}, set()
        self.currentsize = 0

    def items(self, maxfiles=128):
        """Return the postings in order: from memory, or merged with the runs on disk."""
        if not self.runs:
            return self._sorted_postings()
        self.save()
        if maxfiles < len(self.runs):
            self.reduce_to(maxfiles, maxfiles)
        runs, self.runs = self.runs, []
        return self._merge_runs(runs)

    def held_bytes(self) -> int:
        """Return the estimated memory the postings in memory take."""
        return self.currentsize


class _SegmentLengths:
    """The field lengths of the segment being flushed, read once per field rather than once per posting."""

    def __init__(self, reader):
        self._reader = reader
        self._lengths: dict[str, list[int]] = {}

    def doc_field_length(self, docnum, fieldname, default=0):
        """Return the length of fieldname in document docnum of the new segment."""
        lengths = self._lengths.get(fieldname)
        if lengths is None:
            reader = self._reader
            lengths = self._lengths[fieldname] = [reader.doc_field_length(number, fieldname, default)
                                                  for number in range(reader.doc_count_all())]
        return lengths[docnum]


class FastSegmentWriter(SegmentWriter):
    """SegmentWriter with the term-grouped pool and the per-segment field lengths."""

    def __init__(self, index, **kwargs):
        super().__init__(index, **kwargs)
        self.pool = _TermPool(self._tempstorage, self.newsegment, limitmb=kwargs.get("limitmb", 128))

    def _flush_segment(self):
        # SegmentWriter._flush_segment, but the field writer looks lengths up in memory.
        self.perdocwriter.close()
        reader = self.per_document_reader() if self.codec.length_stats else None
        lengths = _SegmentLengths(reader) if reader is not None else None
        self.fieldwriter.add_postings(self.schema, lengths, self.pool.iter_postings())
        self.fieldwriter.close()
        if reader is not None:
            reader.close()
