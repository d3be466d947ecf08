"""Add a version to one of a dossier's attachment slots, sniffing and capping the upload first."""
from __future__ import annotations

from pathlib import PurePath

import magic

from ..blobs import BlobStore
from ..documents.images import ImageRefused, reencode_image
from ..models import Attachment, AttachmentVersion, Dossier, utcnow
from ..permissions import Actor, require
from ..validators import ValidationError, check_text, clean_filename
from ..vocabulary import ATTACHMENT_SLOTS
from ..workflow import WorkflowEngine
from . import audit
from .transaction import committing

ALLOWED_MEDIA_TYPES = {"application/pdf": "PDF", "image/jpeg": "JPEG", "image/png": "PNG"}
EXTENSION_MEDIA_TYPES = {".pdf": "application/pdf", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                         ".png": "image/png"}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


def sniff_media_type(data: bytes) -> str:
    """Return the media type libmagic reads from the content's first bytes."""
    return magic.from_buffer(data[:8192], mime=True)


def size_label(size: int) -> str:
    """Return size in the largest unit that shows it exactly: MB, KB or bytes."""
    # Floor division to MB alone would tell someone under a 500 KB limit that it is 0 MB.
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} 字节"


def read_capped(stream_or_bytes, max_bytes: int) -> bytes:
    """Return the upload's bytes, refusing (without reading on) anything over max_bytes."""
    if isinstance(stream_or_bytes, (bytes, bytearray)):
        data = bytes(stream_or_bytes)
    else:
        data = stream_or_bytes.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValidationError("file", f"文件：超过大小上限 {size_label(max_bytes)}")
    return data


def check_upload(data: bytes, filename: str | None) -> str:
    """Return the sniffed media type of an acceptable upload, or raise ValidationError naming the file."""
    if not data:
        raise ValidationError("file", "文件：内容为空")
    media_type = sniff_media_type(data)
    if media_type not in ALLOWED_MEDIA_TYPES:
        raise ValidationError("file", "文件：只接受 PDF、JPEG、PNG 格式（按文件内容识别）")
    claimed = EXTENSION_MEDIA_TYPES.get(PurePath(filename or "").suffix.lower())
    if filename and claimed != media_type:
        raise ValidationError(
            "file", f"文件：内容是 {ALLOWED_MEDIA_TYPES[media_type]}，与文件名“{PurePath(filename).name}”的扩展名不符")
    return media_type


def add_attachment_version(session, workflow: WorkflowEngine, blobs: BlobStore, dossier: Dossier,
                           slot: str, upload, actor: Actor, *, filename: str | None = None,
                           comment: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
                           ) -> AttachmentVersion:
    """Store upload as the newest version of dossier's slot and return that version."""
    require(workflow, actor, "add_attachment", dossier)
    if slot not in ATTACHMENT_SLOTS:
        raise ValidationError("slot", f"证明材料：没有“{slot}”这一类")
    # Checked before the blob is stored: a refusal after it would leave the blob behind.
    filename = clean_filename(filename)
    check_text("comment", "说明", comment)
    data = read_capped(upload, max_bytes)
    media_type = check_upload(data, filename)
    if media_type.startswith("image/"):
        # Re-encoding drops EXIF (GPS included) and anything hidden after the pixels.
        try:
            data = reencode_image(data, media_type)
        except ImageRefused as error:
            raise ValidationError("file", str(error)) from error
    # Blob first, row second: a crash in between leaves an unreferenced blob that
    # `kjdms blobs gc` removes, never a row pointing at nothing.
    info = blobs.put(data)
    with committing(session):
        attachment = dossier.attachment(slot)
        if attachment is None:
            attachment = Attachment(slot=slot)
            dossier.attachments.append(attachment)
        version = AttachmentVersion(
            number=len(attachment.versions) + 1, sha256=info.sha256, size=info.size,
            media_type=media_type, original_filename=PurePath(filename).name[:255] if filename else None,
            uploaded_by_id=getattr(actor, "id", None), comment=(comment or "").strip() or None,
        )
        attachment.versions.append(version)
        # Touch the dossier so its version check catches a submit that happened since it was read;
        # a new version row alone would not update the dossier and would slip into a submitted dossier.
        dossier.updated_at = utcnow()
        session.flush()
        audit.record(session, actor, "attachment.add_version", "dossier", dossier.id,
                     slot=slot, version=version.number, sha256=info.sha256, size=info.size)
    return version
