"""Workflow transitions racing: on PostgreSQL the audit chain's head, locked in the transition's own statement, is
still locked after the dossier's row, so writers never deadlock and the chain never forks; on SQLite the writers
take turns (sqlite_writer.py) and lose only the races a stale dossier loses."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from kjdms.extensions import db
from kjdms.models import Dossier, User, WorkflowHistory
from kjdms.services import audit_chain
from kjdms.services.lifecycle import fire_transition
from kjdms.services.stats_counters import differences
from kjdms.services.transaction import ConflictError
from tests.helpers import applicant, make_id_number, upload_required

THREADS, ROUNDS = 4, 12


def test_racing_transitions_conflict_only_on_a_shared_dossier_and_keep_the_chain_whole(app, workflow, blobs):
    made = []
    for seed in range(THREADS - 1):
        dossier, owner = applicant(id_number=make_id_number(), password=None)
        upload_required(workflow, blobs, dossier, owner, seed=seed)
        made.append((dossier.id, owner.id))
    db.session.remove()
    barrier, outcomes, errors = threading.Barrier(THREADS), [], []

    def work(part):
        # The first two threads share the first dossier; the others have one each.
        dossier_id, owner_id = made[max(part - 1, 0)]
        with app.app_context():
            try:
                barrier.wait()
                for _ in range(ROUNDS):
                    db.session.remove()
                    dossier, owner = db.session.get(Dossier, dossier_id), db.session.get(User, owner_id)
                    try:
                        fire_transition(db.session, workflow, dossier, "submit" if dossier.state == "draft" else
                                        "retract", owner)
                        outcomes.append((part, "fired"))
                    except ConflictError as error:
                        # A deadlock would come out as a ConflictError too, with another cause.
                        outcomes.append((part, type(error.__cause__).__name__))
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(part,)) for part in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert {outcome for part, outcome in outcomes if part >= 2} == {"fired"}
    assert {outcome for _, outcome in outcomes} <= {"fired", StaleDataError.__name__}
    fired = sum(outcome == "fired" for _, outcome in outcomes)
    ids = [dossier_id for dossier_id, _ in made]
    assert db.session.scalar(select(func.count()).select_from(WorkflowHistory)
                             .where(WorkflowHistory.dossier_id.in_(ids))) == fired
    assert audit_chain.verify(db.session)[1] is None
    with db.engine.connect() as connection:
        assert differences(connection) == []
