"""The reviewer's queue (Plone's review worklist): the worklist reviewer_queue of the workflow file, in the user's regions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from ..models import Dossier, Region, RoleAssignment, User, utcnow
from ..vocabulary import REVIEWER_QUEUE
from ..workflow import WorkflowEngine

PAGE_SIZE = 50


def covered_region_ids(session, user: User, *roles: str) -> set[int]:
    """Return the ids of the regions where user holds any of roles, and of every region below them."""
    parents = dict(session.execute(select(Region.id, Region.parent_id)).all())
    children: dict[int | None, list[int]] = {}
    for region_id, parent_id in parents.items():
        children.setdefault(parent_id, []).append(region_id)
    roots = session.scalars(select(RoleAssignment.region_id).where(
        RoleAssignment.user_id == user.id, RoleAssignment.role.in_(roles))).all()
    covered, stack = set(), list(roots)
    while stack:
        region_id = stack.pop()
        if region_id not in covered:
            covered.add(region_id)
            stack.extend(children.get(region_id, []))
    return covered


def clamp_page(page: int, total: int, page_size: int) -> tuple[int, int]:
    """Return page brought within 1..pages for total rows, and pages (at least 1)."""
    pages = max(1, -(-total // page_size))
    return min(max(1, page), pages), pages


def queue_roles(workflow: WorkflowEngine) -> frozenset[str]:
    """Return the roles that work the reviewer queue: those holding its permission in its state."""
    queue = workflow.definition.worklists[REVIEWER_QUEUE]
    return workflow.definition.states[queue.state].roles_with(queue.permission)


def queue_conditions(workflow: WorkflowEngine, covered: set[int] | None = None) -> list:
    """Return the conditions selecting the queue's dossiers (waiting in its state, not a checked-in copy), within
    the regions covered when given."""
    state = workflow.definition.worklists[REVIEWER_QUEUE].state
    conditions = [Dossier.state == state, Dossier.checked_in_at.is_(None)]
    if covered is not None:
        conditions.append(Dossier.region_id.in_(covered))
    return conditions


@dataclass
class WorklistPage:
    """One page of the queue, with the counts that drive its filters."""

    dossiers: list[Dossier]
    total: int
    page: int
    pages: int
    counts_by_region: list[tuple[Region, int]]


def reviewer_queue(session, workflow: WorkflowEngine, user: User, *, region_id: int | None = None,
                   waited_days: int | None = None, page: int = 1) -> WorklistPage:
    """Return a page of the queue's dossiers within the regions where user works it, the longest waiting first."""
    covered = covered_region_ids(session, user, *queue_roles(workflow))
    scope = queue_conditions(workflow, covered)
    waited = Dossier.state_changed_at <= utcnow() - timedelta(days=waited_days) if waited_days else None
    # One grouped pass gives the per-region counts for the filter and the total of the page's filter.
    matching = func.sum(case((waited, 1), else_=0)) if waited is not None else func.count()
    rows = session.execute(select(Dossier.region_id, func.count(), matching).where(*scope)
                           .group_by(Dossier.region_id)).all()
    counts = {row_region: count for row_region, count, _ in rows}
    total = sum(int(match or 0) for row_region, _, match in rows if region_id in (None, row_region))
    if region_id is not None:
        scope.append(Dossier.region_id == (region_id if region_id in covered else -1))
    if waited is not None:
        scope.append(waited)
    page, pages = clamp_page(page, total, PAGE_SIZE)
    dossiers = session.scalars(
        select(Dossier).where(*scope).order_by(Dossier.state_changed_at, Dossier.id)
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
        .options(selectinload(Dossier.person), selectinload(Dossier.region))).all()
    regions = session.scalars(select(Region).where(Region.id.in_(counts)).order_by(Region.sort_order)).all()
    return WorklistPage(dossiers, total, page, pages, [(region, counts[region.id]) for region in regions])
