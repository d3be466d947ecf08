"""Configuration defaults, the SQLite settings, and migrations that match the models on both databases."""
import json
import stat
from contextlib import contextmanager
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from kjdms import create_app
from kjdms.config import Config
from kjdms.extensions import db
from kjdms.services.worklist import queue_statements


def test_defaults_put_everything_under_the_storage_folder(tmp_path):
    config = Config(environ={"KJDMS_STORAGE_DIR": str(tmp_path)})
    assert config.DATABASE_URL == f"sqlite:///{tmp_path / 'kjdms.sqlite3'}"
    assert config.BLOB_DIR == tmp_path / "blobs" and config.BLOB_STORE == "local"
    assert config.CONFIRMATION_DEADLINE.isoformat() == "2020-12-31"


def test_environment_variables_override_the_defaults(tmp_path):
    config = Config(environ={"KJDMS_STORAGE_DIR": str(tmp_path), "KJDMS_DATABASE_URL": "sqlite:///x.db",
                             "KJDMS_SECRET_KEY": "from-env", "KJDMS_MAX_UPLOAD_BYTES": "1234"})
    assert (config.DATABASE_URL, config.SECRET_KEY, config.MAX_UPLOAD_BYTES) == ("sqlite:///x.db", "from-env", 1234)


def test_secret_key_is_generated_once_owner_only_and_reused(tmp_path):
    first = Config(environ={"KJDMS_STORAGE_DIR": str(tmp_path)})
    second = Config(environ={"KJDMS_STORAGE_DIR": str(tmp_path)})
    assert first.SECRET_KEY == second.SECRET_KEY and len(first.SECRET_KEY) == 64
    assert first.ID_HASH_KEY != first.SECRET_KEY
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    other = Config(environ={"KJDMS_STORAGE_DIR": str(tmp_path / "elsewhere")})
    assert other.SECRET_KEY != first.SECRET_KEY


def test_an_unknown_blob_store_is_refused_at_start(tmp_path):
    with pytest.raises(RuntimeError, match="KJDMS_BLOB_STORE='floppy'"):
        create_app(Config(environ={"KJDMS_STORAGE_DIR": str(tmp_path), "KJDMS_BLOB_STORE": "floppy"}))


def test_sqlite_runs_with_wal_busy_timeout_and_foreign_keys(sqlite_app):
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 15000


@pytest.mark.parametrize("waited", [False, True])
def test_sqlite_counts_the_reviewers_queue_from_its_index_alone(sqlite_app, waited):
    # Reading each queued dossier's row as well cost a third of the count (10,000 queued: 1.8 against 1.3 ms); one
    # grouped count over all the regions twice what a plain count of each region's range of the index costs.
    counts, _ = queue_statements(False, waited, "sqlite")
    counting = counts.params(state="submitted", covered=[1, 2], waited_before=datetime(2019, 6, 1))
    sql = counting.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
    plan = [row[3] for row in db.session.execute(text(f"EXPLAIN QUERY PLAN {sql}")).all()]
    region_range = "SEARCH dossiers USING COVERING INDEX ix_dossiers_queue (state=? AND region_id=?"
    assert [step for step in plan if "dossiers" in step] == [
        f"{region_range})", *([f"{region_range} AND state_changed_at<?)"] if waited else [])]
    assert "SEARCH regions USING INTEGER PRIMARY KEY (rowid=?)" in plan
    assert not [step for step in plan if step.startswith("SCAN") or "B-TREE" in step]


def test_the_migrated_schema_matches_the_models(app):
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


def test_the_database_refuses_a_user_that_is_both_applicant_and_staff(app):
    from sqlalchemy.exc import IntegrityError
    from tests.helpers import applicant

    dossier, owner = applicant()
    owner.username = "also_staff"
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


@contextmanager
def schema_at(tmp_path, revision: str, dossier_state: str, **dated):
    """Yield inside an app whose database was migrated to revision, holding one person and one dossier."""
    from flask_migrate import upgrade

    from tests.conftest import make_config

    application = create_app(make_config(tmp_path))
    with application.app_context():
        upgrade(revision=revision)
        db.session.execute(text("INSERT INTO persons (id, id_number, is_legacy, created_at) "
                                "VALUES (1, '11010519491231002X', 0, '2019-05-01 08:00:00')"))
        columns = "".join(f", {name}" for name in dated)
        values = "".join(f", '{value}'" for value in dated.values())
        db.session.execute(text(
            "INSERT INTO dossiers (id, person_id, state, job_types, is_student, qualification_level, to_confirm, "
            f"created_at, lock_version{columns}) VALUES (1, 1, :state, '[]', 0, 'none', 0, "
            f"'2019-05-01 08:00:00', 1{values})"), {"state": dossier_state})
        yield upgrade
        db.session.remove()
        db.engine.dispose()


def test_upgrading_from_the_first_schema_keeps_existing_dossiers(tmp_path):
    with schema_at(tmp_path, "0001", "submitted", updated_at="2019-05-02 09:30:00") as upgrade:
        db.session.commit()
        upgrade()
        row = db.session.execute(text("SELECT state_changed_at, baseline_id FROM dossiers")).one()
        assert str(row.state_changed_at).startswith("2019-05-02 09:30:00") and row.baseline_id is None


def test_secure_cookies_are_a_setting_for_deployments_behind_https(tmp_path):
    plain = Config(environ={"KJDMS_STORAGE_DIR": str(tmp_path)}).flask_settings()
    secure = Config(environ={"KJDMS_STORAGE_DIR": str(tmp_path), "KJDMS_SECURE_COOKIES": "1"}).flask_settings()
    assert (plain["SESSION_COOKIE_SECURE"], secure["SESSION_COOKIE_SECURE"]) == (False, True)
    assert secure["SESSION_COOKIE_HTTPONLY"] and secure["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_upgrading_moves_the_old_rejection_markers_into_the_flagged_column(tmp_path):
    moment = "2019-05-02 09:30:00"
    with schema_at(tmp_path, "0010", "rejected", updated_at=moment, state_changed_at=moment) as upgrade:
        for row_id, action, comment in ((1, "reject", "【联系电话】【学历证书】号码不一致"),
                                        (2, "reject", "【材料】模糊，系审核人员自己输入"),
                                        (3, "approve", "【联系电话】无误")):
            db.session.execute(text(
                "INSERT INTO workflow_history (id, dossier_id, action, from_state, to_state, actor_role, comment, "
                "created_at) VALUES (:id, 1, :action, 'submitted', 'rejected', 'reviewer', :comment, :moment)"),
                {"id": row_id, "action": action, "comment": comment, "moment": moment})
        db.session.commit()
        upgrade()
        rows = db.session.execute(text("SELECT comment, flagged FROM workflow_history ORDER BY id")).all()
        assert [(comment, json.loads(flagged)) for comment, flagged in rows] == [
            ("号码不一致", ["phone", "attachment:education_certificate"]),
            ("【材料】模糊，系审核人员自己输入", []), ("【联系电话】无误", [])]
