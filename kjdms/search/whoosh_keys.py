"""Where each dossier's document is, segment by segment: the term tables of the segments kept open across commits.

Whoosh's update_document and delete_by_term open a reader on every segment of the index, on every
commit, to find the old versions to delete (a tenth of a small commit's time with 20 segments). A
segment's terms never change once written (only its set of deleted documents does, and deleting a
document twice is harmless), so its term table is opened once and kept while the segment lives.
"""
from __future__ import annotations

from whoosh.filedb.compound import CompoundStorage
from whoosh.reading import TermNotFound

KEY_FIELD = "key"


class KeyLookup:
    """The open term tables of the live segments, for finding a key's documents in a writer's segments."""

    def __init__(self):
        self._tables: dict[str, object] = {}
        self._compound_files: dict[str, CompoundStorage] = {}

    def delete_keys(self, writer, keys) -> None:
        """Mark deleted, in writer, every document of its segments whose key is one of keys."""
        keys = [key.encode("utf-8") for key in keys]
        if not keys:
            return
        storage, format_ = writer.storage, writer.schema[KEY_FIELD].format
        self._keep_only(writer.segments)
        offset = 0
        for segment in writer.segments:
            table = self._table(storage, segment)
            for key in keys:
                try:
                    matcher = table.matcher(KEY_FIELD, key, format_)
                except TermNotFound:
                    continue
                for docnum in matcher.all_ids():
                    writer.delete_document(offset + docnum)
            offset += segment.doc_count_all()

    def _table(self, storage, segment):
        """Return the open term table of segment, opening it the first time."""
        segment_id = segment.segment_id()
        table = self._tables.get(segment_id)
        if table is None:
            if segment.is_compound():
                # Segments written before the writer stopped packing its files (and by Whoosh's own writer) are
                # one compound file: its parts are read through it, as Whoosh's SegmentReader does.
                storage = self._compound_files[segment_id] = segment.open_compound_file(storage)
            table = self._tables[segment_id] = segment.codec().terms_reader(storage, segment)
        return table

    def close(self) -> None:
        """Close every table: after an optimize, whose merged-away files hold the text of people purged since."""
        self._keep_only([])

    def _keep_only(self, segments) -> None:
        """Close the tables of segments merged away (or of another generation's)."""
        live = {segment.segment_id() for segment in segments}
        for name in [name for name in self._tables if name not in live]:
            self._tables.pop(name).close()
            if name in self._compound_files:
                self._compound_files.pop(name).close()
