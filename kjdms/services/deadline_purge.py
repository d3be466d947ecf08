"""The deadline purge (辽财会〔2019〕116号 二（三）): legacy dossiers not confirmed by the deadline lose their personal data."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable, Iterable

from sqlalchemy import and_, func, select
from sqlalchemy.orm import selectinload

from ..blobs import BlobStore
from ..local_time import end_of_day, local_date
from ..models import AuditEvent, Dossier, IndexOutbox, Person, Tombstone, as_utc, utcnow
from ..vocabulary import PURGED_STATE
from ..permissions import SYSTEM
from ..search import SearchIndex
from ..workflow import TransitionRefused, WorkflowEngine
from . import audit
from .lifecycle import DEADLINE_LEGAL_BASIS, purge_dossier
from .transaction import ConflictError

log = logging.getLogger(__name__)
# The notice's days are Beijing days: the deadline 2020-12-31 has passed at 2021-01-01 00:00 there.
DEADLINE_REASON = "逾期未进行信息更新和确认，视为不再从事会计工作"
# Audit events with counts only: each run (the worker's "done today"), and each cleanup (its bookmark).
RUN_COMPLETE, RUN_PARTIAL = "deadline_purge.complete", "deadline_purge.partial"
CLEANUP = "deadline_purge.cleanup"
WORKER_BATCH = 100


def deadline_passed(deadline: date, now: datetime | None = None) -> bool:
    """Tell whether the deadline day is over in Beijing: the purge may start the day after it."""
    return local_date(now or utcnow()) > deadline


def _unconfirmed(deadline: date):
    """Return the SQL condition for a legacy dossier never confirmed, which existed before the deadline ended.

    to_confirm is cleared by the person's submit and set again only by a retract before any
    approval (services.lifecycle): a legacy person whose submission was rejected has confirmed
    (the rejection is the finance department's review, not the person's failure to confirm).
    A record imported after the deadline never had the chance to be confirmed in time: it waits
    for a new deadline instead of being purged at once.
    """
    return and_(Person.is_legacy.is_(True), Dossier.to_confirm.is_(True), Dossier.baseline_id.is_(None),
                Dossier.state != PURGED_STATE, Dossier.created_at < end_of_day(deadline))


def expired_dossier_ids(session, deadline: date, *, now: datetime | None = None,
                        limit: int | None = None) -> list[int]:
    """Return the ids of the legacy dossiers still unconfirmed after deadline, oldest first (none before it passed)."""
    if not deadline_passed(deadline, now):
        return []
    query = (select(Dossier.id).join(Person, Dossier.person_id == Person.id).where(_unconfirmed(deadline))
             .order_by(Dossier.id))
    return session.scalars(query.limit(limit) if limit else query).all()


def listed_dossiers(session, dossier_ids) -> list[Dossier]:
    """Return the dossiers of dossier_ids with what a listing shows (person, region), in id order."""
    return session.scalars(select(Dossier).where(Dossier.id.in_(list(dossier_ids))).order_by(Dossier.id).options(
        selectinload(Dossier.person), selectinload(Dossier.region))).all()


def expired_dossiers(session, deadline: date, *, now: datetime | None = None,
                     limit: int | None = None) -> list[Dossier]:
    """Return the legacy dossiers still unconfirmed after deadline, oldest first (none before it has passed)."""
    return listed_dossiers(session, expired_dossier_ids(session, deadline, now=now, limit=limit))


def imported_after_deadline(session, deadline: date) -> int:
    """Return how many unconfirmed legacy dossiers were created after deadline (they are not purged)."""
    return session.scalar(select(func.count()).select_from(Dossier).join(Person, Dossier.person_id == Person.id).where(
        Person.is_legacy.is_(True), Dossier.to_confirm.is_(True), Dossier.baseline_id.is_(None),
        Dossier.state != PURGED_STATE, Dossier.created_at >= end_of_day(deadline)))


def _still_expired(session, dossier_id: int, deadline: date) -> bool:
    """Re-check one dossier just before its purge: the person may have confirmed since the listing."""
    return session.scalar(select(Dossier.id).join(Person, Dossier.person_id == Person.id).where(
        Dossier.id == dossier_id, _unconfirmed(deadline))) is not None


@dataclass
class PurgeRun:
    """What one run of the deadline purge did."""

    purged: list[int] = field(default_factory=list)
    # (dossier id, why it was left alone): confirmed or purged by someone else meanwhile.
    skipped: list[tuple[int, str]] = field(default_factory=list)
    interrupted: bool = False
    cleaned: bool = False
    # Purged dossiers whose index entries still wait in the outbox (the index failed): retried next run.
    index_pending: int = 0
    # None on databases without a WAL file (PostgreSQL).
    wal_truncated: bool | None = None


def _purge_one(session, workflow, blobs, dossier_id: int, deadline: date, id_hash_key: str) -> str | None:
    """Purge one dossier in its own transaction; return why it was skipped, or None when purged."""
    # A fresh read each time: nothing stale decides a purge (the identity map is weak: memory stays bounded).
    session.expire_all()
    dossier = session.get(Dossier, dossier_id)
    if dossier is None or not _still_expired(session, dossier_id, deadline):
        return "已确认或已删除"
    try:
        # The version read here: a confirmation committed in between makes this purge a conflict.
        purge_dossier(session, workflow, blobs, dossier, SYSTEM, DEADLINE_REASON, id_hash_key=id_hash_key,
                      legal_basis=DEADLINE_LEGAL_BASIS, expected_version=dossier.lock_version)
    except ConflictError:
        return "删除时档案被修改，留待下次运行"
    except TransitionRefused as refusal:
        return str(refusal)
    return None


def purge_expired(session, workflow: WorkflowEngine, blobs: BlobStore, index: SearchIndex, drain: Callable[[], int],
                  *, id_hash_key: str, deadline: date, dossier_ids: Iterable[int] | None = None,
                  limit: int | None = None, now: datetime | None = None, defer_cleanup: bool = False,
                  progress: Callable[[int], None] = lambda count: None) -> PurgeRun:
    """Purge the expired dossiers (dossier_ids, re-checked, or all of them), each in its own transaction.

    An interruption leaves the finished purges done and the rest for the next run; the
    cleanup (index segments, WAL) then runs for what was finished, or on the next run.
    defer_cleanup leaves it to the run that finds nothing more to purge (the worker's batches).
    """
    run = PurgeRun()
    if not deadline_passed(deadline, now):
        return run
    if dossier_ids is None:
        dossier_ids = expired_dossier_ids(session, deadline, now=now, limit=limit)
    chosen = list(dossier_ids)[:limit] if limit else list(dossier_ids)
    try:
        for dossier_id in chosen:
            reason = _purge_one(session, workflow, blobs, dossier_id, deadline, id_hash_key)
            if reason is None:
                run.purged.append(dossier_id)
            else:
                run.skipped.append((dossier_id, reason))
            progress(1)
    except KeyboardInterrupt:
        session.rollback()
        run.interrupted = True
    more = run.interrupted or bool(limit and len(chosen) >= limit and expired_dossier_ids(session, deadline, limit=1))
    if (run.purged or needs_cleanup(session)) and not (defer_cleanup and more):
        finish_purges(session, index, drain, run)
    _record_run(session, run, complete=not more)
    return run


def needs_cleanup(session) -> bool:
    """Tell whether purges await the cleanup: made since the last one (a crash, an admin's purge), or it fell short."""
    last_purge = session.scalar(select(func.max(Tombstone.purged_at)))
    if last_purge is None:
        return False
    last = session.scalars(select(AuditEvent).where(AuditEvent.action == CLEANUP)
                           .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc()).limit(1)).first()
    if last is None or as_utc(last_purge) > as_utc(last.occurred_at):
        return True
    detail = last.detail or {}
    return detail.get("wal_truncated") is False or bool(detail.get("index_pending"))


def finish_purges(session, index: SearchIndex, drain: Callable[[], int], run: PurgeRun) -> None:
    """Take the purged dossiers out of the index files and the SQLite WAL, once per batch."""
    # The outbox rows of the purges delete the index entries; drain here too in case no worker runs.
    drain()
    run.index_pending = session.scalar(
        select(func.count()).select_from(IndexOutbox).join(Dossier, Dossier.id == IndexOutbox.dossier_id)
        .where(IndexOutbox.indexed_at.is_(None), Dossier.state == PURGED_STATE))
    # Whoosh only marks documents deleted; merging the segments drops their terms from the files.
    index.purge_deleted()
    session.commit()
    run.wal_truncated = truncate_wal(session)
    run.cleaned = True
    audit.record(session, SYSTEM, CLEANUP, "deadline_purge", None, index_pending=run.index_pending,
                 wal_truncated=run.wal_truncated)
    session.commit()
    if run.index_pending:
        log.warning("%d purged dossiers still wait in the index outbox", run.index_pending)


def truncate_wal(session) -> bool | None:
    """Copy the SQLite WAL into the database and empty it; None when the database is not SQLite.

    With secure_delete on, the database pages hold zeros where purged rows were, but the WAL
    still holds the pages as they were before: only a checkpoint that truncates it drops them.
    """
    engine = session.get_bind()
    if engine.dialect.name != "sqlite":
        return None
    session.commit()  # gives the session's connection back: no transaction of ours holds the WAL
    with engine.connect() as connection:
        busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    if busy:
        log.warning("the SQLite WAL could not be truncated: a reader held it; the next run tries again")
    return not busy


def _record_run(session, run: PurgeRun, *, complete: bool) -> None:
    """Record the run in the audit trail, with counts only."""
    audit.record(session, SYSTEM, RUN_COMPLETE if complete else RUN_PARTIAL, "deadline_purge", None,
                 purged=len(run.purged), skipped=len(run.skipped), interrupted=run.interrupted, cleaned=run.cleaned)
    session.commit()


def ran_today(session, now: datetime | None = None) -> bool:
    """Tell whether a run finished every expired dossier today (Beijing)."""
    today = local_date(now or utcnow())
    start = end_of_day(today - timedelta(days=1))
    return session.scalar(select(AuditEvent.id).where(
        AuditEvent.action == RUN_COMPLETE, AuditEvent.occurred_at >= start).limit(1)) is not None


def purge_expired_due(session, workflow: WorkflowEngine, blobs: BlobStore, index: SearchIndex,
                      drain: Callable[[], int], *, id_hash_key: str, deadline: date,
                      now: datetime | None = None, batch: int = WORKER_BATCH) -> PurgeRun | None:
    """Purge up to batch expired dossiers unless today's run is complete (the worker calls this each round)."""
    if not deadline_passed(deadline, now) or ran_today(session, now):
        return None
    return purge_expired(session, workflow, blobs, index, drain, id_hash_key=id_hash_key, deadline=deadline,
                         limit=batch, now=now, defer_cleanup=True)
