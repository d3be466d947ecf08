"""Workflow transitions per second through kjdms's services against the same rows written through the driver.

    .venv/bin/python bench/workflow_transitions.py [--transitions 300] [--runs 3] [--drain off|inline] [--database-url URL]
    .venv/bin/python bench/workflow_transitions.py --profile   # also where the time of the kjdms side goes
    .venv/bin/python bench/workflow_transitions.py --clients 2 # also each side from 2 processes at once
    .venv/bin/python bench/workflow_transitions.py --clients 4 --clients-as threads   # or 4 threads of this process

A fresh instance (SQLite in a temporary folder, or a fresh schema on --database-url, dropped afterwards) gets
--dossiers complete dossiers (documents uploaded) for kjdms and as many for the baseline. Each run times, one
after the other, --transitions transitions of each side:

- kjdms: a fresh session as a request has, the owner read by id and the dossier by id with what the change reads
  of it (dossier_reads.read_for_change, as the applicant's transition page reads its dossiers), then
  services.lifecycle.fire_transition (submit and retract in turn, the dossiers round-robin): the guard, the
  history row, the audit event on the hash chain, the outbox row, the revision, one commit. With
  `--drain inline` the search index is drained after each commit (KJDMS_INDEX_AFTER_COMMIT=1, the default
  before issue 15), with `--drain off` (now the default) the outbox rows stay for the indexer (KJDMS_INDEX_AFTER_COMMIT=0).
- baseline: the same six rows (the dossier's state, a history row, an audit event linked to the chain head
  read in the transaction, the head moved on, an outbox row, a revision with a fixed snapshot) written with
  hand-written SQL on the driver's own connection, one commit each.

Prints each run's rates and CPU milliseconds per transition, the medians and the ratios kjdms / baseline,
the SQL statements of one kjdms transition, and checks the audit chain both wrote.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import queue
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from flask import current_app  # noqa: E402

from worklist import database  # noqa: E402

from kjdms import create_app  # noqa: E402
from kjdms.backends import get_blob_store, get_workflow  # noqa: E402
from kjdms.config import Config  # noqa: E402
from kjdms.extensions import db  # noqa: E402
from kjdms.models import Dossier, User, utcnow  # noqa: E402
from kjdms.schema import upgrade_schema  # noqa: E402
from kjdms.services import audit_chain  # noqa: E402
from kjdms.services.dossier_reads import read_for_change  # noqa: E402
from kjdms.services.lifecycle import fire_transition  # noqa: E402
from kjdms.services.reference import load_regions  # noqa: E402
from kjdms.services.revisions import snapshot_attachments, snapshot_fields  # noqa: E402
from tests.helpers import applicant, make_id_number, upload_required  # noqa: E402

NEXT = {"draft": ("submit", "submitted"), "submitted": ("retract", "draft")}


def make_app(folder: Path, url: str, drain: str):
    """Return the application on url with the index drain as asked, no environment read."""
    return create_app(Config(environ={}, STORAGE_DIR=folder, DATABASE_URL=url, OCR="0",
                             SECRET_KEY="bench-secret-key", ID_HASH_KEY="bench-id-hash-key",
                             INDEX_AFTER_COMMIT="1" if drain == "inline" else "0"))


def complete_dossiers(count: int) -> list[tuple[int, int]]:
    """Create count complete draft dossiers with their documents; return (dossier id, owner id) of each."""
    workflow, blobs = get_workflow(), get_blob_store()
    made = []
    for number in range(count):
        dossier, owner = applicant(id_number=make_id_number(), password=None)
        upload_required(workflow, blobs, dossier, owner, seed=number)
        made.append((dossier.id, owner.id))
    db.session.remove()
    return made


def through_kjdms(pairs: list[tuple[int, int]], count: int, times: list[float] | None = None) -> float:
    """Fire count transitions round-robin over pairs; return transitions per second (each one's seconds to times)."""
    workflow = get_workflow()
    started = time.perf_counter()
    for number in range(count):
        began = time.perf_counter()
        dossier_id, owner_id = pairs[number % len(pairs)]
        db.session.remove()
        owner, dossier = db.session.get(User, owner_id), read_for_change(db.session, dossier_id)
        fire_transition(db.session, workflow, dossier, NEXT[dossier.state][0], owner)
        if times is not None:
            times.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - started
    db.session.remove()
    return count / elapsed


class DriverBaseline:
    """The rows of one transition written with hand-written SQL on a raw DB-API connection."""

    def __init__(self, engine, pairs: list[tuple[int, int]]):
        self.connection = engine.raw_connection()
        self.postgres = engine.dialect.name == "postgresql"
        self.pairs, self.states = pairs, {}
        with db.session.no_autoflush:
            for dossier_id, _ in pairs:
                dossier = db.session.get(Dossier, dossier_id)
                self.states[dossier_id] = dossier.state
        # The snapshot is computed once: the baseline writes the row, it does not read the dossier again.
        first = db.session.get(Dossier, pairs[0][0])
        self.fields = json.dumps(snapshot_fields(first), ensure_ascii=False)
        self.attachments = json.dumps(snapshot_attachments(first))
        db.session.remove()

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def _moment(self, value):
        # SQLAlchemy stores SQLite datetimes as naive UTC text; psycopg takes the aware value.
        return value if self.postgres else value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

    def transition(self, dossier_id: int, owner_id: int) -> None:
        """Write one transition's six rows and commit."""
        name, target = NEXT[self.states[dossier_id]]
        source, now = self.states[dossier_id], utcnow()
        stamp = self._moment(now)
        cursor = self.connection.cursor()
        cursor.execute(self._sql("UPDATE dossiers SET state = ?, state_changed_at = ?, updated_at = ?, "
                                 "lock_version = lock_version + 1 WHERE id = ?"), (target, stamp, stamp, dossier_id))
        cursor.execute(self._sql("INSERT INTO workflow_history (dossier_id, action, from_state, to_state, actor_id, "
                                 "actor_role, comment, flagged, created_at) VALUES (?, ?, ?, ?, ?, 'owner', NULL, "
                                 "'[]', ?)"), (dossier_id, name, source, target, owner_id, stamp))
        cursor.execute(self._sql("SELECT sequence, row_hash FROM audit_chain_head WHERE id = 1"
                                 + (" FOR UPDATE" if self.postgres else "")))
        sequence, previous = cursor.fetchone()
        row = {"occurred_at": now, "actor_label": f"user:{owner_id}", "action": f"workflow.{name}",
               "object_type": "dossier", "object_id": dossier_id, "detail": {"from_state": source, "to_state": target}}
        sequence += 1
        digest = audit_chain.row_hash(sequence, previous, row)
        cursor.execute(self._sql("INSERT INTO audit_events (occurred_at, actor_id, actor_label, action, object_type, "
                                 "object_id, detail, sequence, previous_hash, row_hash) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                       (stamp, owner_id, row["actor_label"], row["action"], "dossier", dossier_id,
                        json.dumps(row["detail"]), sequence, previous, digest))
        cursor.execute(self._sql("UPDATE audit_chain_head SET sequence = ?, row_hash = ? WHERE id = 1"),
                       (sequence, digest))
        cursor.execute(self._sql("INSERT INTO index_outbox (dossier_id, queued_at, attempts) VALUES (?, ?, 0)"),
                       (dossier_id, stamp))
        cursor.execute(self._sql("INSERT INTO dossier_revisions (dossier_id, recorded_at, state, fields, attachments, "
                                 "is_legacy, to_confirm) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                       (dossier_id, stamp, target, self.fields, self.attachments, False, False))
        self.connection.commit()
        self.states[dossier_id] = target

    def run(self, count: int) -> float:
        """Write count transitions round-robin; return transitions per second."""
        started = time.perf_counter()
        for number in range(count):
            self.transition(*self.pairs[number % len(self.pairs)])
        return count / (time.perf_counter() - started)

    def close(self) -> None:
        self.connection.close()


def at_once(clients: int, kind: str, pairs: list[tuple[int, int]], count: int, side: str) -> tuple[float, list]:
    """Fire count transitions from clients processes or threads, each on its own share of pairs.

    Return transitions per second and, for kjdms's side, each transition's seconds (its wait for the others in them).

    What a server's several requests at once make of the database: on PostgreSQL they wait for each other only on
    the rows they share (the audit chain's head, the statistics counters); on SQLite for its one writer.
    """
    context = multiprocessing.get_context("fork") if kind == "processes" else None
    start = context.Barrier(clients + 1) if context else threading.Barrier(clients + 1)
    finished, failures = (context.Queue() if context else queue.Queue()), []
    app = current_app._get_current_object()

    def client(share: list[tuple[int, int]], transitions: int) -> None:
        if context:
            db.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
        with app.app_context():
            baseline = DriverBaseline(db.engine, share) if side == "driver" else None
            start.wait()
            try:
                times = []
                (baseline.run if baseline else partial(through_kjdms, share, times=times))(transitions)
            except Exception as error:  # noqa: BLE001 - a thread's failure is reported by the caller
                failures.append(error)
                raise
            finally:
                finished.put((time.perf_counter(), times))
                if baseline:
                    baseline.close()

    shares = [pairs[number::clients] for number in range(clients)]
    make = context.Process if context else threading.Thread
    workers = [make(target=client, args=(share, count // clients)) for share in shares]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    reports = [finished.get() for _ in workers]
    ended, times = max(end for end, _ in reports), [seconds for _, part in reports for seconds in part]
    for worker in workers:
        worker.join()
        if failures or getattr(worker, "exitcode", 0):
            raise SystemExit(f"a {side} client failed: {failures or worker.exitcode}")
    return clients * (count // clients) / (ended - started), times


def percentile(seconds: list[float], rank: int) -> float:
    """Return the rank-th percentile of seconds, in milliseconds (nearest rank)."""
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, max(0, -(-rank * len(ordered) // 100) - 1))] * 1000


def profile_transitions(pairs: list[tuple[int, int]], count: int, top: int = 30) -> str:
    """Return a cProfile of count kjdms transitions, by own time and by cumulative time."""
    profiler, out = cProfile.Profile(), io.StringIO()
    profiler.runcall(through_kjdms, pairs, count)
    out.write(f"\ncProfile of {count} kjdms transitions:\n")
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def statements_of_one(pairs: list[tuple[int, int]]) -> list[str]:
    """Return the SQL statements one kjdms transition runs (fresh session, dossier and owner read by id)."""
    statements = []

    def count(connection, cursor, statement, parameters, context, executemany):
        statements.append((connection, statement))

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        through_kjdms(pairs[:1], 1)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    # The transaction's own: an inline drain after the commit runs on a connection of its own.
    return [statement for connection, statement in statements if connection is statements[0][0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=300, help="transitions per side and run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dossiers", type=int, default=20, help="dossiers per side, fired round-robin")
    parser.add_argument("--drain", choices=("off", "inline"), default="off",
                        help="inline: drain the search index after each commit (KJDMS_INDEX_AFTER_COMMIT=1, "
                             "the default before issue 15); "
                             "off: leave the outbox to a worker (KJDMS_INDEX_AFTER_COMMIT=0)")
    parser.add_argument("--database-url", help="a PostgreSQL URL: a fresh schema there, dropped afterwards")
    parser.add_argument("--show-sql", action="store_true", help="print the statements of one kjdms transition")
    parser.add_argument("--clients", type=int, default=1,
                        help="also run each side from this many clients at once, the dossiers shared out (1: not)")
    parser.add_argument("--clients-as", choices=("processes", "threads"), default="processes",
                        help="the clients: forked processes (a server's workers) or threads of this process "
                             "(one server process's request threads)")
    parser.add_argument("--profile", action="store_true",
                        help="after the runs, cProfile --transitions more kjdms transitions and print where they go")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kjdms-bench-transitions-"))
    try:
        with database(arguments.database_url, folder) as (url, label):
            app = make_app(folder, url, arguments.drain)
            with app.app_context():
                upgrade_schema()
                load_regions(db.session)
                db.session.commit()
                ours, theirs = complete_dossiers(arguments.dossiers), complete_dossiers(arguments.dossiers)
                baseline = DriverBaseline(db.engine, theirs)
                through_kjdms(ours, len(ours) * 2)  # warm up both: caches, prepared statements
                baseline.run(len(theirs) * 2)
                rates, cpu = [], []
                for run in range(arguments.runs):
                    # CPU time of this process too: on a busy machine it moves much less than the wall clock.
                    started = time.process_time()
                    ours_rate = through_kjdms(ours, arguments.transitions)
                    middle = time.process_time()
                    rates.append((ours_rate, baseline.run(arguments.transitions)))
                    cpu.append(((middle - started) * 1000 / arguments.transitions,
                                (time.process_time() - middle) * 1000 / arguments.transitions))
                    print(f"run {run + 1}: kjdms {rates[-1][0]:8.1f} /s ({cpu[-1][0]:.2f} ms CPU each)   "
                          f"driver {rates[-1][1]:8.1f} /s ({cpu[-1][1]:.2f} ms CPU each)")
                baseline.close()
                db.session.remove()
                together, waits = [], []
                for run in range(arguments.runs if arguments.clients > 1 else 0):
                    (ours_rate, times), (driver_rate, _) = (
                        at_once(arguments.clients, arguments.clients_as, pairs, arguments.transitions, side)
                        for pairs, side in ((ours, "kjdms"), (theirs, "driver")))
                    together.append((ours_rate, driver_rate))
                    waits.extend(times)
                    print(f"run {run + 1}, {arguments.clients} {arguments.clients_as} at once: kjdms {ours_rate:8.1f} /s "
                          f"(a transition p50 {percentile(times, 50):.1f} / p99 {percentile(times, 99):.1f} ms)   "
                          f"driver {driver_rate:8.1f} /s")
                profile = profile_transitions(ours, arguments.transitions) if arguments.profile else ""
                statements = statements_of_one(ours)
                checked, problem = audit_chain.verify(db.session)
                db.session.remove()
                db.engine.dispose()
        kjdms_rate, driver_rate = (statistics.median(side) for side in zip(*rates))
        print(f"{label}, drain {arguments.drain}, {arguments.transitions} transitions × {arguments.runs} runs, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"  kjdms services   median {kjdms_rate:8.1f} transitions/s")
        print(f"  driver, same rows median {driver_rate:8.1f} transitions/s")
        print(f"  ratio            {kjdms_rate / driver_rate:.3f}")
        kjdms_cpu, driver_cpu = (statistics.median(side) for side in zip(*cpu))
        print(f"  CPU of this process per transition, median: kjdms {kjdms_cpu:.2f} ms, driver {driver_cpu:.2f} ms "
              f"(ratio {driver_cpu / kjdms_cpu:.3f}; PostgreSQL's own work is not in it)")
        if together:
            kjdms_together, driver_together = (statistics.median(side) for side in zip(*together))
            print(f"  {arguments.clients} {arguments.clients_as} at once, medians: kjdms {kjdms_together:.1f} /s, "
                  f"driver {driver_together:.1f} /s (ratio {kjdms_together / driver_together:.3f}); a kjdms "
                  f"transition, all runs: p50 {percentile(waits, 50):.1f} / p99 {percentile(waits, 99):.1f} ms")
        print(f"  SQL statements in one kjdms transition: {len(statements)}")
        if arguments.show_sql:
            for statement in statements:
                print("    " + " ".join(statement.split())[:140])
        print(f"  audit chain: {checked} rows, {problem or 'intact'}")
        print(profile, end="")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
