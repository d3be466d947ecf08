"""The tests' PostgreSQL schemas: marked when made; a later session drops the hours-old ones of killed runs only."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL
from tests.schemas import STALE_AFTER, drop_stale_schemas, made_at, mark


@pytest.fixture
def engine():
    engine = sa.create_engine(POSTGRES_URL)
    try:
        engine.connect().close()
    except sa.exc.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {error.orig}")
    yield engine
    engine.dispose()


def existing(engine, names) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(sa.text("SELECT nspname FROM pg_namespace WHERE nspname = ANY(:names)"),
                                      {"names": list(names)}).scalars())


def test_only_hours_old_schemas_named_and_marked_by_the_tests_are_dropped(engine):
    long_ago = datetime.now(timezone.utc) - STALE_AFTER - timedelta(hours=1)
    schemas = {  # name → when its mark says it was made (None: no mark)
        f"kjdms_test_{uuid.uuid4().hex[:8]}": long_ago,                            # a killed run's: dropped
        f"kjdms_index_{uuid.uuid4().hex[:8]}": long_ago,                           # the index tests' too
        f"kjdms_test_{uuid.uuid4().hex[:8]}": datetime.now(timezone.utc),          # a run under way
        f"kjdms_test_{uuid.uuid4().hex[:8]}": None,                                # made before marks, or by hand
        f"other_{uuid.uuid4().hex[:8]}": long_ago,                                 # not the tests' name
        f"kjdms_test_{uuid.uuid4().hex[:8]}_keep": long_ago,                       # nor this
    }
    try:
        with engine.begin() as connection:
            for name, made in schemas.items():
                connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
                connection.execute(sa.text(f'CREATE TABLE "{name}".t (id int)'))  # CASCADE takes contents along
                if made is not None:
                    mark(connection, name, made)
        dropped = drop_stale_schemas(engine)
        stale = list(schemas)[:2]
        assert set(stale) <= set(dropped) and not set(dropped) & set(list(schemas)[2:])
        assert existing(engine, schemas) == set(list(schemas)[2:])
    finally:
        with engine.begin() as connection:
            for name in schemas:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def test_the_sessions_schema_carries_its_mark(engine, postgres_url):
    schema = re.search(r"search_path=(\w+)", unquote(postgres_url)).group(1)
    with engine.connect() as connection:
        comment = connection.execute(sa.text("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace "
                                             "WHERE nspname = :name"), {"name": schema}).scalar()
    made = made_at(comment)
    assert made is not None


def test_a_comment_not_written_by_the_tests_is_no_mark():
    assert made_at(None) is None and made_at("made by hand") is None
    assert made_at("kjdms test schema, created yesterday") is None
