"""Extract the text of uploaded versions after their upload, recording the outcome on each version."""
from __future__ import annotations

import logging

from sqlalchemy import or_, select
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from ..blobs import BlobStore
from ..blobs.base import BlobCorrupted, BlobNotFound
from ..documents.text import OCR_LANGUAGE_MISSING, OCR_MISSING, OCR_OFF, extract_text, ocr_problem
from ..models import TEXT_DONE, TEXT_FAILED, TEXT_PENDING, AttachmentVersion, utcnow

log = logging.getLogger(__name__)
BLOB_UNREADABLE = "提取文字失败：文件缺失或已损坏"


def pending_version_ids(session, limit: int) -> list[int]:
    """Return the ids of versions still waiting for extraction, newest first (what people just uploaded)."""
    return session.scalars(select(AttachmentVersion.id).where(AttachmentVersion.text_status == TEXT_PENDING)
                           .order_by(AttachmentVersion.id.desc()).limit(limit)).all()


def extract_version(session, blobs: BlobStore, version: AttachmentVersion, *, ocr: bool = True) -> str:
    """Extract version's text and commit the outcome; its outbox row re-indexes the dossier. Return the status."""
    try:
        result = extract_text(blobs.read(version.sha256), version.media_type, ocr=ocr)
        text, method, error = result.text, result.method, result.error
    except (BlobNotFound, BlobCorrupted):
        text, method, error = "", "none", BLOB_UNREADABLE
    version.extracted_text = text or None
    version.text_method = method
    # Some text with a warning (a scan cut short) still goes into the index.
    version.text_status = TEXT_DONE if text or not error else TEXT_FAILED
    version.text_error = error
    version.text_extracted_at = utcnow()
    session.commit()
    return version.text_status


def extract_pending(session, blobs: BlobStore, *, ocr: bool = True, limit: int = 20) -> int:
    """Extract up to limit pending versions; return how many were done. A purge in between is skipped."""
    done = 0
    for version_id in pending_version_ids(session, limit):
        version = session.get(AttachmentVersion, version_id)
        if version is None or version.text_status != TEXT_PENDING:
            continue
        try:
            extract_version(session, blobs, version, ocr=ocr)
            done += 1
        except (StaleDataError, ObjectDeletedError):
            session.rollback()  # purged while we read it: nothing left to record
    return done


def _readable(blobs: BlobStore, sha256: str) -> bool:
    """Tell whether the blob store holds sha256 intact again."""
    try:
        blobs.read(sha256)
    except (BlobNotFound, BlobCorrupted):
        return False
    return True


def retry_failed(session, blobs: BlobStore, *, ocr: bool) -> int:
    """Queue again the versions whose extraction failed for a cause now gone; return how many.

    The causes: OCR was missing or off and now runs (tesseract and its Chinese pack installed, KJDMS_OCR on),
    or the file could not be read and the blob store has it again.
    """
    causes = [OCR_MISSING, OCR_LANGUAGE_MISSING, OCR_OFF] if ocr and ocr_problem() is None else []
    conditions = [AttachmentVersion.text_error.contains(cause) for cause in causes]
    candidates = session.scalars(select(AttachmentVersion).where(
        AttachmentVersion.text_status != TEXT_PENDING,
        or_(AttachmentVersion.text_error == BLOB_UNREADABLE, *conditions))).all()
    again = [version for version in candidates
             if version.text_error != BLOB_UNREADABLE or _readable(blobs, version.sha256)]
    for version in again:
        version.text_status = TEXT_PENDING
    session.commit()
    if again:
        log.info("text extraction: %d failed versions queued again, their cause is gone", len(again))
    return len(again)
