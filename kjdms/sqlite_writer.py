"""One writing transaction at a time on an SQLite file, handed to the next writer as soon as it ends.

SQLite lets one transaction write at a time. A writer that finds the file taken waits in SQLite's busy handler,
which sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between its tries: two requests writing at once then spend most of
their time asleep while the file is free. Here a writer first takes its process's lock for the file, which the
last writer of the process hands on at once, then the lock file's flock, which it polls every half millisecond
(writers of other processes: a server's workers, `kjdms worker`); SQLite's own lock then finds the file free.

Python's sqlite3 begins a transaction implicitly before an INSERT, UPDATE, DELETE or REPLACE; the turn is taken
just before that statement and given back once no transaction is open (commit, rollback, close). Reads take
nothing: in WAL mode they never wait for the writer. Whatever cannot take the turn (a lock file it may not open, a
file system without flock) writes as before, kept out by SQLite's own lock alone, only without the quick hand-over.
"""
from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager

POLL_SECONDS = 0.0005
# The statements before which Python's sqlite3 (legacy transaction control) opens a transaction, after any
# leading blanks and comments, as it decides. Possessive: a run of comments is never tried two ways.
_OPENS_TRANSACTION = re.compile(r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*+(?:INSERT|UPDATE|DELETE|REPLACE)\b",
                                re.IGNORECASE | re.DOTALL)

_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _forget_process_locks() -> None:
    # A child forked while a thread of its parent held a lock (or the guard) would find it held forever.
    global _process_locks_guard
    _process_locks.clear()
    _process_locks_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_process_locks)


def process_lock(path: str) -> threading.Lock:
    """Return this process's lock for the writers of the database whose lock file is path."""
    with _process_locks_guard:
        return _process_locks.setdefault(path, threading.Lock())


def lock_path(database: str) -> str | None:
    """Return the lock file of an SQLite database path, or None for one in memory."""
    if database in ("", ":memory:") or database.startswith("file:") and "mode=memory" in database:
        return None
    return f"{database.removeprefix('file:').split('?', 1)[0]}-writer"


def open_lock_file(path: str, database: str) -> int | None:
    """Return a descriptor of the lock file at path, made as the database file is (mode, owner); None if refused."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # flock needs no write access
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        made = os.stat(database)
        descriptor = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, made.st_mode & 0o666)
        if os.geteuid() == 0 and (made.st_uid, made.st_gid) != (0, 0):
            # root upgrading or backing up a service's instance: the file stays the service's to open.
            os.fchown(descriptor, made.st_uid, made.st_gid)
        return descriptor
    except OSError:
        return None


@contextmanager
def without_turn(dbapi_connection):
    """Run the block's writes without the writer's turn: for temporary tables, which SQLite keeps off the file."""
    exempt = isinstance(dbapi_connection, WriterTurnConnection)
    if exempt:
        dbapi_connection.exempt = True
    try:
        yield
    finally:
        if exempt:
            dbapi_connection.exempt = False


class WriterTurnConnection(sqlite3.Connection):
    """An sqlite3 connection that takes its turn at the lock file before it opens a writing transaction."""

    def __init__(self, database, timeout: float = 5.0, *args, **kwargs):
        super().__init__(database, timeout, *args, **kwargs)
        self._database = os.fsdecode(database)
        self._lock_path = lock_path(self._database)
        self._timeout, self._lock_file, self._holding, self.exempt = timeout, None, False, False
        self._process = os.getpid()

    def cursor(self, factory=None):
        """Return a cursor whose statements take the writer's turn when they open a transaction."""
        return super().cursor(factory or WriterTurnCursor)

    # sqlite3's shortcuts run the statement in C, past the cursor's execute: sent through it instead.
    def execute(self, sql, parameters=()):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters):
        return self.cursor().executemany(sql, seq_of_parameters)

    # The ends of a transaction. sqlite3 commits in C for `with connection:` and executescript: they end the turn
    # here too. A failed commit leaves the transaction, and the turn, to the rollback that follows.
    def commit(self):
        try:
            super().commit()
        finally:
            self.statement_done()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self.statement_done()

    def __exit__(self, *exception):
        try:
            return super().__exit__(*exception)
        finally:
            self.statement_done()

    def executescript(self, script):
        try:
            return super().executescript(script)
        finally:
            self.statement_done()

    def close(self):
        try:
            super().close()
        finally:
            self.end_turn()
            self._close_lock_file()

    def __del__(self):
        # Dropped unclosed (by a pool after a fork, say): the turn ends as at a close, in this process only.
        if hasattr(self, "_holding"):
            self.end_turn()
        self._close_lock_file()

    def _close_lock_file(self) -> None:
        if getattr(self, "_lock_file", None) is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def take_turn(self, statement: str) -> None:
        """Wait for the writer's turn if statement will open a writing transaction (up to the busy timeout)."""
        if (self._holding or self.exempt or self._lock_path is None or self.isolation_level is None
                or self.in_transaction or os.getpid() != self._process  # a forked copy: SQLite's lock alone
                or not _OPENS_TRANSACTION.match(statement)):
            return
        if self._lock_file is None:
            self._lock_file = open_lock_file(self._lock_path, self._database)
            if self._lock_file is None:
                self._lock_path = None  # may not be opened here: this connection writes as SQLite alone allows
                return
        deadline = time.monotonic() + self._timeout
        # Kept on the connection: giving the turn back (from __del__ too) then needs no lookup under the guard.
        self._in_process = in_process = process_lock(self._lock_path)
        if not in_process.acquire(timeout=self._timeout):
            raise sqlite3.OperationalError("database is locked")
        try:
            while True:
                try:
                    fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise sqlite3.OperationalError("database is locked") from None
                    time.sleep(POLL_SECONDS)
        except OSError:  # no flock on this file system: the process lock alone, SQLite's between processes
            self._lock_file, descriptor = None, self._lock_file
            os.close(descriptor)
        except BaseException:
            in_process.release()
            raise
        self._holding = True

    def statement_done(self) -> None:
        """Give the turn back if no transaction is open any more (ended, or never begun by a failed statement)."""
        if self._holding and not self.in_transaction:
            self.end_turn()

    def end_turn(self) -> None:
        """Give the writer's turn back, if this connection has it (in this process: a forked copy never does)."""
        if self._holding:
            self._holding = False
            if os.getpid() == self._process:
                if self._lock_file is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._in_process.release()


class WriterTurnCursor(sqlite3.Cursor):
    """A cursor that asks its connection for the writer's turn before a statement that opens a transaction."""

    def execute(self, sql, parameters=()):
        self.connection.take_turn(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.statement_done()

    def executemany(self, sql, seq_of_parameters):
        self.connection.take_turn(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection.statement_done()

    def executescript(self, script):
        try:
            return super().executescript(script)
        finally:
            self.connection.statement_done()
