"""A change reads the dossier's relations in one statement, and never loses or overwrites what the dossier holds."""
from __future__ import annotations

from sqlalchemy import event, inspect, update

from kjdms.extensions import db
from kjdms.models import Dossier
from kjdms.services.dossier_reads import load_for_change, read_for_change
from tests.helpers import upload_required


def statements_of(action) -> list[str]:
    """Run action; return the SQL statements it sent."""
    statements = []

    def count(connection, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return statements


def test_a_loaded_dossier_gets_its_relations_in_one_statement_and_keeps_its_own_values(app, workflow, blobs, people):
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    dossier_id, owner_id, slots = dossier.id, owner.id, sorted(attachment.slot for attachment in dossier.attachments)
    db.session.remove()
    dossier = db.session.get(Dossier, dossier_id)
    dossier.phone = "13900000000"  # an unflushed change the read must not overwrite
    # Someone else's change after ours was read: the relations' read must not bring it into our dossier.
    with db.engine.begin() as connection:
        connection.execute(update(Dossier).where(Dossier.id == dossier_id).values(employer_name="别的单位"))

    with db.session.no_autoflush:
        assert len(statements_of(lambda: load_for_change(db.session, dossier))) == 1
        # Everything a change reads is there now, without another statement.
        assert statements_of(lambda: (dossier.region.parent, dossier.person.user,
                                      [a.versions for a in dossier.attachments])) == []
    assert sorted(attachment.slot for attachment in dossier.attachments) == slots
    assert dossier.person.user.id == owner_id
    assert dossier.phone == "13900000000"
    assert dossier.employer_name != "别的单位"
    db.session.rollback()


def test_an_expired_dossier_is_read_whole_with_its_relations(app, workflow, blobs, people):
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    dossier_id = dossier.id
    db.session.remove()
    dossier = db.session.get(Dossier, dossier_id)
    with db.engine.begin() as connection:
        connection.execute(update(Dossier).where(Dossier.id == dossier_id).values(employer_name="新的单位"))
    db.session.expire(dossier)

    assert len(statements_of(lambda: load_for_change(db.session, dossier))) == 1
    assert not inspect(dossier).unloaded & {"employer_name", "lock_version", "region", "person", "attachments"}
    assert statements_of(lambda: dossier.employer_name) == []
    assert dossier.employer_name == "新的单位"
    db.session.rollback()


def test_a_dossier_read_for_change_needs_no_further_read(app, workflow, blobs, people):
    dossier, owner = people["dossier"], people["owner"]
    upload_required(workflow, blobs, dossier, owner)
    dossier_id, owner_id, slots = dossier.id, owner.id, sorted(attachment.slot for attachment in dossier.attachments)
    db.session.remove()

    read = []
    assert len(statements_of(lambda: read.append(read_for_change(db.session, dossier_id)))) == 1
    dossier = read[0]
    assert statements_of(lambda: load_for_change(db.session, dossier)) == []
    assert statements_of(lambda: (dossier.region.parent, dossier.person.user,
                                  [a.versions for a in dossier.attachments])) == []
    assert sorted(attachment.slot for attachment in dossier.attachments) == slots
    assert dossier.person.user.id == owner_id
    assert read_for_change(db.session, 2**31 - 1) is None
    db.session.rollback()
