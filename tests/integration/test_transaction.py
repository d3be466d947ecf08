"""One service call, one transaction: what committing() does when the database refuses the commit."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from kjdms.extensions import db
from kjdms.services.transaction import ConflictError, committing


@pytest.mark.postgres
def test_a_deadlock_is_a_conflict_and_the_other_change_is_saved(app):
    """Two changes lock two rows in opposite orders: PostgreSQL aborts one; its user sees the conflict message."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no deadlock between writers")
    with db.engine.begin() as connection:
        connection.execute(text("INSERT INTO settings (key, value, updated_at, updated_by_label) "
                                "VALUES ('lock_a', '0', now(), 'test'), ('lock_b', '0', now(), 'test')"))
    both_hold_one = threading.Barrier(2, timeout=30)
    outcomes, engine = {}, db.engine  # the threads have no application context

    def change(name, first, second):
        session = Session(engine)
        try:
            with committing(session):
                for number, key in enumerate((first, second)):
                    session.execute(text("UPDATE settings SET value = :value WHERE key = :key"),
                                    {"value": name, "key": key})
                    if number == 0:
                        both_hold_one.wait()
            outcomes[name] = "saved"
        except ConflictError:
            outcomes[name] = "conflict"
        except Exception as error:  # noqa: BLE001 - the test reports whatever else came out
            outcomes[name] = repr(error)
        finally:
            session.close()

    threads = [threading.Thread(target=change, args=("x", "lock_a", "lock_b")),
               threading.Thread(target=change, args=("y", "lock_b", "lock_a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes.values()) == ["conflict", "saved"], outcomes
    winner = next(name for name, outcome in outcomes.items() if outcome == "saved")
    with db.engine.connect() as connection:
        values = connection.execute(text("SELECT value FROM settings WHERE key IN ('lock_a', 'lock_b')")).scalars()
        assert set(values) == {winner}  # all of the winner's change, nothing of the loser's
