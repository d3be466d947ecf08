"""Rebuild the search index from the database (resumable, swapped in whole) and check it against the database."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ..models import Dossier, IndexOutbox
from ..vocabulary import PURGED_STATE
from ..search import SearchIndex
from .indexing import dossier_document, documents_for, load_dossiers

REINDEX_CHUNK = 1000


def _indexed_ids_after(session, last_id: int, limit: int) -> list[int]:
    """Return the next ids of dossiers that belong in the index, in id order."""
    return session.scalars(
        select(Dossier.id).where(Dossier.id > last_id, Dossier.state != PURGED_STATE,
                                 Dossier.checked_in_at.is_(None))
        .order_by(Dossier.id).limit(limit)).all()


def count_to_index(session, after_id: int = 0) -> int:
    """Return how many dossiers after after_id belong in the index."""
    return session.scalar(select(func.count()).select_from(Dossier).where(
        Dossier.id > after_id, Dossier.state != PURGED_STATE, Dossier.checked_in_at.is_(None)))


def _changed_since(session, outbox_mark: int) -> set[int]:
    """Return the dossiers queued in the outbox after row outbox_mark."""
    return set(session.scalars(select(IndexOutbox.dossier_id).where(IndexOutbox.id > outbox_mark)))


def reindex(session, index: SearchIndex, id_hash_key: str, *, chunk: int = REINDEX_CHUNK,
            progress=lambda done: None, started=lambda resumed_after, total: None) -> int:
    """Rebuild the index beside the live one, then swap it in; return how many dossiers it holds.

    Chunks of dossiers in id order, each committed with a checkpoint, keep memory bounded
    and let an interrupted rebuild resume where it stopped. Changes made while it runs are
    replayed from the outbox before and after the swap.
    """
    mark = session.scalar(select(func.coalesce(func.max(IndexOutbox.id), 0)))
    rebuild = index.start_rebuild(mark)
    started(rebuild.resume_after, count_to_index(session, rebuild.resume_after))
    while ids := _indexed_ids_after(session, rebuild.resume_after, chunk):
        documents = [dossier_document(dossier, id_hash_key) for dossier in load_dossiers(session, ids)]
        rebuild.add(documents, last_id=ids[-1])
        # Nothing of the chunk stays in memory: the session forgets it, the rebuild has committed it.
        session.expunge_all()
        session.rollback()
        progress(len(ids))
    rebuild.write(*documents_for(session, _changed_since(session, rebuild.outbox_mark), id_hash_key))
    last_replayed = session.scalar(select(func.coalesce(func.max(IndexOutbox.id), 0)))
    rebuild.swap()
    # Drains between the replay and the swap wrote to the old generation: replay those too.
    index.write(*documents_for(session, _changed_since(session, last_replayed), id_hash_key))
    session.rollback()
    return count_to_index(session)


@dataclass
class IndexCheck:
    """How the index differs from the database."""

    missing: list[int]  # in the database, not in the index
    stale: list[int]  # in both, but indexed from older content
    extra: list[int]  # in the index, but not (or no longer) to be found

    @property
    def ok(self) -> bool:
        """Tell whether the index matches the database."""
        return not (self.missing or self.stale or self.extra)


def check_index(session, index: SearchIndex, id_hash_key: str, *, chunk: int = REINDEX_CHUNK,
                progress=lambda done: None) -> IndexCheck:
    """Compare each dossier's document with the stamp the index holds for it."""
    indexed = index.stamps()
    missing, stale, last_id = [], [], 0
    while ids := _indexed_ids_after(session, last_id, chunk):
        for dossier in load_dossiers(session, ids):
            stamp = indexed.pop(dossier.id, None)
            if stamp is None:
                missing.append(dossier.id)
            elif stamp != dossier_document(dossier, id_hash_key)["stamp"]:
                stale.append(dossier.id)
        last_id = ids[-1]
        session.expunge_all()
        session.rollback()
        progress(len(ids))
    return IndexCheck(missing, stale, sorted(indexed))


def repair_index(session, index: SearchIndex, id_hash_key: str, check: IndexCheck) -> int:
    """Rewrite the entries check found wrong; return how many."""
    ids = [*check.missing, *check.stale, *check.extra]
    for start in range(0, len(ids), REINDEX_CHUNK):
        index.write(*documents_for(session, ids[start:start + REINDEX_CHUNK], id_hash_key))
        session.expunge_all()
    return len(ids)
