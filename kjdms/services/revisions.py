"""Dossier revisions: a snapshot written with every committed change, and the dossier as it stood on a past date."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import JSON, String, bindparam, cast, column, func, insert, inspect, select
from sqlalchemy.orm import aliased, object_session
from sqlalchemy.orm.util import identity_key

from ..display import value_text
from ..local_time import end_of_day
from ..models import (Attachment, AttachmentVersion, Dossier, DossierRevision, Region, WorkflowHistory,
                      as_utc, utcnow)
from ..vocabulary import DOSSIER_LABELS, REJECTED_STATE

# The archive reads days as the finance departments do: the calendar day in Beijing.
NO_RECORD_BEFORE = "此日期之前无记录"
REVISED_LATER = "该档案在此日期已存在，但最早的修订记录晚于此日期（批量导入的档案在首次修改前没有修订记录）"

# The basic information in a revision, in the order the form prints it. The ID number is left
# out: it never changes, and a revision must not become another copy of it.
FIELD_LABELS = {**{field: label for field, label in DOSSIER_LABELS.items() if field != "id_number"}, "region": "归属地区"}
PERSON_FIELDS = ("name", "sex", "birth_date")
REGION_FIELDS = ("employer_region", "household_region", "school_region", "region")
DATE_FIELDS = ("birth_date", "job_started_on", "information_changed_on")
# Built once: every change writes revisions.
INSERT_REVISION = insert(DossierRevision)
_later = aliased(AttachmentVersion)
# Each slot's current version (its highest number, as Attachment.current), for a dossier whose documents are not
# loaded: one statement instead of loading every version of every slot.
CURRENT_VERSIONS = (select(Attachment.slot, AttachmentVersion.id, AttachmentVersion.number, AttachmentVersion.sha256)
                    .join(Attachment.versions)
                    .where(Attachment.dossier_id == bindparam("dossier_id"),
                           AttachmentVersion.number == select(func.max(_later.number))
                           .where(_later.attachment_id == Attachment.id).scalar_subquery())
                    .order_by(Attachment.id))  # the slots in the loaded collection's order: the same JSON either way
# The codes of regions by id, for a dossier whose regions are not loaded: a revision keeps only their codes, and a
# lazy load of each region as an object cost an upload more Python than the rest of its revision.
REGION_CODES = select(Region.id, Region.code).where(Region.id.in_(bindparam("ids", expanding=True)))


def region_codes(dossier: Dossier) -> dict[str, str | None]:
    """Return each of dossier's region fields → its region's code, reading only the codes the session lacks."""
    state, codes, missing = inspect(dossier), {}, {}
    unloaded = state.unloaded
    for name in REGION_FIELDS:
        if name in unloaded:
            # What the lazy load would find without a statement: the region the session holds with its code.
            region_id = getattr(dossier, f"{name}_id")
            region = None if region_id is None else state.session.identity_map.get(identity_key(Region, region_id))
            if region_id is not None and (region is None or "code" in inspect(region).unloaded):
                missing[name] = region_id
                continue
        else:
            region = getattr(dossier, name)
        codes[name] = region.code if region is not None else None
    if missing:
        # Core rows on the session's connection: no object to build, no ORM execution to set up.
        found = dict(state.session.connection().execute(REGION_CODES, {"ids": sorted(set(missing.values()))}).all())
        codes.update({name: found.get(region_id) for name, region_id in missing.items()})
    return codes


def snapshot_fields(dossier: Dossier) -> dict:
    """Return the basic information of dossier and its person as JSON-ready field → value (regions by code)."""
    fields, codes = {}, region_codes(dossier)
    for name in FIELD_LABELS:
        if name in codes:
            fields[name] = codes[name]
            continue
        value = getattr(dossier.person if name in PERSON_FIELDS else dossier, name)
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, list):
            value = list(value)
        fields[name] = value
    return fields


def snapshot_attachments(dossier: Dossier) -> dict:
    """Return slot → the current version's id, number and sha256."""
    if "attachments" in inspect(dossier).unloaded:
        # Core rows on the session's connection, as the region codes: no ORM execution to set up for plain columns.
        rows = object_session(dossier).connection().execute(CURRENT_VERSIONS, {"dossier_id": dossier.id})
        return {slot: {"version_id": version_id, "number": number, "sha256": sha256}
                for slot, version_id, number, sha256 in rows}
    return {attachment.slot: {"version_id": version.id, "number": version.number, "sha256": version.sha256}
            for attachment in dossier.attachments if (version := attachment.current) is not None}


def revision_row(dossier: Dossier) -> dict:
    """Return the columns of a revision of dossier as it now stands."""
    return {"dossier_id": dossier.id, "recorded_at": utcnow(), "state": dossier.state,
            "fields": snapshot_fields(dossier), "attachments": snapshot_attachments(dossier),
            "is_legacy": bool(dossier.person.is_legacy), "to_confirm": bool(dossier.to_confirm)}


def revision_rows(session, dossier_ids) -> list[dict]:
    """Return the revision rows of the effective dossiers among dossier_ids as they now stand, for change_tracking to
    write in session's transaction (stats_counters.recount does, along with the counters)."""
    rows = []
    for dossier_id in sorted(dossier_ids):
        dossier = session.get(Dossier, dossier_id)
        # A deleted dossier (a cancelled working copy) has none. A working copy is no effective record: it keeps
        # only its content as rejected, which the reviewer compares its resubmission with (services/resubmission.py).
        if dossier is not None and (dossier.baseline_id is None or dossier.state == REJECTED_STATE):
            rows.append(revision_row(dossier))
    return rows


def insert_revisions(connection, rows: list[dict]) -> None:
    """Insert revision_rows' rows on connection."""
    # Straight to the connection, after the flush of the changes: the transaction never reads a revision
    # back, and a second flush (the unit of work once more) would only cost time.
    if rows:
        connection.execute(INSERT_REVISION, rows)


# PostgreSQL inserts them in another statement of the transaction (a data-modifying WITH, see stats_counters), as one
# JSON array: the JSON columns keep their text as the insert above writes it (json.dumps's, element by element).
REVISION_COLUMNS = ("dossier_id", "recorded_at", "state", "fields", "attachments", "is_legacy", "to_confirm")
_revisions = DossierRevision.__table__
_given = func.json_to_recordset(cast(bindparam("revisions", type_=String), JSON)).table_valued(
    *(column(name, _revisions.c[name].type) for name in REVISION_COLUMNS)).render_derived(with_types=True)
INSERT_REVISIONS_FROM_JSON = insert(_revisions).from_select(
    list(REVISION_COLUMNS), select(*(_given.c[name] for name in REVISION_COLUMNS)))


def revisions_json(rows: list[dict]) -> str:
    """Return revision_rows' rows as the JSON array INSERT_REVISIONS_FROM_JSON takes."""
    return json.dumps([{**row, "recorded_at": row["recorded_at"].isoformat()} for row in rows])


# -- the dossier on a past date ----------------------------------------------------------------

@dataclass
class AttachmentThen:
    """One slot's current version on the date: its recorded number and hash, and the row if it still exists."""

    slot: str
    number: int
    sha256: str
    version: AttachmentVersion | None


@dataclass
class DossierAsOf:
    """The dossier as it stood at the end of a day: fields, documents, state, and the history to then."""

    day: date
    cutoff: datetime
    state: str | None = None
    fields: dict | None = None
    attachments: list[AttachmentThen] = field(default_factory=list)
    history: list[WorkflowHistory] = field(default_factory=list)
    revision: DossierRevision | None = None
    # Set when the day shows no recorded content, saying why.
    note: str | None = None
    # True when no revision exists and the current content stands in for the day (bulk-imported dossiers).
    from_current: bool = False

    @property
    def found(self) -> bool:
        """Tell whether there is content to show for the day."""
        return self.fields is not None


def dossier_as_of(session, dossier: Dossier, day: date) -> DossierAsOf:
    """Return dossier as it stood at the end of day (Beijing): the last revision recorded before then."""
    cutoff = end_of_day(day)
    result = DossierAsOf(day=day, cutoff=cutoff)
    if as_utc(dossier.created_at) >= cutoff:
        result.note = NO_RECORD_BEFORE
        return result
    result.history = session.scalars(
        select(WorkflowHistory).where(WorkflowHistory.dossier_id == dossier.id, WorkflowHistory.created_at < cutoff)
        .order_by(WorkflowHistory.created_at, WorkflowHistory.id)).all()
    revision = session.scalars(
        select(DossierRevision).where(DossierRevision.dossier_id == dossier.id, DossierRevision.recorded_at < cutoff)
        .order_by(DossierRevision.recorded_at.desc(), DossierRevision.id.desc()).limit(1)).first()
    if revision is None:
        if session.scalar(select(DossierRevision.id).where(DossierRevision.dossier_id == dossier.id).limit(1)):
            result.note = REVISED_LATER
            return result
        # Written by a bulk import, never changed since: what it holds now is what it held then.
        result.from_current = True
        result.state, result.fields = dossier.state, snapshot_fields(dossier)
        attachments = snapshot_attachments(dossier)
    else:
        result.revision, result.state, result.fields = revision, revision.state, dict(revision.fields)
        attachments = revision.attachments
    result.attachments = [_attachment_then(session, dossier, slot, recorded)
                          for slot, recorded in sorted(attachments.items())]
    return result


def _attachment_then(session, dossier: Dossier, slot: str, recorded: dict) -> AttachmentThen:
    version = session.get(AttachmentVersion, recorded["version_id"])
    # Only a version still of this dossier with the recorded content is the one that stood then.
    if version is not None and (version.attachment.dossier_id != dossier.id or version.sha256 != recorded["sha256"]):
        version = None
    return AttachmentThen(slot, recorded["number"], recorded["sha256"], version)


def shown_fields(session, fields: dict) -> list[tuple[str, str]]:
    """Return a revision's fields as (label, Chinese text) in the form's order."""
    codes = [fields.get(name) for name in REGION_FIELDS if fields.get(name)]
    regions = {region.code: region for region in session.scalars(select(Region).where(Region.code.in_(codes)))}
    shown = []
    for name, label in FIELD_LABELS.items():
        value = fields.get(name)
        if name in REGION_FIELDS and value in regions:
            value = regions[value]
        elif name in DATE_FIELDS and value:
            value = date.fromisoformat(value)
        shown.append((label, value_text(name, value)))
    return shown
