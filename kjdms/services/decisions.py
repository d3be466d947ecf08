"""The dossiers a reviewer has decided: their approvals and rejections, newest first."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..models import Dossier, User, WorkflowHistory
from .worklist import PAGE_SIZE, clamp_page

DECISIONS = {"approve": "审核确认", "reject": "退回"}


@dataclass
class DecisionsPage:
    """One page of a reviewer's decisions: history rows with their dossiers, and the counts per decision."""

    rows: list[WorkflowHistory]
    total: int
    page: int
    pages: int
    counts: dict[str, int]


def decisions_of(session, user: User, *, action: str | None = None, page: int = 1) -> DecisionsPage:
    """Return the page-th page of the approvals and rejections user fired, newest first (action narrows to one)."""
    mine = (WorkflowHistory.actor_id == user.id, WorkflowHistory.action.in_(DECISIONS))
    counts = dict(session.execute(select(WorkflowHistory.action, func.count()).where(*mine)
                                  .group_by(WorkflowHistory.action)).all())
    chosen = (*mine, WorkflowHistory.action == action) if action in DECISIONS else mine
    total = session.scalar(select(func.count()).select_from(WorkflowHistory).where(*chosen))
    page, pages = clamp_page(page, total, PAGE_SIZE)
    rows = session.scalars(
        select(WorkflowHistory).where(*chosen)
        .order_by(WorkflowHistory.created_at.desc(), WorkflowHistory.id.desc())
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
        .options(selectinload(WorkflowHistory.dossier).selectinload(Dossier.person),
                 selectinload(WorkflowHistory.dossier).selectinload(Dossier.region))).all()
    return DecisionsPage(rows, total, page, pages, {name: counts.get(name, 0) for name in DECISIONS})
