"""The reviewer's queue (Plone's review worklist): the worklist reviewer_queue of the workflow file, in the user's regions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import aliased

from ..models import Dossier, DossierNumbering, Person, Region, User, WorkflowHistory, utcnow
from ..vocabulary import REVIEWER_QUEUE
from ..workflow import WorkflowEngine
from .region_tree import RegionNode, RegionTree, region_tree
from .time_rules import SUBMIT, LateFlag, late_registration, late_update

PAGE_SIZE = 50


def covered_region_ids(session, user: User, *roles: str, tree: RegionTree | None = None) -> set[int]:
    """Return the ids of the regions where user holds any of roles, and of every region below them, in tree."""
    # The assignments the request already loaded to let the user in (staff_role_required): no second query.
    return (tree or region_tree(session)).below(
        assignment.region_id for assignment in user.role_assignments if assignment.role in roles)


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


class QueueColumns(NamedTuple):
    """What the worklist shows of one queued dossier."""

    id: int
    baseline_id: int | None
    name: str | None
    id_number: str | None
    employer_name: str | None
    region_code: str | None
    region_name: str | None
    state_changed_at: datetime
    late_flags: list[LateFlag]


class QueueRow(QueueColumns, DossierNumbering):
    """One dossier of the queue as the worklist shows it, read in the page's one query (no objects per row)."""

    # A tuple, not a frozen dataclass: a page builds fifty, and the dataclass's __init__ cost 2 µs each.
    __slots__ = ()


@dataclass
class WorklistPage:
    """One page of the queue, with the counts that drive its filters."""

    dossiers: list[QueueRow]
    total: int
    page: int
    pages: int
    counts_by_region: list[tuple]  # (the region's RegionNode, its count), in tree order


def reviewer_queue(session, workflow: WorkflowEngine, user: User, *, region_id: int | None = None,
                   waited_days: int | None = None, page: int = 1) -> WorklistPage:
    """Return a page of the queue's dossiers within the regions where user works it, the longest waiting first."""
    tree, now = region_tree(session), utcnow()
    covered = covered_region_ids(session, user, *queue_roles(workflow), tree=tree)
    values = {"state": workflow.definition.worklists[REVIEWER_QUEUE].state, "covered": sorted(covered),
              "waited_before": now - timedelta(days=waited_days or 0),
              "region": region_id if region_id in covered else -1}
    # Core rows on the session's connection (same transaction): through the session every result row went
    # through the ORM's loading machinery, though these selects load no objects.
    connection = session.connection()
    counts_statement, rows_statement = queue_statements(region_id is not None, bool(waited_days),
                                                        connection.dialect.name)
    # Each covered region's count for the filter (a region with none is not listed) and, when asked, how many
    # of them waited long enough; the page's total is the sum over the regions its filter takes.
    rows = connection.execute(counts_statement, values).all()
    counts = {row_region: count for row_region, count, *_ in rows if count}
    total = sum(int(waited[0]) if waited else count
                for row_region, count, *waited in rows if region_id in (None, row_region))
    page, pages = clamp_page(page, total, PAGE_SIZE)
    rows = connection.execute(rows_statement, {**values, "offset": (page - 1) * PAGE_SIZE, "limit": PAGE_SIZE}).all()
    # The regions' codes and names from the process's tree: no join, no query.
    return WorklistPage([queue_row(row, tree.nodes.get(row.region_id), now) for row in rows], total, page, pages,
                        [(region, counts[region.id]) for region in tree.in_order(counts)])


@cache
def queue_statements(by_region: bool, by_waiting: bool, dialect: str):
    """Return the queue's (per-region counts, page of rows) selects with or without the two filters, built once.

    The counts' rows are (region id, its count, and with by_waiting how many of them waited long enough); dialect
    is the database's (SQLAlchemy's name), for which of the two ways of counting is the faster there.
    """
    scope = [Dossier.state == bindparam("state"), Dossier.region_id.in_(bindparam("covered", expanding=True)),
             Dossier.checked_in_at.is_(None)]
    waited = Dossier.state_changed_at <= bindparam("waited_before")
    if dialect == "sqlite":
        counts = select(Region.id, region_count(), *([region_count(waited)] if by_waiting else [])).where(
            Region.id.in_(bindparam("covered", expanding=True)))
    else:
        # PostgreSQL counts the regions in one grouped pass: a subquery for each region took it longer (bitmap scans
        # of each region's rows; 10,000 queued: 12 against 2.9 ms).
        counts = select(Dossier.region_id, func.count(), *([func.sum(case((waited, 1), else_=0))] if by_waiting
                                                           else [])).where(*scope).group_by(Dossier.region_id)
    filters = [Dossier.region_id == bindparam("region")] if by_region else []
    if by_waiting:
        filters.append(waited)
    page = queue_rows([*scope, *filters]).offset(bindparam("offset")).limit(bindparam("limit"))
    return counts, page


def region_count(*conditions):
    """Return the count of the queue's dossiers in the outer select's region (and conditions), as a subquery."""
    # A plain count over one region's range of ix_dossiers_queue: SQLite steps through the index entries without
    # reading them, where one grouped count over all the regions read each entry (10,000 queued: 0.56 -> 0.30 ms).
    return (select(func.count()).where(Dossier.state == bindparam("state"), Dossier.region_id == Region.id,
                                       Dossier.checked_in_at.is_(None), *conditions).scalar_subquery())


def queue_rows(scope: list):
    """Return the select of the queue's rows within scope, the longest waiting first, with what the late flags need."""
    baseline = aliased(Dossier)
    # Asked only of a dossier that reports a change: when it was first submitted (time_rules.update_flag).
    first_submitted = (select(WorkflowHistory.created_at)
                       .where(WorkflowHistory.dossier_id == Dossier.id, WorkflowHistory.action == SUBMIT)
                       .order_by(WorkflowHistory.id).limit(1).scalar_subquery())
    # queue_row unpacks these columns by position: keep the two in step.
    return (select(Dossier.id, Dossier.baseline_id, Person.name, Person.id_number, Person.is_legacy,
                   Dossier.employer_name, Dossier.region_id, Dossier.state_changed_at,
                   Dossier.job_started_on, Dossier.information_changed_on, Dossier.created_at,
                   baseline.created_at.label("baseline_created_at"),
                   baseline.information_changed_on.label("baseline_changed_on"),
                   case((Dossier.information_changed_on.is_not(None), first_submitted)).label("first_submitted_at"))
            .join(Person, Person.id == Dossier.person_id)
            .outerjoin(baseline, baseline.id == Dossier.baseline_id)
            .where(*scope).order_by(Dossier.state_changed_at, Dossier.id))


def queue_row(row, region: RegionNode | None, now: datetime) -> QueueRow:
    """Return the worklist's row for one result of queue_rows in region, with the late flags time_rules finds now."""
    # Unpacked in the select's column order: a result row's attribute costs a lookup by name (0.4 µs), fifty
    # rows of fourteen of them a tenth of the page.
    (dossier_id, baseline_id, name, id_number, is_legacy, employer_name, _, state_changed_at, job_started_on,
     information_changed_on, created_at, baseline_created_at, baseline_changed_on, first_submitted_at) = row
    has_baseline = baseline_id is not None
    flags = [late_registration(job_started_on, baseline_created_at if has_baseline else created_at, legacy=is_legacy)]
    # A working copy that keeps its baseline's change date declares no new change.
    if not (has_baseline and baseline_changed_on == information_changed_on):
        flags.append(late_update(information_changed_on, first_submitted_at or now))
    return QueueRow(dossier_id, baseline_id, name, id_number, employer_name, region.code if region else None,
                    region.name if region else None, state_changed_at, [flag for flag in flags if flag is not None])
