"""An instance on S3 (a real SeaweedFS): upload, download, purge and the blob commands through the bucket."""
from __future__ import annotations

import hashlib
import shutil
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from kjdms import create_app
from kjdms.backends import get_blob_store, get_config
from kjdms.blobs import LocalBlobStore
from kjdms.blobs.s3 import S3BlobStore
from kjdms.extensions import db
from kjdms.models import AttachmentVersion
from kjdms.samples import sample_pdf
from kjdms.services.deadline_purge import local_date
from kjdms.models import utcnow
from tests.conftest import make_config
from tests.integration.test_deadline_purge import legacy
from tests.integration.test_web_files import assert_safe_headers


def s3_settings(server, prefix: str) -> dict:
    return dict(BLOB_STORE="s3", S3_ENDPOINT_URL=server.endpoint, S3_BUCKET=server.BUCKET, S3_PREFIX=prefix,
                S3_ACCESS_KEY="kjdms", S3_SECRET_KEY="kjdms")


@pytest.fixture
def app(tmp_path, sqlite_template, s3_server):
    """The application on SQLite with its documents in a bucket prefix of its own."""
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    application = create_app(make_config(tmp_path, **s3_settings(s3_server, f"instance-{uuid.uuid4().hex[:8]}")))
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


def objects(store: S3BlobStore) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    return [item["Key"] for item in listed.get("Contents", ())]


def cli(app, *args, **kwargs):
    return app.test_cli_runner().invoke(args=list(args), catch_exceptions=False, **kwargs)


def test_uploads_go_to_the_bucket_and_download_with_the_stored_bytes(auth, people):
    store = get_blob_store()
    assert isinstance(store, S3BlobStore)
    data = sample_pdf("学历证书 S3")
    owner = auth("owner")
    assert owner.upload("education_certificate", data, "学历证书.pdf").status_code == 302
    version = db.session.scalars(select(AttachmentVersion)).one()
    assert version.sha256 == hashlib.sha256(data).hexdigest()
    assert objects(store) == [store.key_for(version.sha256)]
    response = owner.get(f"/files/{version.id}")
    assert response.status_code == 200 and response.data == data
    assert_safe_headers(response)
    assert auth("reviewer").get(f"/files/{version.id}").data == data
    assert auth("other_reviewer").get(f"/files/{version.id}").status_code == 404  # another county


def test_the_deadline_purge_deletes_the_objects(app):
    get_config().CONFIRMATION_DEADLINE = local_date(utcnow()) - timedelta(days=1)
    dossier, _ = legacy("张伟")
    kept, _ = legacy("李娜", seed=1, imported_ago=timedelta(0))
    db.session.commit()
    store = get_blob_store()
    purged_hashes = {version.sha256 for attachment in dossier.attachments for version in attachment.versions}
    assert purged_hashes and purged_hashes <= set(store.iter_hashes())
    result = app.test_cli_runner().invoke(args=["purge-expired", "--yes"])
    assert result.exit_code == 0, result.output
    left = set(store.iter_hashes())
    assert not purged_hashes & left
    assert {version.sha256 for attachment in kept.attachments for version in attachment.versions} <= left
    assert not any(key.endswith(tuple(purged_hashes)) for key in objects(store))


def test_blobs_verify_and_gc_work_on_the_bucket(app, people, workflow, blobs):
    from tests.helpers import upload_required

    upload_required(workflow, blobs, people["dossier"], people["owner"])
    db.session.commit()
    assert cli(app, "blobs", "verify").exit_code == 0
    orphan = blobs.put(b"a file no version refers to").sha256
    result = cli(app, "blobs", "gc", "--grace", "-5")
    assert result.exit_code == 0 and "已删除 1 个无引用文件" in result.output
    assert not blobs.exists(orphan)
    victim = db.session.scalars(select(AttachmentVersion)).first().sha256
    blobs.client.put_object(Bucket=blobs.bucket, Key=blobs.key_for(victim), Body=b"rotten")
    result = cli(app, "blobs", "verify")
    assert result.exit_code == 1 and f"损坏 {victim}" in result.output


def test_blobs_migrate_copies_a_local_store_into_the_bucket_and_can_run_again(tmp_path, sqlite_template, s3_server):
    shutil.copy(sqlite_template, tmp_path / "kjdms.sqlite3")
    local = create_app(make_config(tmp_path))
    prefix = f"migrated-{uuid.uuid4().hex[:8]}"
    with local.app_context():
        from kjdms.backends import get_workflow
        from tests.helpers import applicant, upload_required

        dossier, owner = applicant()
        upload_required(get_workflow(), get_blob_store(), dossier, owner)
        db.session.commit()
        hashes = set(LocalBlobStore(tmp_path / "blobs").iter_hashes())
        settings = {f"KJDMS_{name}": value for name, value in s3_settings(s3_server, prefix).items()
                    if name != "BLOB_STORE"}
        get_config().__dict__.update({name.removeprefix("KJDMS_"): value for name, value in settings.items()})
        result = cli(local, "blobs", "migrate", "--to", "s3")
        assert result.exit_code == 0, result.output
        assert f"已复制并核对 {len(hashes)} 个，目标中已有 0 个" in result.output
        again = cli(local, "blobs", "migrate", "--to", "s3")
        assert f"已复制并核对 0 个，目标中已有 {len(hashes)} 个" in again.output
        db.session.remove()
        db.engine.dispose()
    moved = create_app(make_config(tmp_path, **s3_settings(s3_server, prefix)))
    with moved.app_context():
        assert set(get_blob_store().iter_hashes()) == hashes
        assert cli(moved, "blobs", "verify").exit_code == 0
        db.engine.dispose()
