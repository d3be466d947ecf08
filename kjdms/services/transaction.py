"""One service call, one transaction: commit it all, or roll it all back."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

# PostgreSQL's SQLSTATE for a transaction it aborted to break a deadlock with another.
DEADLOCK_DETECTED = "40P01"


class ConflictError(Exception):
    """Someone else changed the dossier since it was read; nothing was saved."""

    def __init__(self):
        super().__init__("该档案已被他人处理或修改，您的操作未保存，请刷新后查看最新状态")


@contextmanager
def committing(session):
    """Commit what the block did, or roll it all back; a stale dossier version or a deadlock becomes a ConflictError."""
    try:
        yield
        session.commit()
    except StaleDataError as error:
        session.rollback()
        raise ConflictError() from error
    except DBAPIError as error:
        session.rollback()
        # Two changes that lock the same rows in opposite orders (approving a working copy while its person is
        # purged): PostgreSQL aborts one, which is the same as losing a race; nothing of it was saved.
        if getattr(error.orig, "sqlstate", None) == DEADLOCK_DETECTED:
            raise ConflictError() from error
        raise
    except BaseException:
        session.rollback()
        raise


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """Yield a connection of its own on which every read sees the database as of one instant, read only."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # pysqlite starts no transaction for a SELECT by itself: begin one, and read once to fix the WAL snapshot.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("BEGIN")
            connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").all()
            try:
                yield connection
            finally:
                connection.exec_driver_sql("ROLLBACK")  # the BEGIN above was ours, outside SQLAlchemy's knowledge
        else:
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                yield connection
            finally:
                connection.rollback()
