"""A dossier for staff, as the review page shows it: its fields (ID number masked), its documents' metadata, the audited reveal."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from flask_login import current_user
from pydantic import AfterValidator, BaseModel, Field

from ..backends import get_workflow
from ..display import mask_id_number
from ..extensions import db
from ..models import Dossier, Region, as_utc
from ..permissions import can, roles_on
from ..services import disclosures
from ..services.time_rules import late_flags
from ..views import dossier_or_404
from ..views.filters import acted_by
from ..vocabulary import ATTACHMENT_SLOTS, REVEAL_ID_NUMBER, STAFF_ROLES
from . import BEARER, SESSION, bp, responses, spec
from .auth import staff_role_required
from .errors import ApiError
from .validation import plain_text, without_id_number

# A moment with its offset, as JSON Schema's date-time asks (SQLite hands back naive UTC values).
Moment = Annotated[datetime, AfterValidator(as_utc)]
STAFF_SECURITY = [{BEARER: []}, {SESSION: []}]
DECISIONS = ("approve", "reject")


class RegionRef(BaseModel):
    """A region by its code and name."""

    code: str = Field(description="地区代码，如 211302")
    name: str = Field(description="地区名称，如 双塔区")

    @classmethod
    def of(cls, region: Region | None) -> RegionRef | None:
        """Return region's reference, or None for no region."""
        return cls(code=region.code, name=region.name) if region is not None else None


class LateFlag(BaseModel):
    """A one-month rule the person missed (辽财会〔2019〕116号 三)."""

    kind: str = Field(description="registration：登记超过一个月；update：变更后超过一个月才更新")
    label: str
    detail: str


class HistoryEntry(BaseModel):
    """One fired transition of the dossier."""

    action: str = Field(description="操作，如 submit、approve、reject")
    from_state: str
    to_state: str
    acted_by: str = Field(description="办理者，如“双塔区财政局 · 审核人员”、“本人”")
    comment: str | None = Field(default=None, description="意见或退回理由")
    flagged: list[str] = Field(description="退回时指出的有问题的项目（代码）")
    at: Moment


class PersonFields(BaseModel):
    """The person's identity; the ID number only masked (the full one only through the audited reveal)."""

    name: str | None = Field(description="姓名（已删除个人信息的档案为空）")
    id_number_masked: str | None = Field(description="身份证号，仅显示前四位和后四位")
    sex: str | None = Field(description="性别代码")
    birth_date: date | None
    is_legacy: bool = Field(description="原辽宁省财政会计事务系统导入的人员")


class DossierDetail(BaseModel):
    """A dossier's basic information as the review page shows it; codes as in the applicant's form."""

    id: int
    number: str = Field(description="档案编号，如 KJ0000000042")
    state: str = Field(description="状态：draft、submitted、approved、rejected、archived、purged")
    state_title: str
    state_changed_at: Moment
    lock_version: int = Field(description="版本号：提交审核结论时原样带回，档案已被修改则答 409")
    is_working_copy: bool = Field(description="信息变更单（对已审核确认档案的变更）")
    baseline_id: int | None = Field(description="信息变更单所变更的档案")
    to_confirm: bool = Field(description="原系统导入、尚未更新确认")
    region: RegionRef | None = Field(description="归属地区")
    person: PersonFields
    phone: str | None
    education: str | None
    scope_category: str | None
    job_types: list[str]
    employer_name: str | None
    employer_uscc: str | None
    employer_org_code: str | None
    employer_region: RegionRef | None
    household_region: RegionRef | None
    is_student: bool
    school_region: RegionRef | None
    qualification_level: str
    qualification_certificate_number: str | None
    legacy_certificate_number: str | None
    job_started_on: date | None
    information_changed_on: date | None
    late_flags: list[LateFlag]
    history: list[HistoryEntry]
    may_reveal_id_number: bool = Field(description="调用者能否查看完整身份证号（POST …/id-number-reveals）")
    decisions: list[str] = Field(description="调用者现在可以作出的审核结论：approve、reject")


class DocumentVersion(BaseModel):
    """One uploaded version of a supporting document: metadata only, never the content or the file's name."""

    slot: str = Field(description="材料类别代码，如 basic_info_form")
    slot_title: str
    version: int = Field(description="第几版")
    current: bool = Field(description="是否为该类别的现行版本")
    size: int = Field(description="字节数")
    media_type: str = Field(description="按内容识别的类型，如 application/pdf")
    sha256: str
    uploaded_at: Moment


class DossierDocuments(BaseModel):
    """The documents of a dossier, every version, slot by slot, oldest version first."""

    dossier_id: int
    documents: list[DocumentVersion]


class RevealBody(BaseModel):
    """Why the caller needs the full ID number: written to the audit log with who asked."""

    reason: Annotated[plain_text(min_length=2, max_length=200), AfterValidator(without_id_number)] = Field(
        description="查看理由，如“核对身份证复印件”（写入审计日志，不能写身份证号）")


class RevealedIdNumber(BaseModel):
    """The full ID number, given once for this request; the audit log records who asked and why."""

    dossier_id: int
    id_number: str | None = Field(description="完整身份证号")


def masked(id_number: str | None) -> str | None:
    """Return the ID number masked, or None for a purged person's."""
    return mask_id_number(id_number) if id_number else None


def _detail(dossier: Dossier) -> DossierDetail:
    workflow = get_workflow()
    person = dossier.person
    roles = roles_on(current_user, dossier)
    return DossierDetail(
        id=dossier.id, number=dossier.number, state=dossier.state,
        state_title=workflow.definition.states[dossier.state].title, state_changed_at=dossier.state_changed_at,
        lock_version=dossier.lock_version, is_working_copy=dossier.is_working_copy, baseline_id=dossier.baseline_id,
        to_confirm=dossier.to_confirm, region=RegionRef.of(dossier.region),
        person=PersonFields(name=person.name, id_number_masked=masked(person.id_number),
                            sex=person.sex, birth_date=person.birth_date, is_legacy=person.is_legacy),
        phone=dossier.phone, education=dossier.education, scope_category=dossier.scope_category,
        job_types=list(dossier.job_types or ()), employer_name=dossier.employer_name,
        employer_uscc=dossier.employer_uscc, employer_org_code=dossier.employer_org_code,
        employer_region=RegionRef.of(dossier.employer_region), household_region=RegionRef.of(dossier.household_region),
        is_student=bool(dossier.is_student), school_region=RegionRef.of(dossier.school_region),
        qualification_level=dossier.qualification_level,
        qualification_certificate_number=dossier.qualification_certificate_number,
        legacy_certificate_number=dossier.legacy_certificate_number,
        job_started_on=dossier.job_started_on, information_changed_on=dossier.information_changed_on,
        late_flags=[LateFlag(kind=flag.kind, label=flag.label, detail=flag.detail) for flag in late_flags(dossier)],
        history=[HistoryEntry(action=row.action, from_state=row.from_state, to_state=row.to_state, acted_by=acted_by(row),
                              comment=row.comment, flagged=list(row.flagged or ()), at=row.created_at)
                 for row in dossier.history],
        may_reveal_id_number=can(workflow, current_user, REVEAL_ID_NUMBER, dossier),
        decisions=[transition.name for transition in workflow.available_transitions(dossier, roles)
                   if transition.name in DECISIONS and dossier.checked_in_at is None],
    )


@bp.get("/dossiers/<int:dossier_id>")
@staff_role_required(*STAFF_ROLES)
@spec.validate(resp=responses(DossierDetail, 400, 404), tags=["staff"], security=STAFF_SECURITY)
def dossier_detail(dossier_id: int):
    """Return a dossier's basic information, the ID number masked: 404 for one outside the caller's regions."""
    return _detail(dossier_or_404(dossier_id))


@bp.get("/dossiers/<int:dossier_id>/documents")
@staff_role_required(*STAFF_ROLES)
@spec.validate(resp=responses(DossierDocuments, 400, 404), tags=["staff"], security=STAFF_SECURITY)
def dossier_documents(dossier_id: int):
    """List the metadata of every version of a dossier's documents (slot, version, size, type, sha256, time)."""
    dossier = dossier_or_404(dossier_id)
    order = list(ATTACHMENT_SLOTS)
    attachments = sorted(dossier.attachments, key=lambda a: order.index(a.slot) if a.slot in order else len(order))
    return DossierDocuments(dossier_id=dossier.id, documents=[
        DocumentVersion(slot=attachment.slot, slot_title=ATTACHMENT_SLOTS[attachment.slot].title
                        if attachment.slot in ATTACHMENT_SLOTS else attachment.slot,
                        version=version.number, current=version is attachment.current, size=version.size,
                        media_type=version.media_type, sha256=version.sha256, uploaded_at=version.uploaded_at)
        for attachment in attachments for version in attachment.versions])


@bp.post("/dossiers/<int:dossier_id>/id-number-reveals")
@staff_role_required(*STAFF_ROLES)
@spec.validate(json=RevealBody, resp=responses(RevealedIdNumber, 400, 404, 422, status=201), tags=["staff"],
               security=STAFF_SECURITY)
def reveal_id_number(dossier_id: int, json: RevealBody):
    """Give the full ID number once, after writing who asked and why to the audit log (as the review page does)."""
    dossier = dossier_or_404(dossier_id)
    if not can(get_workflow(), current_user, REVEAL_ID_NUMBER, dossier):
        raise ApiError(403, message="您没有「查看完整身份证号」此档案的权限。")
    disclosures.reveal_id_number(db.session, current_user, dossier, reason=json.reason)
    return RevealedIdNumber(dossier_id=dossier.id, id_number=dossier.person.id_number), 201
