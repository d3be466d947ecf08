"""The tables: regions, users and roles, persons and dossiers, attachments, history, audit."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from flask_login import UserMixin
from sqlalchemy import (JSON, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index, Integer,
                        String, Text, UniqueConstraint, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db
from .vocabulary import CREDIT_ACTIONS, CREDIT_KINDS, STAFF_ROLES


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """Return moment as an aware UTC time (SQLite hands stored times back naive)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


class DossierNumbering:
    """The number and working-copy test of anything with a dossier's id and baseline_id (Dossier, a worklist row)."""

    __slots__ = ()  # no instance dictionary of its own: a worklist row is an immutable tuple

    @property
    def number(self) -> str:
        """Return the dossier number printed on the basic-information form (a working copy shows its baseline's)."""
        return f"KJ{self.baseline_id or self.id:010d}"

    @property
    def is_working_copy(self) -> bool:
        """Tell whether this is a working copy of an approved dossier."""
        return self.baseline_id is not None


class Region(db.Model):
    """A node of the region tree: province, city, county office or special unit."""

    __tablename__ = "regions"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    office_name: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(128))
    hours: Mapped[str | None] = mapped_column(String(64))
    # Set once an administrator edits the region: `kjdms init` then leaves it as they made it.
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # 二（五）: Dalian collects under its own rules; the platform sends its people there.
    collected_elsewhere: Mapped[bool] = mapped_column(Boolean, default=False)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    parent: Mapped[Region | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Region]] = relationship(back_populates="parent", order_by="Region.sort_order")

    def ancestors_and_self(self) -> list[Region]:
        """Return this region and every region above it, nearest first."""
        chain, node = [], self
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain

    @property
    def path_name(self) -> str:
        """Return the names from the top of the tree down, e.g. 辽宁省 / 朝阳市 / 双塔区."""
        return " / ".join(region.name for region in reversed(self.ancestors_and_self()))

    def __repr__(self):
        return f"<Region {self.code} {self.name}>"


class User(UserMixin, db.Model):
    """Someone who signs in: an applicant (by ID number, through Person) or staff (by user name)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("(username IS NULL) <> (person_id IS NULL)", name="applicant_or_staff"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str | None] = mapped_column(String(64), unique=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    # None until a legacy person sets a password at first sign-in.
    password_hash: Mapped[str | None] = mapped_column(String(256))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Staff only: the office the account belongs to; administrators above it manage it (services/staff.py).
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    department: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    # Where notices are also e-mailed, when SMTP is configured; set by the user on the notices page.
    email: Mapped[str | None] = mapped_column(String(254))
    # A one-time password was given (new account, reset): the user must choose their own before anything else.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Raised to end every session of this user at once (services/sessions.py).
    session_generation: Mapped[int] = mapped_column(Integer, server_default="0")

    person: Mapped[Person | None] = relationship(back_populates="user")
    region: Mapped[Region | None] = relationship()
    role_assignments: Mapped[list[RoleAssignment]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    @property
    def is_applicant(self) -> bool:
        """Tell whether this is an accounting person rather than staff."""
        return self.person_id is not None

    @property
    def office_label(self) -> str:
        """Return how pages name this staff user to others: the office (双塔区财政局), not the user name."""
        if self.region is not None:
            office = self.region.office_name or self.region.name
            return f"{office}（{self.department}）" if self.department else office
        return self.display_name or self.label

    @property
    def label(self) -> str:
        """Return how audit records name this user without personal data."""
        return self.username if self.username else f"applicant:{self.id}"

    def __repr__(self):
        return f"<User {self.label}>"


class RoleAssignment(db.Model):
    """A staff role held on a region and, like a Plone local role, on every region below it."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        UniqueConstraint("user_id", "role", "region_id", name="uq_role_assignments_user_role_region"),
        CheckConstraint("role IN (%s)" % ", ".join(f"'{r}'" for r in STAFF_ROLES), name="known_role"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)

    user: Mapped[User] = relationship(back_populates="role_assignments")
    region: Mapped[Region] = relationship()


class Person(db.Model):
    """An accounting person's identity, anchored on the ID number (GB 11643)."""

    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Null once purged: the tombstone keeps only a keyed hash.
    id_number: Mapped[str | None] = mapped_column(String(18), unique=True)
    name: Mapped[str | None] = mapped_column(String(64))
    sex: Mapped[str | None] = mapped_column(String(8))
    # Indexed: the statistics count the birth month at an age band's edge day by day (services/statistics.py).
    birth_date: Mapped[date | None] = mapped_column(Date, index=True)
    # Registered in the old provincial system (原辽宁省财政会计事务系统), holds the old certificate.
    is_legacy: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[User | None] = relationship(back_populates="person")
    # The effective dossier, the one other systems read; working copies hang off it.
    dossier: Mapped[Dossier | None] = relationship(
        primaryjoin="and_(Person.id == Dossier.person_id, Dossier.baseline_id.is_(None))",
        viewonly=True, uselist=False,
    )
    dossiers: Mapped[list[Dossier]] = relationship(back_populates="person", order_by="Dossier.id")


ONE_EFFECTIVE_DOSSIER = text("baseline_id IS NULL")
ONE_OPEN_WORKING_COPY = text("baseline_id IS NOT NULL AND checked_in_at IS NULL")
NOT_CHECKED_IN = text("checked_in_at IS NULL")
A_WORKING_COPY = text("baseline_id IS NOT NULL")


class Dossier(DossierNumbering, db.Model):
    """A person's basic information and documents, moving through the dossier workflow.

    A working copy (after plone.app.iterate) is a Dossier whose baseline_id points at the
    approved one; approving it checks its content into the baseline.
    """

    __tablename__ = "dossiers"
    __table_args__ = (
        Index("uq_dossiers_effective_person", "person_id", unique=True,
              sqlite_where=ONE_EFFECTIVE_DOSSIER, postgresql_where=ONE_EFFECTIVE_DOSSIER),
        Index("uq_dossiers_open_working_copy", "baseline_id", unique=True,
              sqlite_where=ONE_OPEN_WORKING_COPY, postgresql_where=ONE_OPEN_WORKING_COPY),
        Index("ix_dossiers_state_changed", "state", "state_changed_at"),
        # The reviewer's queue: counts per region and pages by waiting time, without reading the table (SQLite tests
        # "checked_in_at IS NULL" again on each row, though the index's condition implies it: the column is here).
        Index("ix_dossiers_queue", "state", "region_id", "state_changed_at", "checked_in_at",
              sqlite_where=NOT_CHECKED_IN, postgresql_where=NOT_CHECKED_IN),
        # A dossier's working copies (statistics counters): partial, so that no "baseline_id IS NULL" (every
        # effective dossier) is ever read through it.
        Index("ix_dossiers_baseline_id", "baseline_id", sqlite_where=A_WORKING_COPY, postgresql_where=A_WORKING_COPY),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    baseline_id: Mapped[int | None] = mapped_column(ForeignKey("dossiers.id"))
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(32), index=True)
    # When the state last changed: the reviewer's queue sorts and filters on the waiting time.
    state_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The region that collects and reviews it (属地化原则), derived when the fields change.
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    education: Mapped[str | None] = mapped_column(String(32))
    scope_category: Mapped[str | None] = mapped_column(String(32))
    job_types: Mapped[list] = mapped_column(JSON, default=list)
    employer_name: Mapped[str | None] = mapped_column(String(128))
    employer_uscc: Mapped[str | None] = mapped_column(String(18))
    employer_org_code: Mapped[str | None] = mapped_column(String(9))
    employer_region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    household_region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    is_student: Mapped[bool] = mapped_column(Boolean, default=False)
    school_region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    qualification_level: Mapped[str] = mapped_column(String(16), default="none")
    qualification_certificate_number: Mapped[str | None] = mapped_column(String(32))
    legacy_certificate_number: Mapped[str | None] = mapped_column(String(32))
    # Imported from the old system and not yet confirmed by the person (二（三）).
    to_confirm: Mapped[bool] = mapped_column(Boolean, default=False)
    # 三: register within a month of taking an accounting job, update within a month of a change.
    job_started_on: Mapped[date | None] = mapped_column(Date)
    information_changed_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # Optimistic locking: a write based on a stale read fails instead of overwriting.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": lock_version}

    person: Mapped[Person] = relationship(back_populates="dossiers")
    baseline: Mapped[Dossier | None] = relationship(remote_side=[id], foreign_keys=[baseline_id])
    region: Mapped[Region | None] = relationship(foreign_keys=[region_id])
    employer_region: Mapped[Region | None] = relationship(foreign_keys=[employer_region_id])
    household_region: Mapped[Region | None] = relationship(foreign_keys=[household_region_id])
    school_region: Mapped[Region | None] = relationship(foreign_keys=[school_region_id])
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="dossier", cascade="all, delete-orphan", order_by="Attachment.id"
    )
    history: Mapped[list[WorkflowHistory]] = relationship(
        back_populates="dossier", cascade="all, delete-orphan", order_by="WorkflowHistory.id"
    )

    def attachment(self, slot: str) -> Attachment | None:
        """Return the attachment in slot, if one was ever uploaded."""
        return next((a for a in self.attachments if a.slot == slot), None)


class Attachment(db.Model):
    """One supporting-document slot of a dossier; each upload is a new version."""

    __tablename__ = "attachments"
    __table_args__ = (UniqueConstraint("dossier_id", "slot", name="uq_attachments_dossier_slot"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id", ondelete="CASCADE"), index=True)
    slot: Mapped[str] = mapped_column(String(32))

    dossier: Mapped[Dossier] = relationship(back_populates="attachments")
    versions: Mapped[list[AttachmentVersion]] = relationship(
        back_populates="attachment", cascade="all, delete-orphan", order_by="AttachmentVersion.number"
    )

    @property
    def current(self) -> AttachmentVersion | None:
        """Return the newest version."""
        return self.versions[-1] if self.versions else None


TEXT_PENDING, TEXT_DONE, TEXT_FAILED = "pending", "done", "failed"


class AttachmentVersion(db.Model):
    """One uploaded file, kept in the blob store under its sha256."""

    __tablename__ = "attachment_versions"
    __table_args__ = (UniqueConstraint("attachment_id", "number", name="uq_attachment_versions_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    attachment_id: Mapped[int] = mapped_column(ForeignKey("attachments.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    # Sniffed from the content; the uploaded name never decides the type or the storage path.
    media_type: Mapped[str] = mapped_column(String(64))
    original_filename: Mapped[str | None] = mapped_column(String(255))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    comment: Mapped[str | None] = mapped_column(Text)
    # Text for the search index, extracted after the upload by the worker (never in the upload's request).
    text_status: Mapped[str] = mapped_column(String(16), default=TEXT_PENDING, server_default=TEXT_PENDING)
    extracted_text: Mapped[str | None] = mapped_column(Text)
    text_method: Mapped[str | None] = mapped_column(String(16))
    text_error: Mapped[str | None] = mapped_column(Text)
    text_extracted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    attachment: Mapped[Attachment] = relationship(back_populates="versions")
    uploaded_by: Mapped[User | None] = relationship()


class WorkflowHistory(db.Model):
    """One fired transition (Plone's review_history)."""

    __tablename__ = "workflow_history"
    # The statistics read one action's rows over a time window (weekly flow, rejection items), not the whole history.
    __table_args__ = (Index("ix_workflow_history_action_created", "action", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The role the actor acted in; survives the actor's account (a purged owner has none).
    actor_role: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    # A rejection's items at fault (vocabulary.REJECTABLE_ITEMS codes): the applicant's to-do list and the statistics.
    flagged: Mapped[list] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dossier: Mapped[Dossier] = relationship(back_populates="history")
    actor: Mapped[User | None] = relationship()


class AuditEvent(db.Model):
    """Who did what to which object, without personal values (field names only)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    # The hash chain (services/audit_chain.py): position, the previous row's hash, this row's hash.
    sequence: Mapped[int] = mapped_column(Integer, unique=True)
    previous_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(db.Model):
    """The newest link of the audit chain, in one row: writers lock it so that the chain never forks."""

    __tablename__ = "audit_chain_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer)
    row_hash: Mapped[str] = mapped_column(String(64))


class LoginFailure(db.Model):
    """A failed sign-in, counted per account and per address to slow down guessing."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    # A keyed hash of "account:<id number or user name>" or "address:<ip>": no identity in the clear.
    key: Mapped[str] = mapped_column(String(64), index=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Tombstone(db.Model):
    """What remains of a purged dossier: a keyed hash of the ID number, when, who and why."""

    __tablename__ = "tombstones"
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"), unique=True)
    id_number_hash: Mapped[str] = mapped_column(String(64), index=True)
    # The keyed hash of the name (services/status_lookup.name_hash): a lookup must match the name too.
    # None on tombstones written before it was kept: such a person is never found by name and ID number.
    name_hash: Mapped[str | None] = mapped_column(String(64))
    purged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor_label: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str | None] = mapped_column(String(128))


class IndexOutbox(db.Model):
    """A dossier whose search-index entry must be rewritten, queued in the transaction that changed it.

    Rows are kept a day after indexing, so a reindex can replay what changed while it ran.
    """

    __tablename__ = "index_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key: a deleted working copy must still leave the row that removes it from the index.
    dossier_id: Mapped[int] = mapped_column(Integer, index=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


def _one_of(column: str, values) -> str:
    """Return a CHECK clause limiting column to values."""
    return f"{column} IN (%s)" % ", ".join(f"'{value}'" for value in values)


class CreditRecord(db.Model):
    """One entry of a person's credit file (个人信用档案, 四（二）).

    Append-only, at the ORM (services.credit refuses updates and deletes) and in SQL (triggers
    of migration 0005): a correction or revocation is a new record whose supersedes_id points
    at the one it changes. Evidence is pinned by hash, so later uploads cannot change it; a
    purge keeps the record, its subject's minimal identity and the hashes, not the files.
    """

    __tablename__ = "credit_records"
    __table_args__ = (
        CheckConstraint(_one_of("kind", CREDIT_KINDS), name="known_kind"),
        CheckConstraint(_one_of("action", CREDIT_ACTIONS), name="known_action"),
        CheckConstraint("(action = 'record') = (supersedes_id IS NULL)", name="changes_point_at_a_record"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    action: Mapped[str] = mapped_column(String(16), default="record")
    # Unique: a record is changed at most once, so two officers racing cannot fork its chain.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("credit_records.id"), index=True, unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    finding: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(String(128))
    # [{"version_id", "slot", "number", "sha256", "media_type", "filename"}]: pinned attachment versions.
    evidence: Mapped[list] = mapped_column(JSON, default=list)
    found_on: Mapped[date] = mapped_column(Date)
    office_region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_by_label: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Minimal identity, kept when the person's dossier is purged.
    subject_name: Mapped[str] = mapped_column(String(64))
    subject_id_hash: Mapped[str] = mapped_column(String(64), index=True)

    person: Mapped[Person] = relationship()
    supersedes: Mapped[CreditRecord | None] = relationship(remote_side=[id])
    office_region: Mapped[Region] = relationship()
    recorded_by: Mapped[User | None] = relationship()


@dataclass
class CreditChain:
    """A record and the corrections and revocation that followed it, oldest first."""

    records: list[CreditRecord]

    @property
    def head(self) -> CreditRecord:
        """Return the latest record of the chain, the one in force."""
        return self.records[-1]

    @property
    def live(self) -> bool:
        """Tell whether the chain still stands (its latest record is not a revocation)."""
        return self.head.action != "revoke"

    @property
    def status(self) -> str:
        """Return the chain's state in Chinese."""
        if not self.live:
            return "已撤销"
        return "有效（已更正）" if len(self.records) > 1 else "有效"


class Setting(db.Model):
    """A setting an administrator changed in the back office; it wins over its KJDMS_* default."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    updated_by_label: Mapped[str] = mapped_column(String(64))


class LegacyImport(db.Model):
    """One run of `kjdms import-legacy` over a file: how far it got (to resume) and what it did."""

    __tablename__ = "legacy_imports"
    id: Mapped[int] = mapped_column(primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    # The last data row handled (1 = the first row under the header): a rerun resumes after it.
    last_row: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)


class DossierRevision(db.Model):
    """A dossier as it stood after one committed change: the archive's view on a past date reads these."""

    __tablename__ = "dossier_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id", ondelete="CASCADE"), index=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    state: Mapped[str] = mapped_column(String(32))
    # The basic information (the person's name included, the ID number never changes) as field → value.
    fields: Mapped[dict] = mapped_column(JSON, default=dict)
    # slot → {"version_id", "number", "sha256"} of the current version of each attachment then.
    attachments: Mapped[dict] = mapped_column(JSON, default=dict)
    # The two flags of the old-system confirmation (二（三）) then: statistics of a past day count them.
    is_legacy: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    to_confirm: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class ReportRun(db.Model):
    """One generation of the report to the Ministry of Finance asked for on the report page: its progress and outcome.

    Only a run marked done has a complete report: the files move into place and the run is marked in one step
    at the end (services/report_runs.py), so a crash leaves a run that is running or failed, never done.
    """

    __tablename__ = "report_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    # An incremental report's id names its base's (report_id_for): a chain of them grows, hence the room.
    report_id: Mapped[str] = mapped_column(String(255))
    as_of: Mapped[date] = mapped_column(Date)
    since: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), index=True)  # running, done, failed
    processed: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    requested_by_label: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Moved on with every batch written: a running run whose heartbeat stopped was interrupted.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Notification(db.Model):
    """A notice to one user, shown in the site always; the outbox row the worker delivers by e-mail and SMS.

    Event notices are written in the transaction of their event (services/change_tracking.py); scheduled
    ones (reminders, digests, escalations) carry a dedupe_key so that each is queued at most once.
    """

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Gone with the account: a purge deletes the applicant's user and with it their notices.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)
    # The page where the user acts on it.
    link: Mapped[str | None] = mapped_column(String(255))
    # No foreign key: a notice about a working copy outlives the copy's row.
    dossier_id: Mapped[int | None] = mapped_column(Integer)
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the worker created its deliveries (null: not yet looked at).
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    user: Mapped[User] = relationship()
    deliveries: Mapped[list[NotificationDelivery]] = relationship(
        back_populates="notification", cascade="all, delete-orphan", passive_deletes=True)


DELIVERY_PENDING, DELIVERY_SENDING, DELIVERY_SENT = "pending", "sending", "sent"
DELIVERY_FAILED, DELIVERY_SKIPPED = "failed", "skipped"


class NotificationDelivery(db.Model):
    """One notice on one channel (e-mail, SMS): retried with backoff until sent, sent at most once."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (UniqueConstraint("notification_id", "channel"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=DELIVERY_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set while a worker sends it: another worker leaves it alone unless the claim is stale (a crash).
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why the last attempt failed or why it was skipped, in Chinese, never with the address in full.
    last_error: Mapped[str | None] = mapped_column(Text)

    notification: Mapped[Notification] = relationship(back_populates="deliveries")


Index("ix_notification_deliveries_due", NotificationDelivery.status, NotificationDelivery.next_attempt_at)


api_client_regions = db.Table(
    "api_client_regions",
    db.Column("client_id", ForeignKey("api_clients.id", ondelete="CASCADE"), primary_key=True),
    db.Column("region_id", ForeignKey("regions.id"), primary_key=True),
)


class ApiClient(db.Model):
    """A downstream system (exam registration, continuing education) allowed to ask the JSON API about persons.

    Only a hash of its key is kept: the key is shown once when created or rotated (services/api_clients.py).
    """

    __tablename__ = "api_clients"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(255))
    # Whether its lookups may say that a live credit finding exists (PIPL: only those who need it).
    may_see_credit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Lookups a minute before 429; each process counts in the database, so the limit holds across them.
    rate_per_minute: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The key's public first part finds the row; the sha256 of the whole key checks it.
    key_prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    regions: Mapped[list[Region]] = relationship(secondary=api_client_regions, order_by="Region.sort_order")
    created_by: Mapped[User | None] = relationship()

    @property
    def label(self) -> str:
        """Return how audit records and logs name this client."""
        return f"api:{self.name}"

    def __repr__(self):
        return f"<ApiClient {self.name}>"


class ApiRateWindow(db.Model):
    """How many persons a client asked about in one minute: one row a client and minute, raised atomically."""

    __tablename__ = "api_rate_windows"
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class StatsCounter(db.Model):
    """How many effective dossiers of one region and state hold one value of one dimension (services/stats_counters.py).

    One row per county-level region rather than one per province: two approvals in different counties never wait
    for each other, and the page adds the regions up the tree as it reads them.
    """

    __tablename__ = "stats_counters"
    # 0: no region yet (a unique key cannot hold NULL alike on both databases).
    region_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(32), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(32), primary_key=True)
    # "" when the field is not filled in.
    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class StatsMember(db.Model):
    """What one effective dossier adds to the counters now: the difference to its next state is what a change moves."""

    __tablename__ = "stats_members"
    dossier_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    region_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    # "dimension=value" → how many times (job types and history rows can count a dossier more than once).
    keys: Mapped[dict] = mapped_column(JSON, default=dict)
