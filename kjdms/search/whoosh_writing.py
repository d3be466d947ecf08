"""A faster Whoosh writer: CJK fields indexed without Token objects or positions, postings pooled by term."""
from __future__ import annotations

import random

import whoosh.util
from whoosh.codec.whoosh3 import W3Codec, W3PostingsWriter
from whoosh.columns import VarBytesColumn
from whoosh.fields import TEXT
from whoosh.system import pack_uint
from whoosh.writing import PostingPool, SegmentWriter

from .analysis import chinese_analyzer, index_frequencies, normalize

# Whoosh spends its indexing time in Python, per token and per posting; each part below removes
# some of it (bench/search.py measures the whole). The postings and field lengths written are the
# ones Whoosh's own TEXT(phrase=False) and SegmentWriter write (tests/unit/test_whoosh_speedups.py).

# A term's frequency encoded as Frequency.word_values encodes it, shared by all postings of that frequency.
_FREQUENCIES = [pack_uint(count) for count in range(256)]
_WEIGHTS = [float(count) for count in range(256)]
# A term's bytes are shared by all its postings in the writer's pool: less memory, so a rebuild's
# segments can be larger before the pool spills to disk (spilling doubles the time).
_TERM_BYTES: dict[str, bytes] = {}
_TERM_BYTES_LIMIT = 1_000_000
# A posting list of fewer documents than this is kept in the term table by InliningCodec.
INLINE_POSTINGS = 16

# Whoosh names new segments (and its pool's run files) with random.choice from the module-level generator.
# Code that seeds that generator (Hypothesis does, for every example; any library may) made a later writer
# draw the name of a live segment: creating its files truncated that segment's, so readers failed with
# "Unknown file header" or died of SIGBUS through their memory maps. Names from the OS cannot repeat so.
whoosh.util.random = random.SystemRandom()


class CJKText(TEXT):
    """TEXT of the Chinese analyzer: term frequencies in the postings, the normalised text in a column.

    No positions: a block of postings then decodes about eight times faster (bench/search.py),
    and whoosh_matching checks a piece of several terms against the column instead, as exactly.
    """

    def __init__(self, **kwargs):
        super().__init__(analyzer=chinese_analyzer(), phrase=False, **kwargs)
        # Offsets written for any number of documents: a reader loads them in one read.
        self.column_type = VarBytesColumn(write_offsets_cutoff=0)

    def to_column_value(self, value):
        """Return the text as the index compares it: normalised, UTF-8."""
        return normalize(value if isinstance(value, str) else "\n".join(value)).encode("utf-8")

    def index(self, value, **kwargs):
        """Return (term bytes, frequency, weight, encoded frequency) for each term, as Frequency.word_values does."""
        if not isinstance(value, str):
            return super().index(value, **kwargs)
        boost = self.format.field_boost
        weights = _WEIGHTS if boost == 1.0 else [count * boost for count in range(256)]
        term_bytes = _TERM_BYTES
        if len(term_bytes) > _TERM_BYTES_LIMIT:
            term_bytes.clear()
        postings = []
        for term, count in index_frequencies(value).items():
            data = term_bytes.get(term)
            if data is None:
                data = term_bytes[term] = term.encode("utf-8")
            if count < 256:
                postings.append((data, count, weights[count], _FREQUENCIES[count]))
            else:
                postings.append((data, count, count * boost, pack_uint(count)))
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
        if value == "":
            value = b""  # a merge reading an inlined posting back: Whoosh's ListMatcher gives "" for no value
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
        # Values from CJKText are shared; Whoosh's own (stored positions, a merge) are not.
        if value is not None and len(value) > 4:
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
    """SegmentWriter with the term-grouped pool, the per-segment field lengths, and no compound files."""

    def __init__(self, index, **kwargs):
        # Whoosh opens each file inside a compound segment file as a BytesIO copy of it: every reader
        # (a searcher, the searcher of each update_document) copied the whole index into memory,
        # 5 ms a file at 100,000 dossiers. Separate files are read in place.
        kwargs.setdefault("compound", False)
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


class _InliningPostingsWriter(W3PostingsWriter):
    """W3PostingsWriter whose short posting lists do go inline: Whoosh's own call has a typo (set_inline)."""

    def finish_postings(self):
        """Return the term's info, its postings in it if they are fewer than inlinelimit."""
        terminfo = self._terminfo
        if self.written() or len(self) >= self._inlinelimit:
            return super().finish_postings()
        terminfo.add_block(self)
        terminfo.set_inlined(self._ids, self._weights, self._values)
        self._terminfo = None
        return terminfo


class InliningCodec(W3Codec):
    """Whoosh's codec with a term's postings in the term table when they are few (a batch's segment, a merge's).

    A batch of 5 dossiers has about 1,000 distinct terms, nearly all in fewer than 5 of them: each
    posting list was a block of its own in the postings file, pickled and zlib-compressed. Inline,
    it is only pickled into the term's entry. Pickled into the index's table of contents with each
    segment: the class must keep its name and module.
    """

    def __init__(self, blocklimit=128, compression=3, inlinelimit=INLINE_POSTINGS):
        super().__init__(blocklimit=blocklimit, compression=compression, inlinelimit=inlinelimit)

    def postings_writer(self, dbfile, byteids=False):
        """Return the writer of a field's postings, inlining the short lists."""
        return _InliningPostingsWriter(dbfile, blocklimit=self._blocklimit, byteids=byteids,
                                       compression=self._compression, inlinelimit=self._inlinelimit)
