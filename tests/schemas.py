"""The tests' PostgreSQL schemas: each marked with when it was made, and those of killed runs dropped later."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

# What fresh_schema (tests/conftest.py) names a schema: a prefix of its own, "_", eight hex digits.
SCHEMA_NAME = re.compile(r"kjdms_[a-z]+_[0-9a-f]{8}")
MARK = "kjdms test schema, created "
# Older than any test run: a schema made this long ago belongs to a run that was killed before it could drop it.
STALE_AFTER = timedelta(hours=6)


def mark(connection, schema: str, now: datetime | None = None) -> None:
    """Write on schema, as its comment, that the tests made it and when."""
    made = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    connection.execute(sa.text(f"COMMENT ON SCHEMA \"{schema}\" IS '{MARK}{made}'"))


def made_at(comment: str | None) -> datetime | None:
    """Return when the tests made a schema, from its comment; None for a schema they did not mark."""
    if not comment or not comment.startswith(MARK):
        return None
    try:
        return datetime.fromisoformat(comment.removeprefix(MARK))
    except ValueError:
        return None


def drop_stale_schemas(engine, now: datetime | None = None, older_than: timedelta = STALE_AFTER) -> list[str]:
    """Drop the schemas the tests made more than older_than ago (named and marked as theirs); return their names."""
    now = now or datetime.now(timezone.utc)
    with engine.connect() as connection:
        schemas = connection.execute(sa.text(
            r"SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname LIKE 'kjdms\_%'"
        )).all()
    dropped = []
    for name, comment in schemas:
        made = made_at(comment)
        if not SCHEMA_NAME.fullmatch(name) or made is None or now - made <= older_than:
            continue
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        except sa.exc.DBAPIError:
            continue  # another session starting at the same moment dropped it first
        dropped.append(name)
    return dropped
