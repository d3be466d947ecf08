"""The worker: extract the text of new uploads, drain the index outbox and, if chosen, purge expired dossiers daily."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flask import Flask

from .backends import backends
from .extensions import db
from .services import settings
from .services.deadline_purge import purge_expired_due
from .services.text_extraction import extract_pending

log = logging.getLogger(__name__)
POLL_SECONDS = 5.0


@dataclass
class WorkDone:
    """What one round of the worker did."""

    extracted: int
    indexed: int
    purged: int = 0

    @property
    def anything(self) -> bool:
        """Tell whether the round found work (so the next one should not wait)."""
        return bool(self.extracted or self.indexed or self.purged)


def work_once(app: Flask, *, extraction_batch: int = 5) -> WorkDone:
    """Extract a few pending versions and drain the outbox, in app's context."""
    with app.app_context():
        chosen = backends()
        try:
            extracted = extract_pending(db.session, chosen.blobs, ocr=chosen.config.OCR, limit=extraction_batch)
            purged = _purge_due(chosen) if chosen.config.PURGE_IN_WORKER else 0
        finally:
            db.session.remove()
        return WorkDone(extracted, chosen.drainer.drain(), purged)


def _purge_due(chosen) -> int:
    """Purge a batch of expired dossiers unless today's run is done; return how many were purged."""
    run = purge_expired_due(db.session, chosen.workflow, chosen.blobs, chosen.index, chosen.drainer.drain,
                            id_hash_key=chosen.config.ID_HASH_KEY, deadline=settings.effective(db.session, chosen.config).CONFIRMATION_DEADLINE)
    if run is not None and (run.purged or run.skipped):
        log.info("deadline purge: %d purged, %d skipped", len(run.purged), len(run.skipped))
    return len(run.purged) if run is not None else 0


def run(app: Flask, stop: threading.Event, *, poll_seconds: float = POLL_SECONDS, on_round=lambda done: None) -> None:
    """Work until stop is set; sleep when idle until a commit wakes the drainer or poll_seconds pass."""
    with app.app_context():
        wake = backends().drainer.wake
    while not stop.is_set():
        try:
            done = work_once(app)
            on_round(done)
        except Exception:  # a database outage must not end the worker: retry on the next round
            log.exception("worker round failed")
            done = WorkDone(0, 0)
        if not done.anything:
            wake.wait(poll_seconds)
            wake.clear()


def start_thread(app: Flask) -> tuple[threading.Thread, threading.Event]:
    """Run the worker in a daemon thread of this process (the embedded default); return it and its stop event."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(app, stop), name="kjdms-worker", daemon=True)
    thread.start()
    return thread, stop
