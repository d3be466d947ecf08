"""The search index on Whoosh: a live generation behind a symlink, rebuilt beside it and swapped in."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Iterable

from whoosh.fields import ID, KEYWORD, NUMERIC, STORED, Schema
from whoosh.query import And, NullQuery, Or, Term

from .analysis import text_query
from .base import TEXT_FIELDS, VALUE_FIELDS, IndexResults, SearchRequest
from .whoosh_keys import KeyLookup
from .whoosh_matching import run_search
from .whoosh_merging import BUSY_SEGMENT_LIMIT, SEGMENT_LIMIT, segments_to_merge
from .whoosh_side_merge import MERGE_LOCK, SIDE_FOLDER, SideMerge, drop_side_folder
from .whoosh_storage import create_index, open_index
from .whoosh_writing import CJKText, FastSegmentWriter, InliningCodec

LIVE, REBUILD, PROGRESS = "live", "rebuild", "progress.json"
# A rebuild commits a segment (its checkpoint) once the writer's posting pool holds about this much.
# Fewer, larger segments search faster, and merging them later costs as much as indexing did. With
# bench/search.py's dossiers (~500 characters each) a segment holds ~18,000, and the peak RSS of a
# rebuild of 100,000 is ~690 MiB.
REBUILD_SEGMENT_MB = 256
WRITE_LOCK_TIMEOUT = 10.0
# Readers tried in turn when commits keep merging segments away under a search.
READ_ATTEMPTS = 4


def schema() -> Schema:
    """Return the index's fields."""
    # CJKText: the Chinese analyzer, frequencies without positions, the normalised text in a column
    # (whoosh_writing). The schema is pickled into each index: the class must keep its name and module.
    fields = {name: CJKText() for name in TEXT_FIELDS}
    fields.update({name: ID(sortable=True) for name in VALUE_FIELDS})
    return Schema(
        key=ID(stored=True, unique=True),
        stamp=STORED,
        id_hash=ID,
        region_path=KEYWORD,
        job_types=KEYWORD,
        changed=NUMERIC(int, bits=64, sortable=True, signed=False),
        **fields,
    )


def whoosh_fields(document: dict) -> dict:
    """Return the Whoosh field values of a document built by services.indexing."""
    fields = {"key": str(document["dossier_id"]), "stamp": document["stamp"],
              "id_hash": document.get("id_hash") or "", "changed": int(document["changed"]),
              "region_path": " ".join(document["region_path"]), "job_types": " ".join(document["job_types"])}
    for name in TEXT_FIELDS:
        value = document.get(name) or ""
        fields[name] = "\n".join(value) if isinstance(value, (list, tuple)) else value
    for name in VALUE_FIELDS:
        fields[name] = str(document.get(name) or "")
    return fields


def scope_query(grants):
    """Return the query for the dossiers the grants reach, or None when they reach none."""
    alternatives = [
        And([Or([Term("region_path", key) for key in grant.region_keys]),
             Or([Term("state", state) for state in grant.states])])
        for grant in grants if grant.region_keys and grant.states
    ]
    return Or(alternatives).normalize() if alternatives else None


def matching_query(request: SearchRequest):
    """Return the query for what was typed (text pieces and ID hashes, all required), or None for nothing typed."""
    parts = [text_query(TEXT_FIELDS, request.text)] if request.text.strip() else []
    parts += [Term("id_hash", id_hash) for id_hash in request.id_hashes]
    parts = [part for part in parts if part is not NullQuery]
    if not parts and (request.text.strip() or request.id_hashes):
        return NullQuery  # something was typed, but nothing that can match (only marks, say)
    return And(parts).normalize() if parts else None


def replace_documents(writer, documents: Iterable[dict], deleted_ids: Iterable[int], *, optimize: bool = False,
                      keys: KeyLookup | None = None) -> None:
    """Remove deleted_ids and add or replace documents through writer, committing all or nothing.

    With keys, the old versions are found through its open term tables, not a reader opened on every segment.
    """
    documents = list(documents)
    try:
        if keys is None:
            for dossier_id in deleted_ids:
                writer.delete_by_term("key", str(dossier_id))
            for document in documents:
                writer.update_document(**whoosh_fields(document))
        else:
            keys.delete_keys(writer, [str(dossier_id) for dossier_id in deleted_ids]
                             + [str(document["dossier_id"]) for document in documents])
            for document in documents:
                writer.add_document(**whoosh_fields(document))
    except BaseException:
        writer.cancel()
        raise
    # No merging here: the indexer merges small segments after the commit (whoosh_merging).
    writer.commit(optimize=optimize, merge=False)
    if optimize and keys is not None:
        keys.close()  # the files it kept open are gone from the index; their disk space goes only when closed


def _write_json(path: Path, data: dict) -> None:
    """Replace path with data atomically."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


class WhooshSearchIndex:
    """SearchIndex on Whoosh files under folder: folder/live → the generation in use."""

    def __init__(self, folder: Path, *, writer_memory_mb: int = 128):
        self.folder = Path(folder)
        self.writer_memory_mb = writer_memory_mb
        self._write_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._local = threading.local()
        self._index = None
        self._generation = None
        # Per-segment bitsets and columns for whoosh_matching, kept while the segment is live.
        self._segment_data: dict = {}
        # The writes' term tables for finding old versions (used under _write_lock only).
        self._keys = KeyLookup()

    # -- the live generation ---------------------------------------------------------------

    def _live_target(self) -> str:
        """Return the generation folder live points at, creating an empty first one if need be."""
        live = self.folder / LIVE
        try:
            return os.readlink(live)
        except FileNotFoundError:
            pass
        self.folder.mkdir(parents=True, exist_ok=True)
        generation = f"gen-{time.time_ns()}"
        (self.folder / generation).mkdir()
        create_index(self.folder / generation, schema())
        try:
            os.symlink(generation, live)
        except FileExistsError:
            # Another process made the first generation at the same moment: use theirs.
            shutil.rmtree(self.folder / generation, ignore_errors=True)
        return os.readlink(live)

    def _live(self):
        """Return the open live index, reopening it when a rebuild swapped another in."""
        target = self._live_target()
        with self._open_lock:
            if self._generation != target:
                self._index = open_index(self.folder / target)
                self._generation = target
            return self._index

    def _searcher(self):
        """Return this thread's searcher on the newest commit of the live index."""
        index = self._live()
        local = self._local
        searcher = getattr(local, "searcher", None)
        if searcher is not None and local.generation == self._generation and searcher.up_to_date():
            return searcher
        # Not Searcher.refresh(): reusing the reader of an empty index fails inside Whoosh 2.7.5.
        if searcher is not None:
            searcher.close()
        local.searcher, local.generation = index.searcher(), self._generation
        return local.searcher

    # -- SearchIndex ----------------------------------------------------------------------

    def write(self, documents: Iterable[dict], deleted_ids: Iterable[int] = (), *, optimize: bool = False) -> None:
        """Add or replace documents and remove deleted_ids in one Whoosh commit."""
        with self._write_lock:
            writer = FastSegmentWriter(self._live(), limitmb=self.writer_memory_mb, timeout=WRITE_LOCK_TIMEOUT,
                                       codec=InliningCodec())
            replace_documents(writer, documents, deleted_ids, optimize=optimize, keys=self._keys)

    def merge_small_segments(self, *, busy: bool = False) -> bool:
        """Merge the smallest segments when there are too many (fewer merges while busy); return whether it merged.

        The merged segment is built beside the live ones while writes go on; only its swap holds the writer.
        """
        limit = BUSY_SEGMENT_LIMIT if busy else SEGMENT_LIMIT
        index, generation = self._live(), self._generation
        chosen = segments_to_merge(index._segments(), limit)
        if not chosen:
            return False
        merge_lock = index.lock(MERGE_LOCK)
        if not merge_lock.acquire():
            return False  # another thread or process is merging: one merge at a time
        try:
            merge = SideMerge(self.folder / generation / SIDE_FOLDER, chosen)
            merge.build(index, self.writer_memory_mb)
            with self._write_lock:
                if self._live_target() != generation:  # a rebuild was swapped in meanwhile
                    drop_side_folder(merge.folder)
                    return False
                return merge.swap_in(index, WRITE_LOCK_TIMEOUT)
        finally:
            merge_lock.release()

    def purge_deleted(self) -> None:
        """Merge every segment, so deleted documents' terms and stored fields leave the files; drop old generations."""
        merge_lock = self._live().lock(MERGE_LOCK)
        # A merge in flight holds copies of documents in its own folder: wait for it, then drop what is left.
        merge_lock.acquire(blocking=True)
        try:
            self.write([], optimize=True)
            drop_side_folder(self.folder / self._generation / SIDE_FOLDER)
        finally:
            merge_lock.release()
        self.remove_stale_generations()

    def remove_stale_generations(self) -> list[str]:
        """Delete the generations older than the live one (a crash after a swap leaves its predecessor); return them."""
        # Only older ones: a newer folder may be a rebuild being swapped in by another process right now.
        live = _generation_time(self._live_target())
        stale = [path.name for path in self.folder.glob("gen-*")
                 if path.is_dir() and _generation_time(path.name) < live]
        for name in stale:
            shutil.rmtree(self.folder / name, ignore_errors=True)
        return stale

    def _reading(self, read):
        """Return read(searcher), again on a newer reader if a commit merged this one's segments away meanwhile."""
        for _ in range(READ_ATTEMPTS - 1):
            searcher = self._searcher()
            try:
                return read(searcher)
            except (OSError, TypeError, ValueError, KeyError):
                # Whoosh reads some segment files only when first needed: a merge committed after this reader
                # opened deletes them, and the read fails half-way (FileNotFoundError, or None where data was).
                # Only a reader that is no longer current may fail so; on a current one it is a real error.
                if searcher.up_to_date():
                    raise
                self.close()
        return read(self._searcher())

    def search(self, request: SearchRequest) -> IndexResults:
        """Return the page of matches within the request's scope, with facet counts over all of them."""
        # Not Searcher.search(groupedby=...): see whoosh_matching for what that cost at 100,000 dossiers.
        return self._reading(lambda searcher: run_search(
            searcher, self._segment_data, request, TEXT_FIELDS, (*VALUE_FIELDS, "region_path")))

    def stamps(self) -> dict[int, str]:
        """Return every indexed dossier id with its document's stamp."""
        return self._reading(lambda searcher: {int(fields["key"]): fields["stamp"]
                                               for fields in searcher.all_stored_fields()})

    def start_rebuild(self, outbox_mark: int = 0) -> WhooshRebuild:
        """Return the unfinished rebuild to resume, or a new empty one remembering outbox_mark."""
        return WhooshRebuild(self, outbox_mark)

    def doc_count(self) -> int:
        """Return how many dossiers the live index holds."""
        return self._reading(lambda searcher: searcher.doc_count())

    def close(self) -> None:
        """Close this thread's searcher."""
        searcher = getattr(self._local, "searcher", None)
        if searcher is not None:
            searcher.close()
            self._local.searcher = None


def _generation_time(name: str) -> int:
    """Return the creation time in a generation folder's name (gen-<ns>), or 0 for another name."""
    stamp = name.removeprefix("gen-")
    return int(stamp) if stamp.isdigit() else 0


class WhooshRebuild:
    """A new generation in folder/rebuild, with a progress file naming the last dossier id it holds."""

    def __init__(self, live: WhooshSearchIndex, outbox_mark: int):
        self.live = live
        self.folder = live.folder / REBUILD
        progress = self.folder / PROGRESS
        if progress.exists():
            saved = json.loads(progress.read_text(encoding="utf-8"))
            self.resume_after, self.outbox_mark = saved["last_id"], saved["outbox_mark"]
            self.index = open_index(self.folder)
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            self.index = create_index(self.folder, schema())
            self.resume_after, self.outbox_mark = 0, outbox_mark
            self._save_progress()
        self._writer = None

    def add(self, documents: list[dict], last_id: int) -> None:
        """Add documents to the new generation; once a segment's worth is held, commit and record last_id as done.

        resume_after moves on at once; the progress file, which a resumed rebuild reads,
        only when the documents are committed.
        """
        writer = self._writer
        if writer is None:
            # Twice the segment's size: the pool spills to disk only if one chunk is huge (spilling doubles the time).
            writer = self._writer = FastSegmentWriter(self.index, limitmb=2 * REBUILD_SEGMENT_MB)
        held = writer.pool.held_bytes()
        try:
            for document in documents:
                writer.add_document(**whoosh_fields(document))
        except BaseException:
            self._writer = None
            writer.cancel()
            raise
        self.resume_after = last_id
        grown = writer.pool.held_bytes() - held
        if writer.pool.held_bytes() + grown > REBUILD_SEGMENT_MB * 2**20:
            self._commit()

    def _commit(self) -> None:
        """Commit the documents added so far as one segment, then record resume_after as done."""
        writer, self._writer = self._writer, None
        if writer is not None:
            # No merging: a Whoosh merge re-sorts every posting of the segments it merges.
            writer.commit(merge=False)
        # The checkpoint follows the commit: a crash between them redoes one segment, never skips one.
        self._save_progress()

    def _save_progress(self) -> None:
        """Record how far the rebuild got, and which outbox rows it must replay at the end."""
        _write_json(self.folder / PROGRESS, {"last_id": self.resume_after, "outbox_mark": self.outbox_mark})

    def write(self, documents: Iterable[dict], deleted_ids: Iterable[int] = ()) -> None:
        """Replace documents changed while the rebuild ran (the outbox replay before the swap)."""
        # Committed first: an update only replaces documents of committed segments.
        self._commit()
        replace_documents(FastSegmentWriter(self.index, limitmb=self.live.writer_memory_mb), documents, deleted_ids)

    def swap(self) -> None:
        """Rename the new generation into place and point live at it in one rename."""
        self._commit()
        # Not optimized into one segment: a merge re-pools every posting (at 5,000 dossiers the optimize
        # took longer than the indexing, 58 s against 43 s), and the rebuild leaves only a few segments.
        (self.folder / PROGRESS).unlink()
        folder = self.live.folder
        generation = f"gen-{time.time_ns()}"
        os.replace(self.folder, folder / generation)
        link = folder / f"{LIVE}.new"
        link.unlink(missing_ok=True)
        os.symlink(generation, link)
        os.replace(link, folder / LIVE)
        self.live.remove_stale_generations()
