"""The audit log is append-only (ORM and SQL triggers) and hash-chained; kjdms audit verify catches any rewrite."""
import multiprocessing
import re

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from kjdms.extensions import db
from kjdms.models import AuditEvent, User
from kjdms.services import audit
from kjdms.services.audit_chain import GENESIS, LOCK_HEAD, Anchor, AuditAppendOnlyError, remember_locked_head, verify
from tests.helpers import applicant


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args), catch_exceptions=False)


def write_events(count, actor=None):
    for number in range(count):
        audit.record(db.session, actor, "test.event", "dossier", number, note=f"第{number}条")
        db.session.commit()


def as_superuser(statement, **parameters):
    """Run SQL with the append-only triggers out of the way, as an attacker holding the database would."""
    if db.engine.dialect.name == "sqlite":
        triggers = db.session.execute(sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name='audit_events'")).all()
        for name, _ in triggers:
            db.session.execute(sa.text(f"DROP TRIGGER {name}"))
        for part in statement.split(";"):
            db.session.execute(sa.text(part), parameters)
        for _, sql in triggers:
            db.session.execute(sa.text(sql))
    else:
        db.session.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        for part in statement.split(";"):
            db.session.execute(sa.text(part), parameters)
        db.session.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    db.session.commit()


class TestAppendOnly:
    def test_the_orm_refuses_changing_an_event(self, app):
        write_events(1)
        event = db.session.scalars(select(AuditEvent)).one()
        event.actor_label = "someone_else"
        with pytest.raises(AuditAppendOnlyError):
            db.session.commit()
        db.session.rollback()

    def test_the_orm_refuses_deleting_an_event(self, app):
        write_events(1)
        db.session.delete(db.session.scalars(select(AuditEvent)).one())
        with pytest.raises(AuditAppendOnlyError):
            db.session.commit()
        db.session.rollback()

    @pytest.mark.parametrize("statement", ["UPDATE audit_events SET actor_label = 'someone_else'",
                                           "DELETE FROM audit_events"])
    def test_sql_past_the_orm_is_refused_too(self, app, statement):
        write_events(2)
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            db.session.execute(sa.text(statement))
            db.session.commit()
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 2

    @pytest.mark.postgres
    @pytest.mark.parametrize("statement", ["TRUNCATE audit_events", "TRUNCATE credit_records",
                                           "TRUNCATE users CASCADE", "TRUNCATE persons CASCADE"])
    def test_truncate_is_refused_on_postgresql(self, app, statement):
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL: SQLite has no TRUNCATE, its DELETE meets the row triggers")
        write_events(2)
        # A connection of its own, as a console would use; CASCADE reaches the guarded tables from another.
        with db.engine.connect() as connection:
            with pytest.raises(sa.exc.DBAPIError, match="append-only: TRUNCATE refused"):
                connection.execute(sa.text(statement))
            connection.rollback()
        assert verify(db.session) == (2, None)

    def test_deleting_an_account_keeps_its_events_and_the_chain(self, app):
        _, owner = applicant()
        write_events(3, owner)
        db.session.execute(sa.text("DELETE FROM role_assignments"))
        db.session.execute(sa.delete(User).where(User.id == owner.id))
        db.session.commit()
        assert db.session.scalars(select(AuditEvent.actor_id).where(AuditEvent.action == "test.event")).all() == [
            None, None, None]
        assert verify(db.session) == (db.session.scalar(select(func.count()).select_from(AuditEvent)), None)


class TestChain:
    def test_each_event_links_to_the_one_before(self, app):
        write_events(3)
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.sequence)).all()
        assert [row.sequence for row in rows] == [1, 2, 3] and rows[0].previous_hash == GENESIS
        assert all(later.previous_hash == earlier.row_hash for earlier, later in zip(rows, rows[1:]))
        assert verify(db.session) == (3, None)

    def test_verify_passes_and_the_anchor_prints(self, app):
        write_events(3)
        result = run(app, "audit", "verify")
        assert result.exit_code == 0 and "核对通过：3 条" in result.output
        anchor = run(app, "audit", "anchor").output.strip()
        assert re.fullmatch(r"3:[0-9a-f]{64}", anchor)
        assert run(app, "audit", "verify", "--anchor", anchor).exit_code == 0

    @pytest.mark.parametrize("tampering, row", [
        ("UPDATE audit_events SET actor_label = 'someone_else' WHERE sequence = 3", 3),
        ("UPDATE audit_events SET detail = '{}' WHERE sequence = 2", 2),
        ("DELETE FROM audit_events WHERE sequence = 3", 4),
        ("UPDATE audit_events SET sequence = sequence + 100 WHERE sequence IN (2, 3)", 2),
        ("UPDATE audit_events SET sequence = -sequence WHERE sequence IN (2, 3);"
         "UPDATE audit_events SET sequence = 5 + sequence WHERE sequence IN (-2, -3)", 2),
        ("DELETE FROM audit_events WHERE sequence = 5", 5),
    ], ids=["update", "update-detail", "delete", "move", "reorder", "delete-last"])
    def test_verify_names_the_first_row_that_does_not_verify(self, app, tampering, row):
        write_events(5)
        as_superuser(tampering)
        result = run(app, "audit", "verify")
        assert result.exit_code == 1 and f"第 {row} 条" in result.output, result.output

    def test_an_inserted_row_is_caught(self, app):
        write_events(3)
        first = db.session.scalars(select(AuditEvent).where(AuditEvent.sequence == 1)).one()
        as_superuser("UPDATE audit_events SET sequence = -(sequence + 1) WHERE sequence >= 2;"
                     "UPDATE audit_events SET sequence = -sequence WHERE sequence < 0")
        as_superuser("INSERT INTO audit_events (occurred_at, actor_label, action, object_type, detail, sequence, "
                     "previous_hash, row_hash) VALUES (:at, 'forger', 'test.event', 'dossier', '{}', 2, :prev, :prev)",
                     at=first.occurred_at, prev=first.row_hash)
        result = run(app, "audit", "verify")
        assert result.exit_code == 1 and "第 2 条" in result.output

    def test_a_rewritten_chain_is_caught_by_the_anchor(self, app):
        write_events(4)
        anchor = Anchor.parse(run(app, "audit", "anchor").output)
        # Everything rewritten consistently, one event left out: the chain alone verifies.
        as_superuser("DELETE FROM audit_events")
        as_superuser("DELETE FROM audit_chain_head")
        for number in (0, 1, 3):
            audit.record(db.session, None, "test.event", "dossier", number, note=f"第{number}条")
            db.session.commit()
        write_events(1)
        assert verify(db.session)[1] is None
        result = run(app, "audit", "verify", "--anchor", str(anchor))
        assert result.exit_code == 1 and "锚点" in result.output

    def test_a_truncated_chain_is_caught_by_the_anchor(self, app):
        write_events(4)
        anchor = run(app, "audit", "anchor").output.strip()
        as_superuser("DELETE FROM audit_events")
        as_superuser("DELETE FROM audit_chain_head")
        result = run(app, "audit", "verify", "--anchor", anchor)
        assert result.exit_code == 1 and "第 4 条" in result.output

    @pytest.mark.postgres
    def test_a_truncate_past_the_guard_and_a_rewrite_are_caught_by_the_anchor(self, app):
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL: SQLite has no TRUNCATE")
        write_events(4)
        anchor = run(app, "audit", "anchor").output.strip()
        # A superuser lifts the guard, empties the log and writes a fresh chain: it verifies on its own.
        as_superuser("TRUNCATE audit_events, audit_chain_head")
        write_events(5)
        assert run(app, "audit", "verify").exit_code == 0
        result = run(app, "audit", "verify", "--anchor", anchor)
        assert result.exit_code == 1 and "锚点" in result.output, result.output

    def test_a_head_remembered_by_a_transaction_serves_it_once_and_no_other(self, app):
        # A transition's statement locks and reads the head (services/transition_rows.py); the next placement of the
        # same transaction takes it, any other reads the head again.
        audit.record(db.session, None, "test.event", "dossier", 1)
        db.session.commit()
        remember_locked_head(db.session.connection(), 999, "f" * 64)
        db.session.rollback()
        audit.record(db.session, None, "test.event", "dossier", 2)
        connection = db.session.connection()
        remember_locked_head(connection, *connection.execute(LOCK_HEAD).one())
        audit.record(db.session, None, "test.event", "dossier", 3)
        audit.record(db.session, None, "test.event", "dossier", 4)
        db.session.commit()
        assert verify(db.session) == (4, None)

    def test_verify_reads_a_long_chain_a_page_at_a_time(self, app, monkeypatch):
        from kjdms.services import audit_chain
        monkeypatch.setattr(audit_chain, "PAGE", 7)
        for number in range(30):
            audit.record(db.session, None, "test.event", "dossier", number)
        db.session.commit()
        assert verify(db.session) == (30, None)

    def test_a_bad_anchor_is_refused_in_chinese(self, app):
        result = app.test_cli_runner().invoke(args=["audit", "verify", "--anchor", "xyz"])
        assert result.exit_code == 2 and "锚点" in result.output


def _writer(url, storage, count, barrier):
    from kjdms import create_app
    from tests.conftest import make_config

    app = create_app(make_config(storage, url))
    with app.app_context():
        barrier.wait()
        for number in range(count):
            audit.record(db.session, None, "test.concurrent", "dossier", number)
            db.session.commit()
        db.session.remove()
        db.engine.dispose()


@pytest.mark.postgres
def test_concurrent_writers_on_postgresql_do_not_fork_the_chain(app, tmp_path):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: SQLite serializes writers by its own lock")
    url, processes, each = db.engine.url.render_as_string(hide_password=False), 4, 25
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    workers = [context.Process(target=_writer, args=(url, tmp_path / str(n), each, barrier))
               for n in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0] * processes
    db.session.expire_all()
    assert verify(db.session) == (processes * each, None)
