"""The worker: extract the text of new uploads, drain the index outbox, deliver notices and, if chosen, purge daily.

The outbox has a thread of its own (index_continuously): an extraction with OCR takes seconds,
and a change should reach the search index well within one. So has the merging of the index's
small segments (merge_continuously): a merge must not hold up the next batch.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask

from .backends import backends
from .extensions import db
from .services import settings
from .models import utcnow
from .services.deadline_purge import purge_expired_due
from .services.notice_delivery import Channels, deliver_due, dispatch_new
from .services.notice_schedule import Schedule, queue_scheduled
from .services.text_extraction import extract_pending, retry_failed

log = logging.getLogger(__name__)
POLL_SECONDS = 5.0
# The calendar's notices and the retry of failed extractions look at whole tables: not every round.
CALENDAR_SECONDS = 300.0
# Woken by a commit, the indexer waits this long for more to arrive, then writes them all in one commit.
GATHER_SECONDS = 0.1
# Commits of other processes wake nobody here: the indexer looks at the outbox this often all the same.
INDEX_POLL_SECONDS = 0.5


@dataclass
class WorkDone:
    """What one round of the worker did."""

    extracted: int
    indexed: int
    purged: int = 0
    notified: int = 0
    queued: int = 0

    @property
    def anything(self) -> bool:
        """Tell whether the round found work (so the next one should not wait)."""
        return bool(self.extracted or self.indexed or self.purged or self.notified or self.queued)


def work_once(app: Flask, *, extraction_batch: int = 5, calendar: bool = True, drain: bool = True) -> WorkDone:
    """Extract a few pending versions, drain the outbox (unless the indexer thread does) and deliver due notices.

    With calendar, also queue the reminders, digests and escalations due and retry the extractions
    whose cause of failure is gone.
    """
    with app.app_context():
        chosen = backends()
        config = chosen.config
        try:
            queued = _calendar(chosen) if calendar else 0
            extracted = extract_pending(db.session, chosen.blobs, ocr=config.OCR, limit=extraction_batch)
            purged = _purge_due(chosen) if config.PURGE_IN_WORKER else 0
            channels = Channels(chosen.mailer, chosen.sms, config.SITE_URL)
            notified = dispatch_new(db.session, channels) + deliver_due(db.session, channels)
        finally:
            db.session.remove()
        return WorkDone(extracted, chosen.drainer.drain() if drain else 0, purged, notified, queued)


def _calendar(chosen) -> int:
    """Queue the notices the calendar calls for now and the extractions worth retrying; return how many."""
    config = chosen.config
    schedule = Schedule(settings.effective(db.session, config).CONFIRMATION_DEADLINE, config.REMINDER_DAYS,
                        config.ESCALATION_DAYS, config.DIGEST_HOUR)
    return (queue_scheduled(db.session, chosen.workflow, schedule, now=utcnow())
            + retry_failed(db.session, chosen.blobs, ocr=config.OCR))


def _purge_due(chosen) -> int:
    """Purge a batch of expired dossiers unless today's run is done; return how many were purged."""
    run = purge_expired_due(db.session, chosen.workflow, chosen.blobs, chosen.index, chosen.drainer.drain,
                            id_hash_key=chosen.config.ID_HASH_KEY, deadline=settings.effective(db.session, chosen.config).CONFIRMATION_DEADLINE)
    if run is not None and (run.purged or run.skipped):
        log.info("deadline purge: %d purged, %d skipped", len(run.purged), len(run.skipped))
    return len(run.purged) if run is not None else 0


def index_continuously(app: Flask, stop: threading.Event, *, gather_seconds: float = GATHER_SECONDS,
                       poll_seconds: float = INDEX_POLL_SECONDS, on_round=lambda done: None) -> None:
    """Drain the outbox until stop is set: woken by a commit, after gather_seconds; else every poll_seconds.

    Small segments are merged by a merger thread of its own meanwhile, so that no change waits for a merge.
    """
    with app.app_context():
        drainer = backends().drainer
    merger = threading.Thread(target=merge_continuously, args=(drainer, stop), name="kjdms-merger", daemon=True)
    merger.start()
    try:
        while not stop.is_set():
            if drainer.arrived.wait(poll_seconds):
                # What arrives meanwhile goes into the same Whoosh commit: one commit a batch, not one a change.
                stop.wait(gather_seconds)
            # Cleared before the drain: a commit during it wakes the next round.
            drainer.arrived.clear()
            with app.app_context():
                indexed = drainer.drain(merge=False)  # logs and keeps the rows on any failure
            if indexed:
                on_round(WorkDone(0, indexed))
    finally:
        drainer.drained.set()  # the merger sleeps until a drain; it then sees stop
        merger.join()


def merge_continuously(drainer, stop: threading.Event) -> None:
    """Merge the index's small segments after each drain until stop is set, then down to the idle limit once more."""
    while True:
        drainer.drained.wait()
        drainer.drained.clear()
        stopping = stop.is_set()
        try:
            # Each merge takes the smallest few; after a burst of batches several may be due. While changes
            # wait, fewer merges: a merge's work in this process slows the indexer's too (one GIL).
            while drainer.index.merge_small_segments(busy=not stopping and drainer.arrived.is_set()):
                if stop.is_set() and not stopping:
                    break  # stopping now: the last round below merges with the idle limit
        except Exception:  # the index is derived data: a failed merge leaves the segments as they were
            log.exception("merging the index's small segments failed")
        if stopping:
            return


def run(app: Flask, stop: threading.Event, *, poll_seconds: float = POLL_SECONDS, on_round=lambda done: None) -> None:
    """Work until stop is set, the outbox drained by an indexer thread; sleep when idle until a commit or poll_seconds."""
    with app.app_context():
        wake = backends().drainer.wake
    indexer = threading.Thread(target=index_continuously, args=(app, stop), kwargs={"on_round": on_round},
                               name="kjdms-indexer", daemon=True)
    indexer.start()
    calendar_due = 0.0
    while not stop.is_set():
        try:
            calendar = time.monotonic() >= calendar_due
            done = work_once(app, calendar=calendar, drain=False)
            if calendar:
                calendar_due = time.monotonic() + CALENDAR_SECONDS
            on_round(done)
        except Exception:  # a database outage must not end the worker: retry on the next round
            log.exception("worker round failed")
            done = WorkDone(0, 0)
        if not done.anything:
            wake.wait(poll_seconds)
            wake.clear()
    indexer.join()


def start_thread(app: Flask) -> tuple[threading.Thread, threading.Event]:
    """Run the worker and its indexer in daemon threads of this process (the embedded default); return it and its stop event."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(app, stop), name="kjdms-worker", daemon=True)
    thread.start()
    return thread, stop
