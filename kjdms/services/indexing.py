"""Keep the search index in step with the database: the documents, and the drain that empties the outbox.

The outbox rows are queued by services/change_tracking.py in the transaction that changed a dossier.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, object_session, selectinload

from ..models import Attachment, Dossier, IndexOutbox, Region, as_utc, utcnow
from ..search import NO_REGION, SearchIndex
from ..vocabulary import PURGED_STATE
from .credit import live_person_ids
from .identity import id_number_hash

log = logging.getLogger(__name__)

DRAIN_BATCH = 500
# Indexed rows stay this long, so a reindex can replay what changed while it ran.
KEEP_INDEXED_ROWS = timedelta(days=1)
# A plain (unmapped) attribute load_dossiers sets on each dossier for dossier_document to read.
LIVE_CREDIT = "_kjdms_live_credit"


def is_indexed(dossier: Dossier) -> bool:
    """Tell whether dossier belongs in the index (purged dossiers and checked-in copies do not)."""
    return dossier.state != PURGED_STATE and dossier.checked_in_at is None


def dossier_document(dossier: Dossier, id_hash_key: str) -> dict:
    """Return the index document of dossier: what search matches, filters and counts on."""
    person, region = dossier.person, dossier.region
    texts = [version.extracted_text for attachment in dossier.attachments
             if (version := attachment.current) is not None and version.extracted_text]
    numbers = [dossier.employer_uscc, dossier.employer_org_code, dossier.qualification_certificate_number,
               dossier.legacy_certificate_number, dossier.phone]
    document = {
        "dossier_id": dossier.id,
        "name": person.name or "",
        "employer": dossier.employer_name or "",
        "numbers": [number for number in numbers if number],
        "region_text": region.path_name if region else "",
        "attachments": texts,
        "region_path": [str(node.id) for node in region.ancestors_and_self()] if region else [NO_REGION],
        "region": str(region.id) if region else NO_REGION,
        "state": dossier.state,
        "qualification": dossier.qualification_level or "none",
        "education": dossier.education or "",
        "scope": dossier.scope_category or "",
        "job_types": sorted(dossier.job_types or []),
        "year": str(as_utc(dossier.created_at).year),
        "has_credit": "1" if _has_live_credit(dossier) else "0",
        "kind": "working_copy" if dossier.is_working_copy else "dossier",
        # Only a keyed hash: the full number finds its dossier, a prefix finds nothing.
        "id_hash": id_number_hash(id_hash_key, person.id_number) if person.id_number else "",
        # Microseconds: dossiers handled in the same second still sort by when.
        "changed": int(as_utc(dossier.state_changed_at).timestamp() * 1_000_000),
    }
    canonical = json.dumps(document, sort_keys=True, ensure_ascii=False)
    document["stamp"] = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    return document


def _has_live_credit(dossier: Dossier) -> bool:
    """Tell whether dossier's person has a live credit record, as load_dossiers found it (else ask now)."""
    found = getattr(dossier, LIVE_CREDIT, None)
    if found is None:
        found = dossier.person_id in live_person_ids(object_session(dossier), [dossier.person_id])
    return found


def load_dossiers(session, dossier_ids) -> list[Dossier]:
    """Load the dossiers with everything their documents read, in a fixed number of queries."""
    # Regions are few: with all of them in the session, every region path resolves without SQL.
    session.scalars(select(Region)).all()
    dossiers = session.scalars(
        select(Dossier).where(Dossier.id.in_(list(dossier_ids))).order_by(Dossier.id).options(
            selectinload(Dossier.person),
            selectinload(Dossier.attachments).selectinload(Attachment.versions),
        )).all()
    # One query for the batch's credit files, not one per document; refreshed on every load.
    credited = live_person_ids(session, {dossier.person_id for dossier in dossiers})
    for dossier in dossiers:
        setattr(dossier, LIVE_CREDIT, dossier.person_id in credited)
    return dossiers


def documents_for(session, dossier_ids, id_hash_key: str) -> tuple[list[dict], list[int]]:
    """Return the documents to write for dossier_ids and the ids to remove from the index."""
    dossiers = {dossier.id: dossier for dossier in load_dossiers(session, dossier_ids)}
    documents = [dossier_document(dossier, id_hash_key) for dossier in dossiers.values() if is_indexed(dossier)]
    removed = [dossier_id for dossier_id in dossier_ids
               if dossier_id not in dossiers or not is_indexed(dossiers[dossier_id])]
    return documents, removed


# -- the drain ---------------------------------------------------------------------------------

def drain_outbox(engine, index: SearchIndex, id_hash_key: str, *, batch: int = DRAIN_BATCH, merge: bool = True) -> int:
    """Index every queued dossier, a batch to a commit; return how many outbox rows were done.

    On an index failure the rows stay queued (with the error) for the next drain. Its own
    plain Session: the drain must not queue rows for what it writes itself. With merge, the index
    merges small segments here, not in the commit that wrote them (40% of its time): once the outbox
    is empty, or after a batch if they grew too many even for a busy moment (under a steady stream it
    is never empty). The worker's indexer passes merge=False: its merger thread merges meanwhile.
    """
    done = 0
    while True:
        with Session(engine) as session:
            rows = session.execute(
                select(IndexOutbox.id, IndexOutbox.dossier_id).where(IndexOutbox.indexed_at.is_(None))
                .order_by(IndexOutbox.id).limit(batch)).all()
            if not rows:
                break
            row_ids = [row.id for row in rows]
            try:
                documents, removed = documents_for(session, {row.dossier_id for row in rows}, id_hash_key)
                index.write(documents, removed)
            except Exception as error:  # the index is derived data: never fail the caller's commit
                session.rollback()
                log.exception("indexing %d queued dossiers failed; they stay queued", len(rows))
                session.execute(update(IndexOutbox).where(IndexOutbox.id.in_(row_ids)).values(
                    attempts=IndexOutbox.attempts + 1, last_error=f"{type(error).__name__}: {error}"[:1000]))
                session.commit()
                return done
            now = utcnow()
            session.execute(update(IndexOutbox).where(IndexOutbox.id.in_(row_ids)).values(indexed_at=now))
            session.execute(delete(IndexOutbox).where(IndexOutbox.indexed_at < now - KEEP_INDEXED_ROWS))
            session.commit()
            done += len(rows)
        if merge:
            index.merge_small_segments(busy=True)
    if merge:
        index.merge_small_segments()
    return done


def queued_count(session) -> int:
    """Return how many outbox rows wait for the indexer."""
    return session.scalar(select(func.count()).select_from(IndexOutbox).where(IndexOutbox.indexed_at.is_(None)))


class OutboxDrainer:
    """Drains the outbox, one drain at a time in this process; each commit that queued rows wakes the indexer.

    Off the request path by default: notify only wakes the indexer thread (worker.index_continuously),
    which drains what gathered in one batch. With after_commit (KJDMS_INDEX_AFTER_COMMIT=1, kept for
    scripts and the tests) notify drains at once, in the thread that committed.
    """

    def __init__(self, engine_getter, index: SearchIndex, id_hash_key: str, *, after_commit: bool = False):
        self.engine_getter, self.index, self.id_hash_key = engine_getter, index, id_hash_key
        self.after_commit = after_commit
        # Three sleepers: the worker (new uploads to extract, notices to send), the indexer (rows queued)
        # and the worker's merger (a drain wrote segments).
        self.wake = threading.Event()
        self.arrived = threading.Event()
        self.drained = threading.Event()
        self._lock = threading.Lock()
        self._pending = threading.Event()

    def notify(self) -> None:
        """Called after a commit that queued rows: wake the worker and the indexer (and drain now, inline mode)."""
        self.wake.set()
        self.arrived.set()
        if self.after_commit:
            self.drain()

    def drain(self, *, merge: bool = True) -> int:
        """Drain the outbox (and merge small segments, with merge); if another thread is draining, leave it a note."""
        self._pending.set()
        done = 0
        while self._pending.is_set() and self._lock.acquire(blocking=False):
            try:
                self._pending.clear()
                done += drain_outbox(self.engine_getter(), self.index, self.id_hash_key, merge=merge)
            except Exception:  # a database hiccup: the rows stay for the next drain
                log.exception("draining the index outbox failed")
            finally:
                self._lock.release()
        if done:
            self.drained.set()
        return done
