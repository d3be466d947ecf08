"""SQLite writers take turns at a lock file: taken before a transaction's first write, given back at its end."""
import os
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from kjdms.config import engine_options
from kjdms import sqlite_writer
from kjdms.sqlite_writer import WriterTurnConnection, lock_path, process_lock, without_turn
from tests.helpers import writer_turn_is_free


@pytest.fixture()
def database(tmp_path):
    """Return the path of an SQLite file in WAL mode with a table t."""
    path = str(tmp_path / "kjdms.sqlite3")
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    setup.close()
    return path


def connect(path: str, timeout: float = 15) -> WriterTurnConnection:
    return sqlite3.connect(path, timeout=timeout, factory=WriterTurnConnection)


def test_the_turn_is_held_from_the_first_write_to_the_commit(database):
    connection = connect(database)
    connection.execute("SELECT * FROM t").fetchall()
    assert writer_turn_is_free(database), "a read takes no turn"
    connection.execute("INSERT INTO t (v) VALUES ('a')")
    assert connection.in_transaction and not writer_turn_is_free(database)
    connection.execute("UPDATE t SET v = 'b'")
    connection.commit()
    assert writer_turn_is_free(database)
    connection.close()


def test_a_rollback_and_a_close_give_the_turn_back(database):
    connection = connect(database)
    connection.execute("DELETE FROM t")
    connection.rollback()
    assert writer_turn_is_free(database)
    connection.execute(" -- a comment first\n /* and another */ insert into t (v) values ('a')")
    assert not writer_turn_is_free(database), "leading blanks and comments, lower case: still a write"
    connection.close()
    assert writer_turn_is_free(database)


def test_a_write_that_fails_before_its_transaction_gives_the_turn_back(database):
    connection = connect(database)
    with pytest.raises(sqlite3.OperationalError):
        connection.execute("INSERT INTO missing (v) VALUES ('a')")
    assert not connection.in_transaction and writer_turn_is_free(database)
    connection.close()


def test_autocommit_statements_take_no_turn(database):
    connection = connect(database)
    connection.isolation_level = None  # each statement its own transaction: SQLite's lock is enough
    connection.execute("INSERT INTO t (v) VALUES ('a')")
    assert writer_turn_is_free(database)
    connection.close()


def test_a_second_writer_waits_for_the_first_ones_commit_and_then_writes(database):
    first = connect(database)
    first.execute("INSERT INTO t (v) VALUES ('first')")
    started, wrote = threading.Event(), threading.Event()

    def write_second():
        second = connect(database)
        started.set()
        second.execute("INSERT INTO t (v) VALUES ('second')")
        wrote.set()
        second.commit()
        second.close()

    writer = threading.Thread(target=write_second)
    writer.start()
    started.wait()
    assert not wrote.wait(0.2), "the second writer must wait while the first holds the turn"
    first.commit()
    writer.join(10)
    assert wrote.is_set()
    assert [v for (v,) in first.execute("SELECT v FROM t ORDER BY id")] == ["first", "second"]
    first.close()


def test_a_writer_gives_up_after_the_busy_timeout_as_sqlite_would(database):
    holder, waiter = connect(database), connect(database, timeout=0.1)
    holder.execute("INSERT INTO t (v) VALUES ('a')")
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        waiter.execute("INSERT INTO t (v) VALUES ('b')")
    assert not waiter.in_transaction
    holder.commit()
    waiter.execute("INSERT INTO t (v) VALUES ('b')")
    waiter.commit()
    holder.close()
    waiter.close()


def test_another_process_waits_for_the_turn_too(database):
    holder = connect(database)
    holder.execute("INSERT INTO t (v) VALUES ('parent')")
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and its exit status
        os.close(reader)
        # The parent's thread held its process's lock at the fork: the child starts with locks of its own.
        if not process_lock(lock_path(database)).acquire(blocking=False):
            os.write(writer, b"the process lock came over held")
            os._exit(1)
        process_lock(lock_path(database)).release()
        connection = connect(database, timeout=0.1)
        try:
            connection.execute("INSERT INTO t (v) VALUES ('child')")
            os.write(writer, b"wrote")
        except sqlite3.OperationalError as error:
            os.write(writer, str(error).encode())
        os._exit(0)
    os.close(writer)
    _, status = os.waitpid(child, 0)
    with os.fdopen(reader, "rb") as report:
        assert report.read() == b"database is locked"
    assert os.waitstatus_to_exitcode(status) == 0
    holder.commit()
    holder.close()


def test_a_forked_copy_never_gives_back_its_parents_turn(database):
    holder = connect(database)
    holder.execute("INSERT INTO t (v) VALUES ('parent')")
    child = os.fork()
    if child == 0:  # pragma: no cover
        holder.end_turn()  # as a pool dropped after the fork would
        os._exit(0)
    os.waitpid(child, 0)
    assert not writer_turn_is_free(database)
    holder.commit()
    holder.close()


def test_a_database_in_memory_needs_no_lock_file():
    assert lock_path(":memory:") is None and lock_path("file:one?mode=memory&cache=shared") is None
    connection = sqlite3.connect(":memory:", factory=WriterTurnConnection)
    connection.execute("CREATE TABLE t (v TEXT)")
    connection.execute("INSERT INTO t VALUES ('a')")
    connection.commit()
    connection.close()


def test_the_application_engine_tunes_and_turns_its_connections(database):
    engine = sa.create_engine(f"sqlite:///{database}", **engine_options(f"sqlite:///{database}"))
    import kjdms.extensions  # noqa: F401 - its connect event tunes every SQLite connection
    with engine.connect() as connection:
        assert isinstance(connection.connection.dbapi_connection, WriterTurnConnection)
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        connection.exec_driver_sql("INSERT INTO t (v) VALUES ('a')")
        assert not writer_turn_is_free(database)
        connection.commit()
        assert writer_turn_is_free(database)
    engine.dispose()


def test_writes_to_a_temporary_table_can_go_without_the_turn(database):
    connection = connect(database)
    connection.execute("CREATE TEMPORARY TABLE scratch (v TEXT)")
    with without_turn(connection):
        connection.execute("INSERT INTO scratch SELECT v FROM t")
    assert connection.in_transaction and writer_turn_is_free(database)
    connection.rollback()
    connection.close()


def test_a_with_block_and_a_script_end_the_turn_as_a_commit_does(database):
    connection = connect(database)
    with connection:
        connection.execute("INSERT INTO t (v) VALUES ('a')")
        assert not writer_turn_is_free(database)
    assert writer_turn_is_free(database)
    connection.execute("INSERT INTO t (v) VALUES ('b')")
    connection.executescript("INSERT INTO t (v) VALUES ('c');")  # sqlite3 commits what was open first
    assert not connection.in_transaction and writer_turn_is_free(database)
    connection.close()


def test_a_lock_file_it_may_not_open_leaves_writing_to_sqlites_own_lock(database, monkeypatch):
    monkeypatch.setattr(sqlite_writer, "open_lock_file", lambda path, database: None)
    connection = connect(database)
    connection.execute("INSERT INTO t (v) VALUES ('a')")
    connection.commit()
    assert connection.execute("SELECT count(*) FROM t").fetchone() == (1,)
    connection.close()


def test_the_lock_file_is_made_as_the_database_file_is(database):
    os.chmod(database, 0o640)
    connection = connect(database)
    connection.execute("INSERT INTO t (v) VALUES ('a')")
    connection.commit()
    assert os.stat(lock_path(database)).st_mode & 0o777 == 0o640
    connection.close()


def test_a_connection_carried_into_a_forked_child_writes_without_a_turn(database):
    holder = connect(database)
    holder.execute("SELECT 1")
    child = os.fork()
    if child == 0:  # pragma: no cover
        holder.take_turn("INSERT INTO t (v) VALUES ('child')")
        os._exit(0 if not holder._holding else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    holder.close()
