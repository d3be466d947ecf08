"""Write an upload's rows with statements built once: the dossier touched under its version check, the slot's
attachment row on its first upload, the version numbered after the slot's last; then tell change tracking.

Loading the dossier's documents with all their versions to append one through the unit of work cost an upload
more Python than its rows' round trips, and grew with every version the slot had.
"""
from __future__ import annotations

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm.util import identity_key

from ..models import Attachment, AttachmentVersion, Dossier, utcnow
from .change_tracking import track_written
from .dossier_rows import mark_written, stale, update_params, versioned_update

attachments, versions = Attachment.__table__, AttachmentVersion.__table__
# A version row alone would not change the dossier's row: touching it makes its version check catch a submit that
# happened since the dossier was read, which must not receive a document after the fact.
TOUCH_DOSSIER = versioned_update("updated_at")
# The columns of a version the caller gives (write_version's values); write_version adds the time of the upload.
GIVEN = ("sha256", "size", "media_type", "original_filename", "uploaded_by_id", "comment")
WRITTEN = (*GIVEN, "uploaded_at")
# A slot's next version in one statement: numbered after the slot's last, found by the dossier and the slot; no row
# when the slot has none yet (its first upload inserts the attachment row, then version 1).
INSERT_NEXT_VERSION = (insert(versions).from_select(
    ["attachment_id", "number", *WRITTEN],
    select(attachments.c.id, func.coalesce(func.max(versions.c.number), 0) + 1,
           *(bindparam(name, type_=versions.c[name].type) for name in WRITTEN))
    .select_from(attachments.outerjoin(versions))
    .where(attachments.c.dossier_id == bindparam("dossier_id"), attachments.c.slot == bindparam("slot"))
    .group_by(attachments.c.id))
    .returning(versions.c.id, versions.c.attachment_id, versions.c.number))
INSERT_ATTACHMENT = insert(attachments).returning(attachments.c.id)
INSERT_VERSION = insert(versions).returning(versions.c.id)


def write_version(session, dossier: Dossier, slot: str, values: dict) -> tuple[int, int]:
    """Store a new version of dossier's slot with values (its GIVEN columns; uploaded_at is now); return id and number.

    Written in session's transaction, which the caller commits. Raise StaleDataError, as the ORM's version check
    does, when the stored dossier's version is no longer the one read.
    """
    if values.keys() - set(GIVEN):
        raise ValueError(f"not a version's given column: {sorted(values.keys() - set(GIVEN))}")
    connection, moment = session.connection(), utcnow()
    # The dossier first: its row lock (PostgreSQL) or the write lock (SQLite) orders concurrent uploads, so the
    # last number the version's insert reads is still the last when it inserts.
    if connection.execute(TOUCH_DOSSIER, update_params(dossier, {"updated_at": moment})).rowcount != 1:
        raise stale(dossier)
    mark_written(session, dossier, {"updated_at": moment})
    slot_row = {"dossier_id": dossier.id, "slot": slot}
    given = {name: values.get(name) for name in GIVEN} | {"uploaded_at": moment}
    found = connection.execute(INSERT_NEXT_VERSION, {**slot_row, **given}).first()
    if found is None:
        attachment_id, number = connection.execute(INSERT_ATTACHMENT, slot_row).scalar_one(), 1
        version_id = connection.execute(INSERT_VERSION, {**given, "attachment_id": attachment_id,
                                                         "number": number}).scalar_one()
    else:
        version_id, attachment_id, number = found
    _forget_loaded_documents(session, dossier, attachment_id, created=found is None)
    track_written(session, {dossier.id}, counted=False)
    return version_id, number


def _forget_loaded_documents(session, dossier: Dossier, attachment_id: int, created: bool) -> None:
    """Expire what the session holds of the slot's versions and, when the slot is new, of dossier's documents."""
    # By identity, however the session came to hold the attachment: its version list misses the row just written.
    attachment = session.identity_map.get(identity_key(Attachment, attachment_id))
    if attachment is not None:
        session.expire(attachment, ["versions"])
    if created:
        session.expire(dossier, ["attachments"])
