"""Adding attachment versions: numbering, content sniffing, refusals, shared blobs and failed commits."""
import hashlib
import io
import threading
import time

import pytest
from PIL import Image
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from kjdms.blobs.base import CHUNK_SIZE
from kjdms.extensions import db
from kjdms.models import Attachment, AttachmentVersion, AuditEvent, Dossier, DossierRevision, IndexOutbox, User
from kjdms.permissions import PermissionDenied
from kjdms.samples import sample_pdf, sample_png
from kjdms.services import audit_chain
from kjdms.services.attachment_rows import write_version
from kjdms.services.attachments import add_attachment_version
from kjdms.services.lifecycle import fire_transition
from kjdms.services.stats_counters import differences
from kjdms.services.transaction import ConflictError
from kjdms.services.working_copy import start_working_copy
from kjdms.services.maintenance import unreferenced_blobs
from kjdms.validators import ValidationError
from tests.helpers import CommitFailed, applicant, fail_next_commit, sql_of, upload_required

# Written: the dossier touched under its version check, the version numbered after the slot's last in the same
# statement (on a slot's first upload that statement finds no slot: then the attachment row and version 1), the
# outbox row, the audit event and its chain head (read in the dossier's touch), the revision. Read: the person, the
# region's code and the current versions for the revision. None for the statistics counters, which no document
# moves. The same for the sixth version of a slot as for the second: no version is loaded. PostgreSQL touches the
# dossier, inserts the version and the outbox row and locks the chain head in one statement, and moves the head with
# the event's insert: three fewer.
STATEMENTS_PER_UPLOAD = 9
STATEMENTS_PER_UPLOAD_ON_POSTGRESQL = STATEMENTS_PER_UPLOAD - 3


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def stored() -> tuple[int, ...]:
    return (count(Attachment), count(AttachmentVersion), count(AuditEvent), count(IndexOutbox),
            count(DossierRevision))


def upload(workflow, blobs, dossier, actor, data, filename="upload.pdf", slot="basic_info_form", **options):
    return add_attachment_version(db.session, workflow, blobs, dossier, slot, data, actor,
                                  filename=filename, **options)


def refused_upload(workflow, blobs, dossier, actor, data, filename, error=ValidationError, **options):
    """Upload expecting a refusal; check nothing reached the database or the blob store; return the error."""
    before = stored()
    with pytest.raises(error) as caught:
        upload(workflow, blobs, dossier, actor, data, filename, **options)
    db.session.expire_all()
    assert stored() == before
    assert list(blobs.iter_hashes()) == []
    return caught.value


class TestVersions:
    def test_versions_are_numbered_per_slot(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        for text in ("first", "second", "third"):
            upload(workflow, blobs, dossier, owner, sample_pdf(text))
        upload(workflow, blobs, dossier, owner, sample_png(), "毕业证书.png", slot="education_certificate")
        db.session.expire_all()

        form = dossier.attachment("basic_info_form")
        assert [version.number for version in form.versions] == [1, 2, 3]
        assert form.current.sha256 == hashlib.sha256(sample_pdf("third")).hexdigest()
        assert [version.number for version in dossier.attachment("education_certificate").versions] == [1]
        assert dossier.attachment("other") is None

    def test_the_sixth_version_runs_as_many_statements_as_the_second(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        counted = {}
        for number in range(1, 7):
            db.session.refresh(dossier), db.session.refresh(owner)  # as a request has them: no document loaded
            counted[number] = sql_of(lambda: upload(workflow, blobs, dossier, owner, sample_pdf(f"form {number}")))
        bound = STATEMENTS_PER_UPLOAD_ON_POSTGRESQL if db.engine.dialect.name == "postgresql" else STATEMENTS_PER_UPLOAD
        assert len(counted[6]) == len(counted[2]) == bound, counted[6]
        assert len(counted[1]) == len(counted[2]) + 2  # the slot's attachment row, then version 1
        db.session.expire_all()
        assert [version.number for version in dossier.attachment("basic_info_form").versions] == [1, 2, 3, 4, 5, 6]
        # The chain head as the touch read it (PostgreSQL: locked in the same statement) placed each event in turn,
        # and moved past the last one (verify compares the head too).
        assert audit_chain.verify(db.session) == (count(AuditEvent), None)
        revision = db.session.scalars(select(DossierRevision).where(DossierRevision.dossier_id == dossier.id)
                                      .order_by(DossierRevision.id.desc())).first()
        current = dossier.attachment("basic_info_form").current
        assert revision.attachments["basic_info_form"] == {"version_id": current.id, "number": 6,
                                                            "sha256": current.sha256}

    def test_an_upload_leaves_the_statistics_counters_right_without_reading_them(self, app, workflow, blobs,
                                                                                people):
        dossier, owner = people["dossier"], people["owner"]
        statements = sql_of(lambda: upload_required(workflow, blobs, dossier, owner))
        fire_transition(db.session, workflow, dossier, "submit", owner)
        fire_transition(db.session, workflow, dossier, "approve", people["reviewer"])
        copy = start_working_copy(db.session, workflow, dossier, owner)
        statements += sql_of(lambda: upload(workflow, blobs, copy, owner, sample_png(), "毕业证书.png",
                                            slot="education_certificate"))
        assert not [statement for statement in statements if "stats_" in statement or "workflow_history" in statement]
        # Would fail if a counter ever came to depend on the documents: the upload no longer recounts.
        with db.engine.connect() as connection:
            assert differences(connection) == []

    def test_a_slot_loaded_before_the_upload_shows_the_new_version(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        upload(workflow, blobs, dossier, owner, sample_pdf("first"))
        assert [version.number for version in dossier.attachment("basic_info_form").versions] == [1]
        version = upload(workflow, blobs, dossier, owner, sample_pdf("second"))
        assert dossier.attachment("basic_info_form").versions == [dossier.attachment("basic_info_form").versions[0],
                                                                  version]
        upload(workflow, blobs, dossier, owner, sample_png(), "毕业证书.png", slot="education_certificate")
        assert dossier.attachment("education_certificate").current.number == 1

    def test_a_slot_the_session_holds_shows_the_new_version_before_the_commit(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        upload(workflow, blobs, dossier, owner, sample_pdf("first"))
        db.session.expire_all()
        slot = db.session.scalars(select(Attachment).where(Attachment.dossier_id == dossier.id)).one()
        assert [version.number for version in slot.versions] == [1]  # loaded without the dossier's documents
        write_version(db.session, dossier, "basic_info_form",
                      {"sha256": "0" * 64, "size": 1, "media_type": "application/pdf"})
        assert [version.number for version in slot.versions] == [1, 2]  # in the same transaction
        db.session.rollback()

    def test_the_numbering_of_another_dossier_is_its_own(self, app, workflow, blobs, people):
        upload(workflow, blobs, people["dossier"], people["owner"], sample_pdf("mine"))
        upload(workflow, blobs, people["dossier"], people["owner"], sample_pdf("mine again"))
        other, other_owner = applicant(name="王芳")
        version = upload(workflow, blobs, other, other_owner, sample_pdf("theirs"))
        assert version.number == 1

    def test_a_version_records_the_content_the_uploader_and_the_base_name(self, app, workflow, blobs, people):
        dossier, owner, data = people["dossier"], people["owner"], sample_png(seed=7)
        version = upload(workflow, blobs, dossier, owner, data, "../../scans/营业执照.PNG",
                         slot="employer_certificate", comment="  盖章页  ")
        version_id = version.id
        db.session.expire_all()

        version = db.session.get(AttachmentVersion, version_id)
        stored = blobs.read(version.sha256)
        assert version.media_type == "image/png"
        # Images are re-encoded (metadata stripped): the hash and size are the stored file's, the pixels the upload's.
        assert version.sha256 == hashlib.sha256(stored).hexdigest()
        assert version.size == len(stored)
        assert Image.open(io.BytesIO(stored)).tobytes() == Image.open(io.BytesIO(data)).tobytes()
        assert version.original_filename == "营业执照.PNG"
        assert version.uploaded_by_id == owner.id
        assert version.comment == "盖章页"

    @pytest.mark.parametrize("data, filename, media_type", [
        pytest.param(sample_pdf("form"), "基本信息表.pdf", "application/pdf", id="pdf"),
        pytest.param(sample_png(), "scan.jpeg.png", "image/png", id="png"),
        pytest.param(sample_png(seed=3), None, "image/png", id="no file name"),
    ])
    def test_the_media_type_is_sniffed_from_the_content(self, app, workflow, blobs, people, data, filename,
                                                       media_type):
        version = upload(workflow, blobs, people["dossier"], people["owner"], data, filename)
        assert version.media_type == media_type

    def test_each_version_writes_an_audit_event_without_the_file_name(self, app, workflow, blobs, people):
        dossier, data = people["dossier"], sample_pdf("form")
        upload(workflow, blobs, dossier, people["owner"], data, "张伟的基本信息表.pdf")
        upload(workflow, blobs, dossier, people["owner"], sample_pdf("form 2"), "张伟的基本信息表.pdf")

        events = list(db.session.scalars(
            select(AuditEvent).filter_by(action="attachment.add_version").order_by(AuditEvent.id)))
        assert [event.detail["version"] for event in events] == [1, 2]
        assert events[0].detail == {"slot": "basic_info_form", "version": 1,
                                    "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        assert all(event.object_id == dossier.id for event in events)


class TestRefusedUploads:
    def test_a_png_named_pdf_is_refused(self, app, workflow, blobs, people):
        error = refused_upload(workflow, blobs, people["dossier"], people["owner"], sample_png(), "扫描件.pdf")
        assert error.field == "file"
        assert "内容是 PNG，与文件名“扫描件.pdf”的扩展名不符" in error.message

    def test_a_file_name_without_extension_is_refused(self, app, workflow, blobs, people):
        error = refused_upload(workflow, blobs, people["dossier"], people["owner"], sample_pdf(), "扫描件")
        assert error.field == "file"
        assert "扩展名不符" in error.message

    @pytest.mark.parametrize("data, filename", [
        pytest.param("姓名：张伟\n".encode(), "基本信息表.pdf", id="text named pdf"),
        pytest.param(b"plain text", "notes.txt", id="text"),
        pytest.param(b"<html><body>form</body></html>", "form.html", id="html"),
        pytest.param(b"PK\x03\x04" + b"\x00" * 40, "form.docx", id="zip"),
    ])
    def test_content_other_than_pdf_jpeg_or_png_is_refused(self, app, workflow, blobs, people, data, filename):
        error = refused_upload(workflow, blobs, people["dossier"], people["owner"], data, filename)
        assert error.field == "file"
        assert "只接受 PDF、JPEG、PNG 格式（按文件内容识别）" in error.message

    def test_an_empty_file_is_refused(self, app, workflow, blobs, people):
        error = refused_upload(workflow, blobs, people["dossier"], people["owner"], b"", "空.pdf")
        assert error.field == "file"
        assert "内容为空" in error.message

    @pytest.mark.parametrize("max_bytes, label", [(100, "100 字节"), (3 * 1024 * 1024, "3 MB")])
    def test_an_oversize_file_is_refused_naming_the_limit(self, app, workflow, blobs, people, max_bytes, label):
        data = sample_pdf("a form too large for the limit").ljust(max_bytes + 1, b"\n")
        error = refused_upload(workflow, blobs, people["dossier"], people["owner"], data, "form.pdf",
                               max_bytes=max_bytes)
        assert error.field == "file"
        assert f"文件：超过大小上限 {label}" in error.message

    def test_an_oversize_stream_is_refused_without_reading_it_all(self, app, workflow, blobs, people):
        stream = io.BytesIO(sample_pdf("x" * 3000))
        error = refused_upload(workflow, blobs, people["dossier"], people["owner"], stream, "form.pdf",
                               max_bytes=2048)
        assert "超过大小上限 2 KB" in error.message
        assert stream.tell() == 2049

    def test_a_file_of_exactly_the_limit_is_accepted(self, app, workflow, blobs, people):
        data = sample_pdf("exactly")
        version = upload(workflow, blobs, people["dossier"], people["owner"], data, max_bytes=len(data))
        assert version.size == len(data)

    def test_a_pdf_streams_into_the_store_a_chunk_at_a_time(self, app, workflow, blobs, people):
        requested = []

        class RecordingStream(io.BytesIO):
            def read(self, size=-1):
                requested.append(size)
                return super().read(size)

        data = sample_pdf("streamed").ljust(3 * CHUNK_SIZE + 5, b"\n")
        version = upload(workflow, blobs, people["dossier"], people["owner"], RecordingStream(data),
                         max_bytes=len(data))
        # Never the whole upload at once: read, hashed and written a chunk at a time.
        assert requested and all(0 < size <= CHUNK_SIZE for size in requested)
        assert version.size == len(data) and version.sha256 == hashlib.sha256(data).hexdigest()
        assert blobs.read(version.sha256) == data

    def test_a_stream_past_the_cap_half_way_leaves_no_file_behind(self, app, workflow, blobs, people):
        cap = 2 * CHUNK_SIZE
        stream = io.BytesIO(sample_pdf("too long").ljust(3 * CHUNK_SIZE, b"\n"))
        error = refused_upload(workflow, blobs, people["dossier"], people["owner"], stream, "form.pdf",
                               max_bytes=cap)
        assert error.field == "file" and error.message == "文件：超过大小上限 2 MB"
        assert stream.tell() <= cap + CHUNK_SIZE  # refused at the chunk that passed the cap, not read on
        assert [path for path in blobs.root.rglob("*") if path.is_file()] == []

    def test_an_unknown_slot_is_refused(self, app, workflow, blobs, people):
        error = refused_upload(workflow, blobs, people["dossier"], people["owner"], sample_pdf(), "护照.pdf",
                               slot="passport")
        assert error.field == "slot"
        assert "没有“passport”这一类" in error.message

    def test_the_owner_may_not_upload_once_submitted(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        upload_required(workflow, blobs, dossier, owner)
        fire_transition(db.session, workflow, dossier, "submit", owner)
        hashes_before, before = sorted(blobs.iter_hashes()), stored()
        with pytest.raises(PermissionDenied, match="您没有「上传证明材料」此档案的权限"):
            upload(workflow, blobs, dossier, owner, sample_pdf("late"), slot="other")
        db.session.expire_all()
        assert stored() == before
        assert sorted(blobs.iter_hashes()) == hashes_before

    def test_an_upload_based_on_a_read_from_before_the_submit_is_a_conflict(self, app, workflow, blobs, people):
        dossier, owner = people["dossier"], people["owner"]
        upload_required(workflow, blobs, dossier, owner)
        other = Session(db.engine)
        try:
            # A second browser tab read the draft before the first one submitted it.
            stale, stale_owner = other.get(Dossier, dossier.id), other.get(User, owner.id)
            stale_owner.role_assignments, stale.attachments  # loaded now, as a request would have
            fire_transition(db.session, workflow, dossier, "submit", owner)
            before = stored()
            late = sample_pdf("a different form, uploaded after the submit")
            with pytest.raises(ConflictError, match="您的操作未保存"):
                add_attachment_version(other, workflow, blobs, stale, "basic_info_form", late, stale_owner,
                                       filename="基本信息表.pdf")
        finally:
            other.close()
        db.session.expire_all()
        assert stored() == before
        assert [version.number for version in dossier.attachment("basic_info_form").versions] == [1]
        assert unreferenced_blobs(db.session, blobs, grace_seconds=0) == [hashlib.sha256(late).hexdigest()]

    def test_an_upload_that_waited_for_another_uploads_lock_writes_nothing(self, app, workflow, blobs, people):
        """PostgreSQL's one statement reads the slot's last number as of its start, before the dossier's lock."""
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite refuses the second writer's stale snapshot outright")
        dossier, owner = people["dossier"], people["owner"]
        upload(workflow, blobs, dossier, owner, sample_pdf("first"))  # the slot exists: its next version in one go
        first, second = Session(db.engine), Session(db.engine)
        outcome = {}

        def values(content: bytes) -> dict:
            return {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content), "media_type": "application/pdf"}

        def second_upload():
            try:
                write_version(second, theirs, "basic_info_form", values(b"second"))
            except StaleDataError as error:
                outcome["error"] = error

        try:
            mine, theirs = first.get(Dossier, dossier.id), second.get(Dossier, dossier.id)  # the same version read
            backend = second.scalar(text("SELECT pg_backend_pid()"))  # the second one's connection, kept to its end
            write_version(first, mine, "basic_info_form", values(b"first"))  # holds the dossier's row lock
            waiting = threading.Thread(target=second_upload)
            waiting.start()
            with db.engine.connect() as watcher:  # until the second one's statement waits for that lock
                for _ in range(200):
                    if watcher.scalar(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                                      {"pid": backend}) == "Lock":
                        break
                    watcher.rollback()  # PostgreSQL keeps pg_stat_activity as first read until the transaction ends
                    time.sleep(0.05)
                else:
                    pytest.fail("the second upload never waited for the first one's lock")
            first.commit()
            waiting.join(30)
            assert isinstance(outcome.get("error"), StaleDataError)
            second.rollback()
        finally:
            first.close(), second.close()
        db.session.expire_all()
        assert [version.number for version in dossier.attachment("basic_info_form").versions] == [1, 2]  # no third

    @pytest.mark.parametrize("who", ["reviewer", "administrator"])
    def test_staff_may_not_upload_into_a_draft(self, app, workflow, blobs, people, who):
        error = refused_upload(workflow, blobs, people["dossier"], people[who], sample_pdf(), "form.pdf",
                               error=PermissionDenied)
        assert "您没有「上传证明材料」此档案的权限" in str(error)

    def test_another_applicant_may_not_upload_into_my_dossier(self, app, workflow, blobs, people):
        _, stranger = applicant(name="王芳")
        error = refused_upload(workflow, blobs, people["dossier"], stranger, sample_pdf(), "form.pdf",
                               error=PermissionDenied)
        assert "上传证明材料" in str(error)


class TestBlobStorage:
    def test_identical_content_in_two_dossiers_is_stored_once(self, app, workflow, blobs, people):
        other, other_owner = applicant(name="王芳")
        data = sample_pdf("the same certificate")
        mine = upload(workflow, blobs, people["dossier"], people["owner"], data, slot="employer_certificate")
        theirs = upload(workflow, blobs, other, other_owner, data, slot="employer_certificate")

        assert list(blobs.iter_hashes()) == [hashlib.sha256(data).hexdigest()]
        assert mine.sha256 == theirs.sha256
        assert count(AttachmentVersion) == 2

    def test_re_uploading_the_same_content_adds_a_version_but_no_blob(self, app, workflow, blobs, people):
        data = sample_png()
        first = upload(workflow, blobs, people["dossier"], people["owner"], data, "a.png")
        second = upload(workflow, blobs, people["dossier"], people["owner"], data, "b.png")
        assert (first.number, second.number) == (1, 2)
        assert len(list(blobs.iter_hashes())) == 1

    def test_a_failed_commit_leaves_only_an_unreferenced_blob(self, app, workflow, blobs, people, monkeypatch):
        dossier, data = people["dossier"], sample_pdf("written, never recorded")
        upload(workflow, blobs, dossier, people["owner"], sample_png(), "kept.png", slot="education_certificate")
        before = stored()
        fail_next_commit(monkeypatch)

        with pytest.raises(CommitFailed):
            upload(workflow, blobs, dossier, people["owner"], data)
        db.session.expire_all()

        sha256 = hashlib.sha256(data).hexdigest()
        assert stored() == before
        assert db.session.scalar(select(AttachmentVersion).filter_by(sha256=sha256)) is None
        assert dossier.attachment("basic_info_form") is None
        assert blobs.exists(sha256)
        assert unreferenced_blobs(db.session, blobs, grace_seconds=0) == [sha256]

    def test_a_retry_after_a_failed_commit_references_the_blob(self, app, workflow, blobs, people, monkeypatch):
        dossier, data = people["dossier"], sample_pdf("second attempt")
        fail_next_commit(monkeypatch)
        with pytest.raises(CommitFailed):
            upload(workflow, blobs, dossier, people["owner"], data)

        version = upload(workflow, blobs, dossier, people["owner"], data)
        assert version.number == 1
        assert unreferenced_blobs(db.session, blobs, grace_seconds=0) == []

    def test_the_grace_period_protects_a_blob_just_written(self, app, workflow, blobs, people, monkeypatch):
        fail_next_commit(monkeypatch)
        with pytest.raises(CommitFailed):
            upload(workflow, blobs, people["dossier"], people["owner"], sample_pdf("in flight"))
        assert len(list(blobs.iter_hashes())) == 1
        assert unreferenced_blobs(db.session, blobs) == []
