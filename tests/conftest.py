"""Fixtures: an application on a migrated database (SQLite, and the real PostgreSQL), users of every role."""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from kjdms import create_app
from kjdms.schema import upgrade_schema
from kjdms.config import Config
from kjdms.extensions import db
from kjdms.services.reference import load_regions
from tests import schemas

POSTGRES_URL = os.environ.get("KJDMS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Reference tables survive between tests; everything else is emptied.
KEPT_TABLES = {"alembic_version", "regions"}


def make_config(tmp_path, database_url=None, **overrides) -> Config:
    """Return a Config isolated from the environment, storing under tmp_path.

    The tests' one way to see a change in search: each commit drains the outbox before it returns
    (KJDMS_INDEX_AFTER_COMMIT=1), so a search right after sees it without waiting for a worker.
    Tests of the background indexer pass INDEX_AFTER_COMMIT="0" and drain through tests.helpers.indexed().
    """
    overrides = {"INDEX_AFTER_COMMIT": "1", **overrides}
    return Config(
        environ={}, STORAGE_DIR=tmp_path, DATABASE_URL=database_url or f"sqlite:///{tmp_path / 'kjdms.sqlite3'}",
        SECRET_KEY="test-secret-key", ID_HASH_KEY="test-id-hash-key", TESTING=True, **overrides,
    )


def migrate_and_load(app) -> None:
    """Bring app's database to the newest schema with the reference data."""
    with app.app_context():
        upgrade_schema()
        load_regions(db.session)
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (SeaweedFS) for the session, killed with its whole process group at the end."""
    from tests.s3server import SeaweedServer

    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_store(s3_server):
    """An S3 blob store under a key prefix of its own in the session's bucket.

    One bucket for all: SeaweedFS allocates volumes for each new bucket, which takes seconds.
    """
    from kjdms.blobs.s3 import S3BlobStore

    # The client an instance makes (unsigned payloads, checksums), not the server's plain one.
    return S3BlobStore.from_settings(endpoint_url=s3_server.endpoint, bucket=s3_server.BUCKET,
                                     prefix=f"test-{uuid.uuid4().hex[:12]}", access_key="kjdms", secret_key="kjdms")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file, copied for each test (migrating once keeps the suite fast)."""
    folder = tmp_path_factory.mktemp("template")
    migrate_and_load(create_app(make_config(folder)))
    return folder / "kjdms.sqlite3"


def fresh_schema(prefix: str):
    """Create a schema on the real PostgreSQL server; yield the URL that works in it, then drop it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            schemas.mark(connection, schema)  # so a later session can drop it if this one is killed
    except sa.exc.OperationalError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {error.orig}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def pytest_sessionstart(session):
    """Drop the PostgreSQL schemas that killed test runs left behind (only the tests' own, hours old)."""
    if hasattr(session.config, "workerinput"):
        return  # xdist: the controller does it once
    engine = sa.create_engine(POSTGRES_URL)
    try:
        schemas.drop_stale_schemas(engine)
    except sa.exc.OperationalError:
        pass  # no PostgreSQL here: its tests skip (or fail in CI) on their own
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh schema on the real PostgreSQL server, migrated once for the session."""
    yield from fresh_schema("kjdms_test")


@pytest.fixture(scope="session")
def postgres_migrated(postgres_url, tmp_path_factory):
    """The session's PostgreSQL schema, migrated with reference data."""
    migrate_and_load(create_app(make_config(tmp_path_factory.mktemp("pg"), postgres_url)))
    return postgres_url


def empty_tables() -> None:
    """Empty every table but the reference data, and restart the emptied tables' id sequences.

    The append-only tables (credit_records, audit_events) refuse row deletes and, on PostgreSQL, TRUNCATE, by
    design: their guards are lifted for the moment, as only the tables' owner (or a superuser) could. PostgreSQL
    empties by DELETE as a replica when the tests connect as a superuser, else by TRUNCATE; SQLite tests start
    from a fresh copy of the file, so only credit-free runs empty it.
    """
    tables = [table for table in reversed(db.metadata.sorted_tables) if table.name not in KEPT_TABLES]
    if db.engine.dialect.name == "sqlite":
        triggers = db.session.execute(sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'")).all()
        for name, _ in triggers:
            db.session.execute(sa.text(f'DROP TRIGGER "{name}"'))
        for table in tables:
            db.session.execute(table.delete())
        for _, sql in triggers:
            db.session.execute(sa.text(sql))
    elif db.session.execute(sa.text("SELECT current_setting('is_superuser') = 'on'")).scalar():
        # DELETE rather than TRUNCATE: a test leaves a handful of rows, and TRUNCATE makes new files for two dozen
        # tables and their indexes: 0.80 s against 0.057 s (medians at load 22), twice for each of 800 tests.
        # As a replica no trigger fires, as none fires on TRUNCATE: neither the guards nor the foreign keys.
        # One round trip: under load each one waits for the server's turn on the CPU.
        names = ", ".join(f"'{table.name}'" for table in tables)
        db.session.execute(sa.text("; ".join([
            "SET LOCAL session_replication_role = replica",
            *(f'DELETE FROM "{table.name}"' for table in tables),
            # What TRUNCATE ... RESTART IDENTITY did: ids start at 1 again (the kept tables' sequences go on).
            "SELECT setval(dependency.objid::regclass, 1, false) FROM pg_depend AS dependency "
            "JOIN pg_class AS sequence ON sequence.oid = dependency.objid "
            f"WHERE sequence.relkind = 'S' AND dependency.refobjid = ANY(ARRAY[{names}]::regclass[])"])))
    else:
        # Only a superuser may act as a replica; the tables' owner may still lift the TRUNCATE guards.
        names = ", ".join(f'"{table.name}"' for table in tables)
        guards = db.session.execute(sa.text(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE tgname LIKE '%\\_no\\_truncate' "
            "AND tgrelid::regclass::text = ANY(:tables)"), {"tables": [table.name for table in tables]}).all()
        for table, guard in guards:
            db.session.execute(sa.text(f'ALTER TABLE "{table}" DISABLE TRIGGER "{guard}"'))
        db.session.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY"))
        for table, guard in guards:
            db.session.execute(sa.text(f'ALTER TABLE "{table}" ENABLE TRIGGER "{guard}"'))
    db.session.commit()


def pytest_collection_modifyitems(config, items):
    """Run the page sweeps on SQLite only; under pytest-xdist, put the long tests first.

    What differs between the databases lies in the services below the pages. xdist hands the tests out in this
    order, in ever smaller chunks: a long test near the end would keep one worker busy while the other had nothing
    left to do, so the long ones start first and the short ones fill in around them.
    """
    keep, dropped = [], []
    for item in items:
        on_postgres = getattr(item, "callspec", None) is not None and item.callspec.params.get("app") == "postgres"
        (dropped if on_postgres and item.get_closest_marker("pages") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    if hasattr(config, "workerinput"):  # every worker sorts alike, as xdist requires (a stable sort)
        items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request, tmp_path, sqlite_template):
    """The application on a migrated database: SQLite and PostgreSQL in turn."""
    if request.param == "sqlite":
        shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
        config = make_config(tmp_path)
    else:
        # postgres_search: the search index in PostgreSQL too (tests opt in with helpers.BOTH_SEARCH_INDEXES).
        search = "postgres" if request.param == "postgres_search" else "whoosh"
        config = make_config(tmp_path, request.getfixturevalue("postgres_migrated"), SEARCH=search)
    application = create_app(config)
    on_postgres = request.param != "sqlite"
    with application.app_context():
        if on_postgres:
            empty_tables()
            empty_search_index()
        yield application
        db.session.remove()
        if on_postgres:
            empty_tables()
            empty_search_index()
        db.engine.dispose()


def empty_search_index() -> None:
    """Drop the PostgreSQL search index's tables, which live beside the models' (a Whoosh index is in tmp_path)."""
    from kjdms.search.postgres_index import PostgresSearchIndex

    PostgresSearchIndex(lambda: db.engine).drop()


@contextmanager
def pushed(application):
    """Push application's context for the block, then close its session and its database connections."""
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def sqlite_app(tmp_path, sqlite_template):
    """The application on SQLite only, for tests that look at the file itself."""
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    with pushed(create_app(make_config(tmp_path))) as application:
        yield application


@pytest.fixture
def workflow(app):
    """The application's dossier workflow engine."""
    from kjdms.backends import get_workflow
    return get_workflow()


@pytest.fixture
def blobs(app):
    """The application's blob store."""
    from kjdms.backends import get_blob_store
    return get_blob_store()


@pytest.fixture
def people(app):
    """Staff of every role around Chaoyang, and one complete draft dossier in 双塔区 with its owner."""
    from tests.helpers import applicant, staff

    dossier, owner = applicant()
    return {
        "dossier": dossier,
        "owner": owner,
        "reviewer": staff("reviewer_shuangta", "reviewer", "211302"),
        "city_reviewer": staff("reviewer_chaoyang", "reviewer", "211300"),
        "other_reviewer": staff("reviewer_longcheng", "reviewer", "211303"),
        "credit_officer": staff("credit_chaoyang", "credit_officer", "211300"),
        "archivist": staff("archivist_chaoyang", "archivist", "211300"),
        "administrator": staff("admin", "administrator", "210000"),
    }


@pytest.fixture
def client(app):
    """An anonymous browser (replaces pytest-flask's: each request gets its own application context)."""
    from tests.webclient import WebClient

    app.test_client_class = WebClient
    return app.test_client()


@pytest.fixture
def browser(app):
    """Return a function that opens another anonymous browser, for several people at once."""
    from tests.webclient import WebClient

    app.test_client_class = WebClient
    return app.test_client


@pytest.fixture
def auth(browser, people):
    """Return a function that opens a browser signed in as people[role], or as the user given."""
    def sign_in(who):
        return browser().enter_as(people[who] if isinstance(who, str) else who)
    return sign_in


STAFF_ROLES = ("reviewer", "city_reviewer", "other_reviewer", "credit_officer", "archivist", "administrator")


@pytest.fixture
def visitors(browser, auth, site):
    """A browser for everyone in the test module's site: anonymous, each applicant, each staff role, signed in."""
    everyone = {"anonymous": browser()}
    everyone.update({name: browser().enter_as(user) for name, user in site["persons"].items()})
    everyone.update({role: auth(role) for role in STAFF_ROLES})
    return everyone
