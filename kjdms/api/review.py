"""The reviewer's queue and the review decision for staff tools, with the review pages' filters, scope and checks."""
from __future__ import annotations

from typing import Literal

from flask_login import current_user
from pydantic import BaseModel, Field, field_validator

from ..backends import get_workflow
from ..extensions import db
from ..services.lifecycle import fire_transition
from ..services.reference import region_by_code
from ..services.transaction import ConflictError
from ..services.worklist import PAGE_SIZE, queue_roles, reviewer_queue
from ..views import MAX_ID, dossier_or_404
from ..views.review import WAITING_CHOICES
from ..vocabulary import REJECTABLE_ITEMS
from ..workflow import TransitionRefused
from . import bp, responses, spec
from .auth import staff_role_required
from .dossiers import STAFF_SECURITY, Moment, RegionRef, masked
from .errors import ApiError, FieldError
from .validation import FIELD_LABELS, plain_text

RejectableItem = Literal[tuple(REJECTABLE_ITEMS)]


class WorklistQuery(BaseModel):
    """The queue's filters, as on the page /review/."""

    region: str | None = Field(default=None, max_length=32, description="只看此地区代码（须在调用者管辖范围内）")
    waited: int = Field(default=0, ge=0, description="只看等待超过此天数的：0（不限）、3、7、15、30")
    page: int = Field(default=1, ge=1, le=MAX_ID, description="页码，每页 50 件")

    @field_validator("waited")
    @classmethod
    def _offered(cls, value: int) -> int:
        if value not in WAITING_CHOICES:
            raise ValueError("只能是 " + "、".join(str(days) for days in WAITING_CHOICES))
        return value


class QueuedDossier(BaseModel):
    """A dossier waiting for review; the ID number masked."""

    id: int
    number: str
    name: str | None
    id_number_masked: str | None
    employer_name: str | None
    region: RegionRef | None
    is_working_copy: bool = Field(description="信息变更单")
    waiting_since: Moment = Field(description="提交审核的时间")


class RegionCount(BaseModel):
    """How many dossiers wait in one region of the caller's (no other region is ever counted)."""

    region: RegionRef
    count: int


class Worklist(BaseModel):
    """One page of the caller's queue, the longest waiting first, and the counts per region of their own regions."""

    total: int = Field(description="符合筛选条件的件数")
    page: int
    pages: int
    page_size: int
    counts_by_region: list[RegionCount]
    dossiers: list[QueuedDossier]


class DecisionBody(BaseModel):
    """A review decision: approve, or reject with a reason and the items at fault, on the version read."""

    decision: Literal["approve", "reject"] = Field(description="approve：审核确认；reject：退回")
    comment: plain_text(max_length=2000) | None = Field(default=None, description="意见；退回时必填（退回理由）")
    flagged: list[RejectableItem] = Field(default_factory=list, max_length=len(REJECTABLE_ITEMS),
                                          description="退回时指出的有问题的项目（代码），如 employer_name、attachment:education_certificate")
    lock_version: int = Field(ge=1, le=MAX_ID, description="读取档案时的版本号（GET /dossiers/{id} 的 lock_version）")


class Decision(BaseModel):
    """The decision as recorded: the dossier's new state and version."""

    dossier_id: int
    decision: str
    state: str
    lock_version: int


def _queue_region_id(code: str | None) -> int | None:
    if code is None:
        return None
    region = region_by_code(db.session, code)
    # An unknown code filters to nothing, exactly as a region outside the caller's scope does.
    return region.id if region is not None else -1


@bp.get("/review/worklist")
@staff_role_required(lambda: queue_roles(get_workflow()))
@spec.validate(query=WorklistQuery, resp=responses(Worklist, 400, 422), tags=["staff"], security=STAFF_SECURITY)
def worklist(query: WorklistQuery):
    """List the submitted dossiers of the caller's regions, the longest waiting first (the page /review/)."""
    queue = reviewer_queue(db.session, get_workflow(), current_user, region_id=_queue_region_id(query.region),
                           waited_days=query.waited or None, page=query.page)
    return Worklist(
        total=queue.total, page=queue.page, pages=queue.pages, page_size=PAGE_SIZE,
        counts_by_region=[RegionCount(region=RegionRef.of(region), count=count) for region, count in queue.counts_by_region],
        dossiers=[QueuedDossier(id=dossier.id, number=dossier.number, name=dossier.name,
                                id_number_masked=masked(dossier.id_number), employer_name=dossier.employer_name,
                                region=RegionRef(code=dossier.region_code, name=dossier.region_name)
                                if dossier.region_code else None,
                                is_working_copy=dossier.is_working_copy, waiting_since=dossier.state_changed_at)
                  for dossier in queue.dossiers])


def _refused_field(error: TransitionRefused) -> FieldError:
    path = {"fields": "flagged"}.get(error.field, error.field)
    label = FIELD_LABELS.get(path, path)
    return FieldError(field=path, message=f"{label}（{path}）：{error.message.removeprefix(label + '：')}")


@bp.post("/dossiers/<int:dossier_id>/decisions")
@staff_role_required(lambda: queue_roles(get_workflow()))
@spec.validate(json=DecisionBody, resp=responses(Decision, 400, 404, 409, 422, status=201), tags=["staff"],
               security=STAFF_SECURITY)
def decide(dossier_id: int, json: DecisionBody):
    """Approve, or reject with a reason and flagged items; a decision on a stale version is refused with 409."""
    dossier = dossier_or_404(dossier_id)
    try:
        fire_transition(db.session, get_workflow(), dossier, json.decision, current_user,
                        json.comment or None, expected_version=json.lock_version, flagged=json.flagged)
    except ConflictError as error:
        raise ApiError(409, message=str(error)) from None
    except TransitionRefused as error:
        if error.field is not None:
            field = _refused_field(error)
            raise ApiError(422, "invalid", f"请求内容有误：{field.message}", errors=[field]) from None
        raise ApiError(422, "refused", error.message) from None
    return Decision(dossier_id=dossier.id, decision=json.decision, state=dossier.state,
                    lock_version=dossier.lock_version), 201
