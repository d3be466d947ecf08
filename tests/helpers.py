"""Builders shared by the tests: valid ID numbers, staff with roles, complete dossiers."""
from __future__ import annotations

import fcntl
import functools
import itertools
import os
from datetime import timedelta

import pytest
from sqlalchemy import event

from kjdms.extensions import db
from kjdms.models import Dossier, User, utcnow
from kjdms.samples import sample_pdf, sample_png
from kjdms.services.accounts import assign_role, hash_password
from kjdms.services.attachments import add_attachment_version
from kjdms.services.demo import demo_uscc
from kjdms.services.dossiers import register_person, required_slots
from kjdms.services.lifecycle import fire_transition
from kjdms.services.reference import region_by_code
from kjdms.sqlite_writer import lock_path
from kjdms.validators import id_number_check_digit

_sequence = itertools.count(1)
# A module's tests run on SQLite with the Whoosh index and on PostgreSQL with the index in it: each database and each
# index once. Not PostgreSQL with Whoosh too: nothing between them depends on the pair (the outbox, the drain and the
# checks against the database are the same SQL for either index; the indexes see no dialect).
BOTH_SEARCH_INDEXES = pytest.mark.parametrize(
    "app", ["sqlite", pytest.param("postgres_search", marks=pytest.mark.postgres)], indirect=True)
STAFF_PASSWORD = "staff-pass-123"
APPLICANT_PASSWORD = "applicant-pass-123"
USCC_SHUANGTA = demo_uscc("91211302", "MA0Y8K3L")


def make_id_number(region="211302", birth="19900101", sequence=None) -> str:
    """Return a valid ID number; one drawn (no sequence given) repeats only after 900 draws in a process.

    Drawn numbers take the sequences 100-999: those under 100 are left to tests that name theirs, which a fixture's
    drawn applicant in the same test would otherwise meet (as it did, depending on how tests fell among workers).
    """
    body = region + birth + f"{sequence if sequence is not None else 100 + next(_sequence) % 900:03d}"
    return body + id_number_check_digit(body)


@functools.cache
def password_hash(password: str) -> str:
    """Hash password once per run: scrypt is slow on purpose, and most tests only need an account."""
    return hash_password(password)


def staff(username, role, region_code):
    """Create a staff user holding role on the region with region_code."""
    user = User(username=username, display_name=username, password_hash=password_hash(STAFF_PASSWORD))
    db.session.add(user)
    assign_role(db.session, user, role, region_by_code(db.session, region_code))
    db.session.commit()
    return user


def complete_fields(region_code="211302", **overrides) -> dict:
    """Return every field a submittable dossier needs, employed in region_code."""
    fields = dict(
        phone="13904211234", education="bachelor", scope_category="in_accounting_work",
        job_types=["cashier"], employer_name="朝阳市双塔区示范会计服务有限公司", employer_uscc=USCC_SHUANGTA,
        employer_region=region_code, household_region=region_code, qualification_level="none",
    )
    fields.update(overrides)
    return fields


def applicant(name="张伟", region_code="211302", complete=True, id_number=None,
              password=APPLICANT_PASSWORD, **overrides):
    """Register a person with an account; return (dossier, owner user)."""
    fields = complete_fields(region_code, **overrides) if complete else overrides
    dossier = register_person(db.session, name=name, id_number=id_number or make_id_number(),
                              password_hash=password_hash(password) if password else None, **fields)
    return dossier, dossier.person.user


def indexed() -> int:
    """Drain the index outbox now, as the worker's indexer would; return how many rows it indexed.

    For tests of the background indexer (INDEX_AFTER_COMMIT="0"); elsewhere each commit drains already.
    """
    from kjdms.backends import get_drainer

    return get_drainer().drain()


def upload_required(workflow, blobs, dossier, owner, seed=0):
    """Upload a distinct file into every slot the dossier requires."""
    for index, slot in enumerate(required_slots(dossier)):
        if index % 2:
            data, filename = sample_png(seed=seed * 10 + index), f"{slot}.png"
        else:
            data, filename = sample_pdf(f"{slot} {dossier.id} {seed}"), f"{slot}.pdf"
        add_attachment_version(db.session, workflow, blobs, dossier, slot, data, owner, filename=filename)


def submitted(workflow, blobs, name, region_code="211302", waited_days=0, **fields) -> Dossier:
    """Return a complete dossier of a new person in region_code, submitted waited_days ago."""
    dossier, owner = applicant(name=name, region_code=region_code, **fields)
    upload_required(workflow, blobs, dossier, owner)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    if waited_days:
        dossier.state_changed_at = utcnow() - timedelta(days=waited_days, hours=1)
        db.session.commit()
    return dossier


def review_queue(people, workflow, blobs) -> dict[str, Dossier]:
    """Return three dossiers waiting in 双塔区 (10, 5 and 1 days), one in 龙城区, and one approved in 双塔区, by name."""
    dossiers = {
        "钱二": submitted(workflow, blobs, "钱二", waited_days=1),
        "孙三": submitted(workflow, blobs, "孙三", waited_days=10),
        "赵一": submitted(workflow, blobs, "赵一", waited_days=5),
        "李四": submitted(workflow, blobs, "李四", region_code="211303", waited_days=2,
                          employer_name="朝阳市龙城区会计服务中心"),
        "周五": submitted(workflow, blobs, "周五"),
    }
    fire_transition(db.session, workflow, dossiers["周五"], "approve", people["reviewer"])
    return dossiers


class CommitFailed(Exception):
    """The simulated failure of a database commit."""


def fail_next_commit(monkeypatch):
    """Make db.session's next commit write its rows and then fail; later commits work."""
    real_commit = db.session.commit
    calls = []

    def commit():
        calls.append(1)
        if len(calls) == 1:
            # Flush first, so the rows really reach the database and only the rollback removes them.
            db.session.flush()
            raise CommitFailed("simulated failure at commit")
        real_commit()

    monkeypatch.setattr(db.session, "commit", commit)


def sql_of(call) -> list[str]:
    """Return the SQL statements call() ran on its first connection, in order."""
    statements = []
    record = lambda connection, cursor, statement, *rest: statements.append((connection, statement))  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    # The index drain after a commit (KJDMS_INDEX_AFTER_COMMIT) has a connection of its own.
    return [statement for connection, statement in statements if connection is statements[0][0]]


def writer_turn_is_free(database: str) -> bool:
    """Return whether another open file of the SQLite database's lock could take the writer's turn now."""
    descriptor = os.open(lock_path(database), os.O_RDONLY | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)
