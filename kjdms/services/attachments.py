"""Add a version to one of a dossier's attachment slots, sniffing and capping the upload first."""
from __future__ import annotations

import io
from pathlib import PurePath
from typing import BinaryIO

import magic

from ..blobs import BlobStore
from ..blobs.base import CHUNK_SIZE
from ..blobs.staging import StagedBlob
from ..documents.images import ImageRefused, reencode_image
from ..models import AttachmentVersion, Dossier
from ..permissions import Actor, require
from ..validators import ValidationError, check_text, clean_filename
from ..vocabulary import ATTACHMENT_SLOTS
from ..workflow import WorkflowEngine
from . import audit
from .attachment_rows import write_version
from .transaction import committing

ALLOWED_MEDIA_TYPES = {"application/pdf": "PDF", "image/jpeg": "JPEG", "image/png": "PNG"}
EXTENSION_MEDIA_TYPES = {".pdf": "application/pdf", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                         ".png": "image/png"}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# libmagic reads the type from the first bytes; the rest streams into the blob store.
SNIFF_BYTES = 8192


def sniff_media_type(data: bytes) -> str:
    """Return the media type libmagic reads from the content's first bytes."""
    return magic.from_buffer(data[:SNIFF_BYTES], mime=True)


def size_label(size: int) -> str:
    """Return size in the largest unit that shows it exactly: MB, KB or bytes."""
    # Floor division to MB alone would tell someone under a 500 KB limit that it is 0 MB.
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} 字节"


def refuse_past_cap(size: int, max_bytes: int) -> None:
    """Raise ValidationError naming the file when size passes max_bytes."""
    if size > max_bytes:
        raise ValidationError("file", f"文件：超过大小上限 {size_label(max_bytes)}")


def open_upload(upload, max_bytes: int):
    """Return upload as a stream with its head read, refused when past max_bytes."""
    if isinstance(upload, StagedBlob):
        # Staged while the request was parsed: its size, hash and head are known without reading it again.
        refuse_past_cap(upload.size, max_bytes)
        return upload
    return CappedUpload(io.BytesIO(upload) if isinstance(upload, (bytes, bytearray)) else upload, max_bytes)


class CappedUpload:
    """An upload read once, in chunks: its first bytes kept for sniffing, refused as soon as it passes the cap."""

    def __init__(self, source: BinaryIO, max_bytes: int):
        self._source, self._max_bytes = source, max_bytes
        # One byte past the cap is enough to refuse: an oversize upload is not read on.
        self.head = source.read(min(SNIFF_BYTES, max_bytes + 1))
        self._unread, self.size = self.head, 0
        self._count(len(self.head))

    def _count(self, size: int) -> None:
        self.size += size
        refuse_past_cap(self.size, self._max_bytes)

    def read(self, size: int = -1) -> bytes:
        """Return up to size bytes (everything left when size is negative), refusing past the cap."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))
        if self._unread:
            chunk, self._unread = self._unread[:size], self._unread[size:]
            return chunk
        chunk = self._source.read(size)
        self._count(len(chunk))
        return chunk


def check_upload(head: bytes, filename: str | None) -> str:
    """Return the sniffed media type of an acceptable upload (head: its first bytes), or raise ValidationError naming the file."""
    if not head:
        raise ValidationError("file", "文件：内容为空")
    media_type = sniff_media_type(head)
    if media_type not in ALLOWED_MEDIA_TYPES:
        raise ValidationError("file", "文件：只接受 PDF、JPEG、PNG 格式（按文件内容识别）")
    claimed = EXTENSION_MEDIA_TYPES.get(PurePath(filename or "").suffix.lower())
    if filename and claimed != media_type:
        raise ValidationError(
            "file", f"文件：内容是 {ALLOWED_MEDIA_TYPES[media_type]}，与文件名“{PurePath(filename).name}”的扩展名不符")
    return media_type


def add_attachment_version(session, workflow: WorkflowEngine, blobs: BlobStore, dossier: Dossier,
                           slot: str, upload, actor: Actor, **options) -> AttachmentVersion:
    """Store upload as the newest version of dossier's slot (as store_attachment_version) and return that version."""
    version_id, _ = store_attachment_version(session, workflow, blobs, dossier, slot, upload, actor, **options)
    return session.get(AttachmentVersion, version_id)


def store_attachment_version(session, workflow: WorkflowEngine, blobs: BlobStore, dossier: Dossier,
                             slot: str, upload, actor: Actor, *, filename: str | None = None,
                             comment: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[int, int]:
    """Store upload as the newest version of dossier's slot and return that version's id and number.

    What the upload page needs: reading the committed version back (add_attachment_version) is one statement more.
    """
    require(workflow, actor, "add_attachment", dossier)
    if slot not in ATTACHMENT_SLOTS:
        raise ValidationError("slot", f"证明材料：没有“{slot}”这一类")
    # Checked before the blob is stored: a refusal after it would leave the blob behind.
    filename = clean_filename(filename)
    check_text("comment", "说明", comment)
    upload = open_upload(upload, max_bytes)
    media_type = check_upload(upload.head, filename)
    # Blob first, row second: a crash in between leaves an unreferenced blob that
    # `kjdms blobs gc` removes, never a row pointing at nothing.
    if media_type.startswith("image/"):
        # Re-encoding drops EXIF (GPS included) and anything hidden after the pixels; it needs the whole image.
        try:
            info = blobs.put(reencode_image(upload.read(), media_type))
        except ImageRefused as error:
            raise ValidationError("file", str(error)) from error
    else:
        # One pass: hashed and written as it is read; past the cap the store drops what it wrote.
        info = blobs.put(upload)
    with committing(session):
        version_id, number = write_version(session, dossier, slot, {
            "sha256": info.sha256, "size": info.size, "media_type": media_type,
            "original_filename": PurePath(filename).name[:255] if filename else None,
            "uploaded_by_id": getattr(actor, "id", None), "comment": (comment or "").strip() or None})
        audit.record(session, actor, "attachment.add_version", "dossier", dossier.id,
                     slot=slot, version=number, sha256=info.sha256, size=info.size)
    return version_id, number
