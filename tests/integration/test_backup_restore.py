"""Backup and restore of a whole instance: a restore drill on both databases, resumption, tampering, refusals."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa

from kjdms import create_app
from kjdms.backends import get_blob_store, get_config, get_search_index, get_signing_key, get_workflow
from kjdms.blobs.local import LocalBlobStore
from kjdms.config import Config
from kjdms.extensions import db
from kjdms.models import Dossier
from kjdms.schema import upgrade_schema
from kjdms.services.archive import export_package, verify_package
from kjdms.services.credit import correct_record, record_finding
from kjdms.services.demo import load_demo
from kjdms.services.lifecycle import fire_transition
from kjdms.services.search import operator_grants, search_dossiers
from kjdms.signing import public_key_pem, read_or_create_signing_key
from kjdms.vocabulary import CREDIT_OFFICER_ROLE
from tests.conftest import POSTGRES_URL, make_config, pushed
from tests.helpers import applicant, staff, upload_required

QUERIES = ("张", "王", "会计", "示范", "双塔", "")
PASSPHRASE = "一个足够长的备份口令 2026"


@pytest.fixture
def empty_database(request, tmp_path):
    """Return a URL of an empty database of the kind the source instance uses (a new PostgreSQL schema, or a file)."""
    urls = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            urls.append(f"sqlite:///{tmp_path / f'restored-{len(urls)}.sqlite3'}")
            return urls[-1]
        schema = f"kjdms_restore_{uuid.uuid4().hex[:8]}"
        with sa.create_engine(POSTGRES_URL).begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        request.addfinalizer(lambda: _drop_schema(schema))
        separator = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    return make


def _drop_schema(schema: str) -> None:
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def target_app(tmp_path, name: str, url: str):
    """Return a new, empty instance whose keys live in its storage folder (as a fresh deployment's do)."""
    return create_app(Config(environ={}, STORAGE_DIR=tmp_path / name, DATABASE_URL=url, TESTING=True, OCR="0"))


def dialect(app) -> str:
    return "sqlite" if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else "postgres"


def populate(app, workflow, blobs):
    """Fill the source: the demo (uploads, approvals, a rejection, a purge), and a credit file with a correction."""
    key = get_config().ID_HASH_KEY
    load_demo(db.session, workflow, blobs, key)
    dossier, owner = applicant(name="韩梅", region_code="211302")
    upload_required(workflow, blobs, dossier, owner, seed=7)
    fire_transition(db.session, workflow, dossier, "submit", owner)
    officer = staff("credit_backup", CREDIT_OFFICER_ROLE, "211302")
    evidence = [dossier.attachment("education_certificate").versions[0].id]
    first = record_finding(db.session, workflow, dossier, officer, kind="falsified_information",
                           finding="学历证书系伪造", found_on=date(2019, 6, 1), today=date(2019, 6, 1),
                           evidence=evidence, id_hash_key=key)
    db.session.flush()
    correct_record(db.session, workflow, dossier, first.id, officer, kind="falsified_information",
                   finding="学历证书系伪造，经学校核实", legal_basis=first.legal_basis, evidence=evidence,
                   found_on=date(2019, 6, 1), today=date(2019, 6, 2), id_hash_key=key)
    db.session.commit()
    return dossier


@pytest.fixture(scope="module")
def populated_storage(tmp_path_factory, sqlite_template):
    """A SQLite instance's storage folder (database, blobs, index, keys) filled by populate() once for the module."""
    folder = tmp_path_factory.mktemp("populated")
    shutil.copy(sqlite_template, folder / "kjdms.sqlite3")
    with pushed(create_app(make_config(folder))) as app:
        populate(app, get_workflow(), get_blob_store())
    return folder


@pytest.fixture
def populated_app(tmp_path, populated_storage):
    """A populated SQLite instance of the test's own: populated_storage copied into tmp_path."""
    shutil.copytree(populated_storage, tmp_path, dirs_exist_ok=True)
    with pushed(create_app(make_config(tmp_path))) as app:
        yield app


def _cell(value):
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def rows_of(engine) -> dict[str, tuple[list[str], list[tuple]]]:
    """Return every table's column names and rows in key order, times as UTC text."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {table.name: (table.columns.keys(), [tuple(_cell(value) for value in row) for row in connection.execute(
            sa.select(table).order_by(*table.primary_key.columns))]) for table in metadata.sorted_tables}


def assert_same_rows(source: dict, restored: dict) -> None:
    """Every row of the source is restored unchanged; the restore adds only its own audit row."""
    assert set(source) == set(restored)
    for name, (columns, rows) in source.items():
        restored_columns, restored_rows = restored[name]
        assert restored_columns == columns, name
        if name == "audit_events":
            # The source's last row records the backup itself (written after its instant); the restore adds its own.
            action = columns.index("action")
            assert rows[-1][action] == "backup.create" and restored_rows[-1][action] == "backup.restore"
            assert restored_rows[:-1] == rows[:-1]
        elif name == "audit_chain_head":
            assert len(restored_rows) == len(rows) == 1
        elif name == "index_outbox":  # when each change was indexed is the index's business, not the backup's
            kept = [position for position, column in enumerate(columns) if column != "indexed_at"]
            assert [[row[p] for p in kept] for row in restored_rows] == [[row[p] for p in kept] for row in rows]
        else:
            assert restored_rows == rows, name


def search_results(app) -> dict[str, list[int]]:
    """Return the dossiers each query finds for an operator (every region and state)."""
    with app.app_context():
        workflow, grants = get_workflow(), operator_grants(db.session, get_workflow())
        # Sorted: equal scores keep the order the documents were indexed in, which a rebuild changes.
        return {text: sorted(hit.dossier.id for hit in search_dossiers(
            db.session, get_search_index(), workflow, None, text, id_hash_key=get_config().ID_HASH_KEY,
            grants=grants, page_size=100).hits) for text in QUERIES}


def cli(app, *args, env=None):
    """Run a kjdms command on app (pushed: a command runs on whichever application is current)."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(map(str, args)), env=env, catch_exceptions=False)


def write_continuously(app, stop: threading.Event, written: list) -> None:
    """Register, upload and submit dossiers until stopped, as applicants would while the backup runs."""
    with app.app_context():
        workflow, blobs = get_workflow(), get_blob_store()
        while not stop.is_set():
            dossier, owner = applicant(name="林涛", region_code="211302")
            upload_required(workflow, blobs, dossier, owner, seed=len(written) + 50)
            db.session.commit()
            fire_transition(db.session, workflow, dossier, "submit", owner)
            db.session.commit()
            written.append(dossier.id)
        db.session.remove()


@pytest.mark.long
def test_restore_drill(app, workflow, blobs, tmp_path, empty_database):
    """Back up while applicants write, restore into fresh instances: every row, blob, search and signature holds."""
    dossier = populate(app, workflow, blobs)
    package = tmp_path / "before-backup.zip"
    export_package(db.session, blobs, workflow, dossier, package, signing_key=get_signing_key())
    destination = tmp_path / "backups"
    stop, written = threading.Event(), []
    writers = [threading.Thread(target=write_continuously, args=(app, stop, written)) for _ in range(2)]
    for thread in writers:
        thread.start()
    try:
        while len(written) < 2:
            time.sleep(0.05)
        during = cli(app, "backup", "create", destination)
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert during.exit_code == 0, during.output
    assert "已完成备份" in during.output
    db.session.remove()

    # The backup taken under writes restores into a sound instance (blobs, index and audit chain all check).
    first = target_app(tmp_path, "restored-during", empty_database(dialect(app)))
    restored = cli(first, "backup", "restore", destination)
    assert restored.exit_code == 0, restored.output
    assert "恢复完成" in restored.output and "审计日志：核对通过" in restored.output

    # A backup of the quiet instance restores every row exactly, and only the new blobs were copied.
    time.sleep(1.1)  # snapshots are named by the second
    quiet = cli(app, "backup", "create", destination)
    assert quiet.exit_code == 0, quiet.output
    assert "新复制 0 个" not in quiet.output or not written
    source_rows = rows_of(db.engine)
    second = target_app(tmp_path, "restored-quiet", empty_database(dialect(app)))
    restored = cli(second, "backup", "restore", destination)
    assert restored.exit_code == 0, restored.output
    with second.app_context():
        assert_same_rows(source_rows, rows_of(db.engine))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Dossier)) == len(source_rows["dossiers"][1])
        # A package signed before the backup verifies against the restored instance's published key.
        public = public_key_pem(read_or_create_signing_key(get_config().PACKAGE_SIGNING_KEY_FILE))
    assert verify_package(package, [public]).trusted
    assert search_results(second) == search_results(app)
    assert any(search_results(app).values())


def test_a_later_backup_copies_only_new_blobs_and_verify_checks_everything(populated_app, tmp_path):
    app, destination = populated_app, tmp_path / "backups"
    first = cli(app, "backup", "create", destination)
    assert first.exit_code == 0 and "新复制 0 个" not in first.output
    time.sleep(1.1)
    second = cli(app, "backup", "create", destination)
    assert second.exit_code == 0 and "新复制 0 个" in second.output
    assert len(list((destination / "snapshots").iterdir())) == 2
    checked = cli(app, "backup", "verify", destination)
    assert checked.exit_code == 0 and "核验通过" in checked.output
    assert oct((destination / "snapshots").stat().st_mode & 0o777) == "0o700"
    snapshot = sorted((destination / "snapshots").iterdir())[-1]
    assert all(oct(path.stat().st_mode & 0o777) == "0o600" for path in snapshot.rglob("*") if path.is_file())


def _flip_byte(path, offset=-1):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_verify_names_a_flipped_byte_in_a_table_a_key_file_or_a_blob(populated_app, tmp_path):
    app, destination = populated_app, tmp_path / "backups"
    assert cli(app, "backup", "create", destination).exit_code == 0
    snapshot = next((destination / "snapshots").iterdir())
    table = snapshot / "tables" / "dossiers.jsonl.gz"
    _flip_byte(table, len(table.read_bytes()) // 2)
    result = cli(app, "backup", "verify", destination)
    assert result.exit_code == 1 and "已改动 tables/dossiers.jsonl.gz" in result.output
    _flip_byte(table, len(table.read_bytes()) // 2)  # back as it was
    assert cli(app, "backup", "verify", destination).exit_code == 0

    blob = next(path for path in (destination / "blobs").rglob("*") if path.is_file())
    _flip_byte(blob, 0)
    result = cli(app, "backup", "verify", destination)
    assert result.exit_code == 1 and f"文件已损坏 {blob}" in result.output
    # Restoring a damaged backup stops at the damaged file and says which.
    target = target_app(tmp_path, "restored", f"sqlite:///{tmp_path / 'restored.sqlite3'}")
    result = cli(target, "backup", "restore", destination)
    assert result.exit_code != 0 and str(blob) in result.output


def test_restore_refuses_a_live_instance_and_the_backup_a_readable_folder(populated_app, tmp_path):
    app, destination = populated_app, tmp_path / "backups"
    assert cli(app, "backup", "create", destination).exit_code == 0
    before = rows_of(db.engine)
    result = cli(app, "backup", "restore", destination)  # into itself: a live instance
    assert result.exit_code != 0 and "不会覆盖正在使用的实例" in result.output
    assert rows_of(db.engine) == before

    readable = tmp_path / "shared"
    readable.mkdir(mode=0o755)
    os.chmod(readable, 0o755)
    result = cli(app, "backup", "create", readable)
    assert result.exit_code != 0 and "chmod 700" in result.output
    assert not (readable / "snapshots").exists()


def test_sealed_keys_need_the_passphrase(populated_app, tmp_path):
    app, destination = populated_app, tmp_path / "backups"
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE, "utf-8")
    short = tmp_path / "short"
    short.write_text("短口令", "utf-8")
    result = cli(app, "backup", "create", destination, "--passphrase-file", short)
    assert result.exit_code != 0 and "口令：至少 12 个字符" in result.output
    assert cli(app, "backup", "create", destination, "--passphrase-file", passphrase_file).exit_code == 0
    snapshot = next((destination / "snapshots").iterdir())
    assert not (snapshot / "keys.json").exists()
    assert get_config().ID_HASH_KEY.encode() not in (snapshot / "keys.enc").read_bytes()

    target = target_app(tmp_path, "restored", f"sqlite:///{tmp_path / 'restored.sqlite3'}")
    result = cli(target, "backup", "restore", destination)
    assert result.exit_code != 0 and "已用口令加密" in result.output
    wrong = tmp_path / "wrong"
    wrong.write_text(PASSPHRASE + "x", "utf-8")
    result = cli(target, "backup", "restore", destination, "--passphrase-file", wrong)
    assert result.exit_code != 0 and "口令不正确" in result.output
    with target.app_context():
        assert sa.inspect(db.engine).get_table_names() == []  # nothing was written before the keys opened
    result = cli(target, "backup", "restore", destination, env={"KJDMS_BACKUP_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "restored" / "id_hash_key").read_text().strip() == get_config().ID_HASH_KEY


def test_restore_of_an_older_schema_runs_the_migrations_forward(tmp_path, monkeypatch):
    # The backup as an older kjdms wrote it: its audit log had no hash chain yet, so no audit row here.
    monkeypatch.setattr("kjdms.services.backup.audit.record", lambda *args, **kwargs: None)
    old = create_app(Config(environ={}, STORAGE_DIR=tmp_path / "old", TESTING=True, SECRET_KEY="s", ID_HASH_KEY="i"))
    with old.app_context():
        upgrade_schema("0005")
        with db.engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO regions (id, code, name, kind, collected_elsewhere, sort_order) "
                                       "VALUES (1, '210000', '辽宁省', 'province', false, 1)"))
        result = cli(old, "backup", "create", tmp_path / "backups")
        assert result.exit_code == 0, result.output
        db.engine.dispose()
    target = target_app(tmp_path, "new", f"sqlite:///{tmp_path / 'new.sqlite3'}")
    result = cli(target, "backup", "restore", tmp_path / "backups")
    assert result.exit_code == 0, result.output
    with target.app_context():
        assert db.session.execute(sa.text("SELECT name FROM regions")).scalar() == "辽宁省"
        head = db.session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert head != "0005" and "0005" in json.loads(
            (next((tmp_path / "backups" / "snapshots").iterdir()) / "manifest.json").read_text())["schema_revision"]


SLOW_BACKUP = """
import sys, time
from kjdms import create_app
from kjdms.backends import get_blob_store, get_config, get_signing_key
from kjdms.blobs.local import LocalBlobStore
from kjdms.blobs.local import LocalBlobStore
from kjdms.config import Config
from kjdms.extensions import db
from kjdms.services.backup import Keys, create_backup

storage, destination = sys.argv[1], sys.argv[2]
app = create_app(Config(environ={}, STORAGE_DIR=storage, TESTING=True, SECRET_KEY="s", ID_HASH_KEY="i"))
real_put = LocalBlobStore.put
def slow_put(self, data):  # slow enough for the test to kill the process half-way through the blobs
    time.sleep(0.2)
    return real_put(self, data)
LocalBlobStore.put = slow_put
with app.app_context():
    config = get_config()
    key = get_signing_key()
    keys = Keys(config.SECRET_KEY, config.ID_HASH_KEY, config.PACKAGE_SIGNING_KEY_FILE.read_text())
    create_backup(db.engine, db.session, get_blob_store(), destination, keys, key)
"""


@pytest.mark.long
def test_a_backup_killed_half_way_resumes(tmp_path, sqlite_template):
    """kill -9 during the copy of the blobs: the next run continues the same instant and copies the rest."""
    import shutil

    storage = tmp_path / "instance"
    storage.mkdir()
    shutil.copy(sqlite_template, storage / "kjdms.sqlite3")
    app = create_app(Config(environ={}, STORAGE_DIR=storage, TESTING=True, SECRET_KEY="s", ID_HASH_KEY="i"))
    with app.app_context():
        populate(app, get_workflow(), get_blob_store())
        db.session.remove()
        db.engine.dispose()
    destination = tmp_path / "backups"
    child = subprocess.Popen([sys.executable, "-c", SLOW_BACKUP, str(storage), str(destination)],
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len([p for p in (destination / "blobs").rglob("*") if p.is_file()]) < 3:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    partial = [path for path in (destination / "snapshots").iterdir() if path.name.startswith(".partial-")]
    assert len(partial) == 1
    instant = json.loads((partial[0] / "state.json").read_text())["instant"]
    with app.app_context():
        result = cli(app, "backup", "create", destination)
        assert result.exit_code == 0, result.output
        assert "已继续并完成" in result.output
        snapshot = next((destination / "snapshots").iterdir())
        assert json.loads((snapshot / "manifest.json").read_text())["instant"] == instant
        assert cli(app, "backup", "verify", destination).exit_code == 0
        db.engine.dispose()


def test_rows_are_stored_as_json_lines_with_a_header(populated_app, tmp_path):
    assert cli(populated_app, "backup", "create", tmp_path / "b").exit_code == 0
    snapshot = next((tmp_path / "b" / "snapshots").iterdir())
    with gzip.open(snapshot / "tables" / "regions.jsonl.gz", "rt", encoding="utf-8") as lines:
        header = json.loads(next(lines))
        first = dict(zip(header, json.loads(next(lines))))
    assert first["name"] and "id" in header


def test_an_interrupted_restore_continues_where_it_stopped(populated_app, tmp_path, monkeypatch):
    assert cli(populated_app, "backup", "create", tmp_path / "b").exit_code == 0
    source_dossiers = rows_of(db.engine)["dossiers"]
    target = target_app(tmp_path, "restored", f"sqlite:///{tmp_path / 'restored.sqlite3'}")
    real_put, calls = LocalBlobStore.put, []

    def crash_after_three(self, data):
        calls.append(1)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")  # the disk fills half-way through the files
        return real_put(self, data)
    monkeypatch.setattr(LocalBlobStore, "put", crash_after_three)
    with pytest.raises(OSError):
        cli(target, "backup", "restore", tmp_path / "b")
    marker = json.loads((tmp_path / "restored" / "restore-in-progress.json").read_text())
    assert marker["done"] == ["keys", "database"]
    monkeypatch.setattr(LocalBlobStore, "put", real_put)
    result = cli(target, "backup", "restore", tmp_path / "b")
    assert result.exit_code == 0 and "继续恢复" in result.output and "恢复完成" in result.output, result.output
    assert not (tmp_path / "restored" / "restore-in-progress.json").exists()
    with target.app_context():
        assert rows_of(db.engine)["dossiers"] == source_dossiers


@pytest.mark.postgres
def test_a_sqlite_backup_restores_into_postgresql(populated_app, tmp_path, empty_database):
    assert cli(populated_app, "backup", "create", tmp_path / "b").exit_code == 0
    source = rows_of(db.engine)
    target = target_app(tmp_path, "restored", empty_database("postgres"))
    result = cli(target, "backup", "restore", tmp_path / "b")
    assert result.exit_code == 0, result.output
    with target.app_context():
        restored = rows_of(db.engine)
        for name in ("dossiers", "persons", "credit_records", "attachment_versions", "workflow_history", "regions"):
            assert restored[name] == source[name], name
        # Ids continue after the restored rows.
        dossier, _ = applicant(name="周新", region_code="211302")
        db.session.commit()
        assert dossier.id > max(row[0] for row in source["dossiers"][1])
        db.session.remove()
        db.engine.dispose()


def test_a_restore_lists_the_persons_the_deadline_purge_removed_after_the_backup(populated_app, tmp_path):
    """An older backup brings back whom the purge removed since: the restore says so and names them."""
    # 孙丽 was imported before the deadline and never confirmed: the purge removes her after this backup.
    db.session.execute(sa.text("UPDATE dossiers SET created_at = '2020-01-01 00:00:00' WHERE to_confirm"))
    db.session.commit()
    number = db.session.scalar(sa.select(Dossier).where(Dossier.to_confirm.is_(True))).number
    assert cli(populated_app, "backup", "create", tmp_path / "b").exit_code == 0
    target = target_app(tmp_path, "restored", f"sqlite:///{tmp_path / 'restored.sqlite3'}")
    result = cli(target, "backup", "restore", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "警告：恢复的数据中有 1 份逾期未确认的档案" in result.output
    assert f"{number}\t孙丽" in result.output and "kjdms purge-expired" in result.output
