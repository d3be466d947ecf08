"""The credit file (个人信用档案, 四（二）): append-only findings on a person, pinned evidence, who may see them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, bindparam, event, exists, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import object_session, selectinload

from ..local_time import local_today
from ..models import AttachmentVersion, CreditChain, CreditRecord, Dossier, Region
from ..permissions import Actor, PermissionDenied, require, roles_on
from ..validators import ValidationError, ValidationErrors
from ..vocabulary import CREDIT_KINDS, PURGED_STATE, VIEW_CREDIT_FILE
from ..workflow import WorkflowEngine
from . import audit
from .identity import id_number_hash
from .transaction import committing
from .worklist import clamp_page, covered_region_ids

DEFAULT_LEGAL_BASIS = "辽财会〔2019〕116号 四（二）"
MAX_FINDING = 2000
MAX_LEGAL_BASIS = 128
MAX_EVIDENCE = 20
FILES_PAGE_SIZE = 50
# Officers work on Beijing dates: "not in the future" is judged by the local calendar, not UTC.
APPEND_ONLY_MESSAGE = "信用档案记录只能追加，不能修改或删除：请登记一条更正或撤销记录"
CREDIT_FIELD_LABELS = {"kind": "类别", "finding": "查实情况", "legal_basis": "依据", "evidence": "证据",
          "found_on": "查实日期", "reason": "撤销理由"}


class AppendOnlyError(Exception):
    """Someone tried to change or delete a credit record; corrections and revocations are new records."""

    def __init__(self):
        super().__init__(APPEND_ONLY_MESSAGE)


class CreditRefused(Exception):
    """The record cannot be superseded (already superseded, or of another person); nothing was saved."""


# -- append-only at the ORM (the SQL triggers of migration 0005 refuse what bypasses it) ----------

@event.listens_for(CreditRecord, "before_update")
def _refuse_update(mapper, connection, target):
    # Raised before the UPDATE statement: the flush rolls back and nothing is written.
    if any(attribute.history.has_changes() for attribute in inspect(target).attrs):
        raise AppendOnlyError()


@event.listens_for(CreditRecord, "before_delete")
def _refuse_delete(mapper, connection, target):
    raise AppendOnlyError()


# -- reading a credit file --------------------------------------------------------------------

def credit_file(session, person_id: int) -> list[CreditChain]:
    """Return the person's credit file as chains, the most recently changed first."""
    records = session.scalars(
        select(CreditRecord).where(CreditRecord.person_id == person_id).order_by(CreditRecord.id)
        .options(selectinload(CreditRecord.office_region).selectinload(Region.parent))).all()
    successor = {record.supersedes_id: record for record in records if record.supersedes_id is not None}
    chains = []
    for root in (record for record in records if record.supersedes_id is None):
        chain = [root]
        while chain[-1].id in successor:
            chain.append(successor[chain[-1].id])
        chains.append(CreditChain(chain))
    return sorted(chains, key=lambda chain: chain.head.id, reverse=True)


_RECORDS = CreditRecord.__table__
_LATER = _RECORDS.alias("later")
# The SQL condition of a live record: not a revocation, and nothing supersedes it (built once per process). Written
# in the table's columns: a select of those alone runs as Core, without the ORM's work on each statement (a fifth
# of the review page's credit summary).
LIVE = (_RECORDS.c.action != "revoke") & ~exists().where(_LATER.c.supersedes_id == _RECORDS.c.id)
LIVE_COUNTS = (select(_RECORDS.c.person_id, func.count())
               .where(_RECORDS.c.person_id.in_(bindparam("person_ids", expanding=True)), LIVE)
               .group_by(_RECORDS.c.person_id))
LIVE_COUNT = select(func.count()).select_from(_RECORDS).where(_RECORDS.c.person_id == bindparam("person_id"), LIVE)
# The same count for the person of the dossier a select reads, as a column of that select (the review page's).
LIVE_COUNT_OF_DOSSIERS_PERSON = (select(func.count()).select_from(_RECORDS)
                                 .where(_RECORDS.c.person_id == Dossier.person_id, LIVE).scalar_subquery())


def live_person_ids(session, person_ids) -> set[int]:
    """Return which of person_ids have at least one live credit record (one query for them all)."""
    person_ids = [person_id for person_id in set(person_ids) if person_id is not None]
    if not person_ids:
        return set()
    return set(session.scalars(select(CreditRecord.person_id).distinct().where(
        CreditRecord.person_id.in_(person_ids), LIVE)))


def live_count(session, person_id: int) -> int:
    """Return how many live records the person's credit file holds."""
    return session.execute(LIVE_COUNT, {"person_id": person_id}).scalar_one()


def live_counts(session, person_ids) -> dict[int, int]:
    """Return how many live records each of person_ids has (absent: none), in one query."""
    return dict(session.execute(LIVE_COUNTS, {"person_ids": list(person_ids)}).all())


# -- the credit officers' list ---------------------------------------------------------------------

@dataclass
class CreditFileEntry:
    """One person's credit file in the list: their dossier, the latest record and how many are live."""

    dossier: Dossier
    latest: CreditRecord
    live: int

    @property
    def name(self) -> str:
        """The person's name, or the name the record kept once the dossier was purged."""
        return self.dossier.person.name or self.latest.subject_name


@dataclass
class CreditFilesPage:
    """One page of the credit files a user keeps, the latest recorded first."""

    files: list[CreditFileEntry]
    total: int
    page: int
    pages: int


def file_keepers(workflow: WorkflowEngine) -> frozenset[str]:
    """Return the roles that may read every credit file holding records (the purged state's view_credit_file)."""
    return workflow.definition.states[PURGED_STATE].roles_with(VIEW_CREDIT_FILE)


def recorders(workflow: WorkflowEngine) -> frozenset[str]:
    """Return the roles that may record findings in some state (annotate)."""
    return frozenset().union(*(state.roles_with("annotate") for state in workflow.definition.states.values()))


def credit_files_page(session, workflow: WorkflowEngine, user, *, page: int = 1) -> CreditFilesPage:
    """Return a page of the credit files whose person's dossier lies where user keeps credit files."""
    # Where a user holds a keeper's role, may_view lets them read every file (it holds records by definition).
    regions = covered_region_ids(session, user, *file_keepers(workflow))
    in_scope = and_(Dossier.person_id == CreditRecord.person_id, Dossier.baseline_id.is_(None),
                    Dossier.region_id.in_(regions))
    total = session.scalar(
        select(func.count(CreditRecord.person_id.distinct())).select_from(CreditRecord).join(Dossier, in_scope))
    page, pages = clamp_page(page, total, FILES_PAGE_SIZE)
    latest_id = func.max(CreditRecord.id).label("latest_id")
    latest_ids = session.scalars(
        select(latest_id).select_from(CreditRecord).join(Dossier, in_scope).group_by(CreditRecord.person_id)
        .order_by(latest_id.desc()).offset((page - 1) * FILES_PAGE_SIZE).limit(FILES_PAGE_SIZE)).all()
    records = session.scalars(
        select(CreditRecord).where(CreditRecord.id.in_(latest_ids)).order_by(CreditRecord.id.desc())).all()
    dossiers = {dossier.person_id: dossier for dossier in session.scalars(
        select(Dossier).where(Dossier.person_id.in_([record.person_id for record in records]),
                              Dossier.baseline_id.is_(None))
        .options(selectinload(Dossier.person), selectinload(Dossier.region)))}
    live = live_counts(session, dossiers)
    files = [CreditFileEntry(dossiers[record.person_id], record, live.get(record.person_id, 0)) for record in records]
    return CreditFilesPage(files, total, page, pages)


@dataclass
class DossiersPage:
    """One page of the dossiers a credit officer may record a finding on, the latest changed first."""

    dossiers: list[Dossier]
    total: int
    page: int
    pages: int


def recordable_dossiers_page(session, workflow: WorkflowEngine, user, *, page: int = 1) -> DossiersPage:
    """Return a page of the dossiers of user's credit-officer regions in a state where a finding may be recorded."""
    roles = recorders(workflow)
    regions = covered_region_ids(session, user, *roles)
    states = [name for name, state in workflow.definition.states.items() if state.roles_with("annotate") & roles]
    where = and_(Dossier.baseline_id.is_(None), Dossier.region_id.in_(regions), Dossier.state.in_(states))
    total = session.scalar(select(func.count()).select_from(Dossier).where(where))
    page, pages = clamp_page(page, total, FILES_PAGE_SIZE)
    dossiers = session.scalars(
        select(Dossier).where(where).order_by(Dossier.state_changed_at.desc(), Dossier.id.desc())
        .offset((page - 1) * FILES_PAGE_SIZE).limit(FILES_PAGE_SIZE)
        .options(selectinload(Dossier.person), selectinload(Dossier.region))).all()
    return DossiersPage(list(dossiers), total, page, pages)


# -- who may see and write ---------------------------------------------------------------------

def may_view(workflow: WorkflowEngine, actor: Actor, dossier: Dossier, roles: frozenset[str] | None = None) -> bool:
    """Tell whether staff actor may read the credit file of dossier's person.

    The state's view_credit_file roles (reviewers, credit officers, administrators of the region); the
    file keepers (view_credit_file in the purged state) also whenever the file holds records, as it
    outlives a purge. roles: actor's roles on dossier, when the caller has read them already.
    """
    if actor is None or getattr(actor, "is_applicant", True):
        return False
    roles = roles_on(actor, dossier) if roles is None else roles
    if dossier.state != PURGED_STATE and workflow.has_permission(dossier.state, VIEW_CREDIT_FILE, roles):
        return True
    # A draft's existence stays hidden from credit officers, as the workflow wants, unless it has a file.
    return bool(roles & file_keepers(workflow)) and object_session(dossier).scalar(
        select(CreditRecord.id).where(CreditRecord.person_id == dossier.person_id).limit(1)) is not None


def may_record(workflow: WorkflowEngine, actor: Actor, dossier: Dossier, roles: frozenset[str] | None = None) -> bool:
    """Tell whether actor may write to the credit file from dossier in its current state (roles: actor's on it)."""
    return not getattr(actor, "is_applicant", True) and workflow.has_permission(
        dossier.state, "annotate", roles_on(actor, dossier) if roles is None else roles)


def recording_office(workflow: WorkflowEngine, actor, dossier: Dossier) -> Region:
    """Return the region of actor's recording assignment nearest above dossier: the recording office."""
    roles = recorders(workflow)
    held = {assignment.region_id: assignment.region for assignment in actor.role_assignments
            if assignment.role in roles}
    if dossier.region is not None:
        for region in dossier.region.ancestors_and_self():
            if region.id in held:
                return region
    else:
        # As roles_on: a dossier with no region is reached only from the top of the tree.
        for region in held.values():
            if region.parent_id is None:
                return region
    raise PermissionDenied("您不是该档案所属地区的信用档案管理人员")


def evidence_choices(dossier: Dossier) -> list[AttachmentVersion]:
    """Return every version of every attachment of dossier, what a finding can point at."""
    return [version for attachment in dossier.attachments for version in attachment.versions]


def pin(version: AttachmentVersion) -> dict:
    """Return what a record keeps of an attachment version: enough to prove which bytes it meant."""
    return {"version_id": version.id, "slot": version.attachment.slot, "number": version.number,
            "sha256": version.sha256, "media_type": version.media_type, "filename": version.original_filename}


# -- writing -------------------------------------------------------------------------------------

def _fail(field: str, detail: str) -> ValidationError:
    return ValidationError(field, f"{CREDIT_FIELD_LABELS[field]}：{detail}")


def _clean_text(errors, field, value, limit) -> str:
    text = str(value or "").strip()
    if not text:
        errors.append(_fail(field, "必填"))
    elif len(text) > limit:
        errors.append(_fail(field, f"不能超过{limit}个字"))
    return text


def _clean_date(errors, value, today: date) -> date | None:
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        text = str(value or "").strip()
        if not text:
            errors.append(_fail("found_on", "必填"))
            return None
        try:
            value = date.fromisoformat(text)
        except ValueError:
            errors.append(_fail("found_on", "应为“年-月-日”格式的日期，如 2019-05-20"))
            return None
    if value > today:
        errors.append(_fail("found_on", "不能晚于今天"))
        return None
    return value


def _clean_evidence(errors, dossier: Dossier, version_ids) -> list[dict]:
    choices = {version.id: version for version in evidence_choices(dossier)}
    wanted = []
    for raw in version_ids or ():
        text = str(raw).strip()
        if not text.isdigit() or int(text) not in choices:
            errors.append(_fail("evidence", "所选材料不属于该档案"))
            return []
        if int(text) not in wanted:
            wanted.append(int(text))
    if not wanted:
        errors.append(_fail("evidence", "请至少选择一份证明材料（可选任一版本）"))
    elif len(wanted) > MAX_EVIDENCE:
        errors.append(_fail("evidence", f"最多选择{MAX_EVIDENCE}份"))
    return [pin(choices[version_id]) for version_id in sorted(wanted)]


def _clean_finding(dossier, *, kind, finding, legal_basis, evidence, found_on, today) -> dict:
    """Return the finding's fields cleaned, or raise ValidationErrors naming every bad one."""
    errors = []
    if kind not in CREDIT_KINDS:
        errors.append(_fail("kind", "请从列表中选择"))
    cleaned = {
        "kind": kind,
        "finding": _clean_text(errors, "finding", finding, MAX_FINDING),
        "legal_basis": _clean_text(errors, "legal_basis", legal_basis, MAX_LEGAL_BASIS),
        "evidence": _clean_evidence(errors, dossier, evidence),
        "found_on": _clean_date(errors, found_on, today or local_today()),
    }
    if errors:
        raise ValidationErrors(errors)
    return cleaned


def _superseded(session, dossier: Dossier, record_id: int) -> CreditRecord:
    """Return the record a correction or revocation changes, if it may still be changed."""
    record = session.get(CreditRecord, record_id)
    if record is None or record.person_id != dossier.person_id:
        raise CreditRefused("只能更正或撤销该人员信用档案中的记录")
    if session.scalar(select(CreditRecord.id).where(CreditRecord.supersedes_id == record.id)) is not None:
        raise CreditRefused("该记录已被更正或撤销，只能对最新的一条办理：请刷新后查看")
    if record.action == "revoke":
        raise CreditRefused("撤销记录不能再更正或撤销")
    return record


def _add(session, workflow, dossier, actor, action, fields, supersedes, id_hash_key) -> CreditRecord:
    """Add the record and its audit event, and commit them together (the caller checked the actor)."""
    person = dossier.person
    if not person.id_number or not person.name:
        raise CreditRefused("该人员的个人信息已删除，不能再登记")
    record = CreditRecord(
        person=person, action=action, supersedes=supersedes, office_region=recording_office(workflow, actor, dossier),
        recorded_by_id=actor.id, recorded_by_label=actor.label, subject_name=person.name,
        subject_id_hash=id_number_hash(id_hash_key, person.id_number), **fields)
    try:
        with committing(session):
            session.add(record)
            session.flush()
            audit.record(session, actor, f"credit.{action}", "credit_record", record.id, dossier_id=dossier.id,
                         supersedes_id=supersedes.id if supersedes else None, fields=sorted(fields))
    except IntegrityError as error:
        if supersedes is None:
            raise
        # Two officers changing the same record at once: the unique index on supersedes_id lets one win.
        raise CreditRefused("该记录已被他人更正或撤销，您的操作未保存：请刷新后查看") from error
    return record


def record_finding(session, workflow: WorkflowEngine, dossier: Dossier, actor: Actor, *, kind: str,
                   finding: str, legal_basis: str = DEFAULT_LEGAL_BASIS, evidence=(), found_on,
                   id_hash_key: str, today: date | None = None) -> CreditRecord:
    """Record a finding on the credit file of dossier's person, evidence pinned from dossier's versions."""
    require(workflow, actor, "annotate", dossier)
    fields = _clean_finding(dossier, kind=kind, finding=finding, legal_basis=legal_basis, evidence=evidence,
                            found_on=found_on, today=today)
    return _add(session, workflow, dossier, actor, "record", fields, None, id_hash_key)


def correct_record(session, workflow: WorkflowEngine, dossier: Dossier, record_id: int, actor: Actor, *,
                   kind: str, finding: str, legal_basis: str, evidence=(), found_on, id_hash_key: str,
                   today: date | None = None) -> CreditRecord:
    """Record a correction: a new record, as it should have read, that supersedes record_id."""
    require(workflow, actor, "annotate", dossier)
    superseded = _superseded(session, dossier, record_id)
    fields = _clean_finding(dossier, kind=kind, finding=finding, legal_basis=legal_basis, evidence=evidence,
                            found_on=found_on, today=today)
    return _add(session, workflow, dossier, actor, "correct", fields, superseded, id_hash_key)


def revoke_record(session, workflow: WorkflowEngine, dossier: Dossier, record_id: int, actor: Actor, *,
                  reason: str, legal_basis: str = DEFAULT_LEGAL_BASIS, found_on=None, id_hash_key: str,
                  today: date | None = None) -> CreditRecord:
    """Record a revocation of record_id, with its reason; the chain is no longer live."""
    require(workflow, actor, "annotate", dossier)
    superseded = _superseded(session, dossier, record_id)
    errors = []
    today = today or local_today()
    fields = {
        "kind": superseded.kind,
        "finding": _clean_text(errors, "reason", reason, MAX_FINDING),
        "legal_basis": _clean_text(errors, "legal_basis", legal_basis, MAX_LEGAL_BASIS),
        "evidence": [],
        "found_on": _clean_date(errors, found_on if found_on not in (None, "") else today, today),
    }
    if errors:
        raise ValidationErrors(errors)
    return _add(session, workflow, dossier, actor, "revoke", fields, superseded, id_hash_key)
