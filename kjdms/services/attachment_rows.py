"""Write an upload's rows with statements built once: the dossier touched under its version check, the slot's
attachment row on its first upload, the version numbered after the slot's last; then tell change tracking.

Loading the dossier's documents with all their versions to append one through the unit of work cost an upload
more Python than its rows' round trips, and grew with every version the slot had.
"""
from __future__ import annotations

from sqlalchemy import bindparam, func, insert, inspect, select

from ..models import Attachment, AttachmentVersion, Dossier, utcnow
from .change_tracking import track_written
from .dossier_rows import mark_written, stale, update_params, versioned_update

attachments, versions = Attachment.__table__, AttachmentVersion.__table__
# A version row alone would not change the dossier's row: touching it makes its version check catch a submit that
# happened since the dossier was read, which must not receive a document after the fact.
TOUCH_DOSSIER = versioned_update("updated_at")
SLOT_AND_LAST_NUMBER = (select(attachments.c.id, func.max(versions.c.number))
                        .select_from(attachments.outerjoin(versions))
                        .where(attachments.c.dossier_id == bindparam("dossier_id"),
                               attachments.c.slot == bindparam("slot"))
                        .group_by(attachments.c.id))
INSERT_ATTACHMENT = insert(attachments).returning(attachments.c.id)
INSERT_VERSION = insert(versions).returning(versions.c.id)


def write_version(session, dossier: Dossier, slot: str, values: dict) -> tuple[int, int]:
    """Store a new version of dossier's slot with values (its columns but number), in session's transaction; return its id and number.

    Raise StaleDataError, as the ORM's version check does, when the stored dossier's version is no longer the one read.
    """
    connection, moment = session.connection(), utcnow()
    # The dossier first: its row lock (PostgreSQL) or the write lock (SQLite) orders concurrent uploads, so the
    # last number read next is still the last when the version is inserted.
    if connection.execute(TOUCH_DOSSIER, update_params(dossier, {"updated_at": moment})).rowcount != 1:
        raise stale(dossier)
    mark_written(session, dossier, {"updated_at": moment})
    found = connection.execute(SLOT_AND_LAST_NUMBER, {"dossier_id": dossier.id, "slot": slot}).first()
    if found is None:
        attachment_id, number = connection.execute(INSERT_ATTACHMENT, {"dossier_id": dossier.id, "slot": slot}).scalar_one(), 1
    else:
        attachment_id, number = found[0], (found[1] or 0) + 1
    version_id = connection.execute(
        INSERT_VERSION, {**values, "attachment_id": attachment_id, "number": number, "uploaded_at": moment}).scalar_one()
    _forget_loaded_documents(session, dossier, slot)
    track_written(session, {dossier.id})
    return version_id, number


def _forget_loaded_documents(session, dossier: Dossier, slot: str) -> None:
    """Expire the documents of dossier the session holds, which miss the rows just written."""
    if "attachments" in inspect(dossier).unloaded:
        return
    for attachment in dossier.attachments:
        if attachment.slot == slot:
            session.expire(attachment, ["versions"])
    session.expire(dossier, ["attachments"])
