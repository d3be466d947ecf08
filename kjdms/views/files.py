"""Downloads and inline previews of attachment versions, for whoever may view the dossier."""
from __future__ import annotations

import hashlib
from urllib.parse import quote

from flask import Blueprint, Response, abort, request
from flask_login import current_user, login_required
from werkzeug.wsgi import wrap_file

from ..backends import get_blob_store, get_workflow
from ..extensions import db
from ..documents.images import PreviewUnavailable, notice_png, pdf_first_page_png
from ..models import AttachmentVersion
from ..permissions import can
from ..services import disclosures

bp = Blueprint("files", __name__, url_prefix="/files")
EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}


def attachment_disposition(filename: str, fallback: str) -> str:
    """Return a Content-Disposition that downloads as filename (UTF-8, RFC 6266) with an ASCII fallback."""
    return f'attachment; filename="{fallback}"; filename*=UTF-8\'\'{quote(filename, safe="")}'


def viewable_version(version_id: int) -> AttachmentVersion:
    """Return the version if the current user may view its dossier; 404 otherwise, revealing nothing."""
    version = db.session.get(AttachmentVersion, version_id)
    if version is None or not can(get_workflow(), current_user, "view", version.attachment.dossier):
        abort(404)
    return version


def audited(version: AttachmentVersion, how: str) -> None:
    """Write staff's reading of a document to the audit log: the basic-information form holds the full ID number."""
    if not current_user.is_applicant:
        disclosures.document_read(db.session, current_user, version, how)


def safe_headers(response: Response) -> Response:
    """Add the headers every file sent to a browser carries: no sniffing, no caching, no active content."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def download_response(response: Response, filename: str, fallback: str) -> Response:
    """Mark response as a download named filename (fallback for old browsers), with the safe headers."""
    response.headers["Content-Disposition"] = attachment_disposition(filename, fallback)
    return safe_headers(response)


def measured(spool) -> tuple[int, str]:
    """Return the size and sha256 of what was written to spool (for the audit), rewound for sending."""
    size, digest = spool.tell(), hashlib.sha256()
    spool.seek(0)
    while chunk := spool.read(1024 * 1024):
        digest.update(chunk)
    spool.seek(0)
    return size, digest.hexdigest()


def zip_download(spool, size: int, filename: str, fallback: str) -> Response:
    """Stream the rewound spool as a ZIP download of size bytes named filename, with the safe headers."""
    response = Response(wrap_file(request.environ, spool), mimetype="application/zip", direct_passthrough=True)
    response.headers["Content-Length"] = str(size)
    return download_response(response, filename, fallback)


@bp.get("/<int:version_id>")
@login_required
def download(version_id):
    """Send a version's content as a download under its original name."""
    version = viewable_version(version_id)
    data = get_blob_store().read(version.sha256, verify=True)
    audited(version, "download")
    extension = EXTENSIONS.get(version.media_type, "")
    slot_name = version.attachment.dossier.number + f"-{version.attachment.slot}-v{version.number}{extension}"
    name = version.original_filename or slot_name
    if not name.lower().endswith(extension):
        name += extension
    return download_response(Response(data, mimetype=version.media_type), name, slot_name)


@bp.get("/<int:version_id>/preview.png")
@login_required
def preview(version_id):
    """Show a version inline: an image as it is, a PDF as its first page rendered to PNG."""
    version = viewable_version(version_id)
    data = get_blob_store().read(version.sha256, verify=True)
    audited(version, "preview")
    status = 200
    if version.media_type == "application/pdf":
        try:
            data, media_type = pdf_first_page_png(data), "image/png"
        except PreviewUnavailable as reason:
            # Still an image, so the page shows why in place of the preview (browsers draw a 415's image too).
            message = str(reason).removeprefix("文件：")
            if "下载" not in message:
                message += "，可下载原文件查看"
            data, media_type, status = notice_png(message), "image/png", 415
    elif version.media_type in ("image/png", "image/jpeg"):
        media_type = version.media_type
    else:
        abort(415)
    response = Response(data, status=status, mimetype=media_type)
    response.headers["Content-Disposition"] = "inline"
    return safe_headers(response)
