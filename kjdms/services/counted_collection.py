"""Today's collection panels from the counters: the weekly flow, the reviewers, the rejection items and the one-month
rule read from the history's keys (counted_history.py); the queue's waiting times from the dossiers in it alone."""
from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import func, select

from ..models import Dossier, User
from .compliance_stats import ITEMS, NO_ITEM, late_table, rejection_table
from .counted_statistics import Counts
from .statistics import WEEKS_SHOWN, Groups, Table, WorkflowNames, queue_waiting

DELETED_ACCOUNT = "（已删除的账号）"


def _monday(day: str) -> str:
    """Return the Monday of an ISO day's week, as ISO text."""
    moment = date.fromisoformat(day)
    return date.fromordinal(moment.toordinal() - moment.weekday()).isoformat()


def flow_tables(session, counts: Counts, names: WorkflowNames) -> tuple[Table, Table]:
    """Return the submissions, approvals and rejections per week, and per reviewer, of the weeks shown."""
    reviewed = (names.approve, names.reject)
    by_week: dict[tuple[str, str], int] = defaultdict(int)
    by_actor_id: dict[tuple[str, str], int] = defaultdict(int)
    for (_, value), n in counts.history("flow").items():
        day, action, actor = value.split("|")
        if action in (names.submit, *reviewed):
            by_week[(_monday(day), action)] += n
        if action in reviewed:
            by_actor_id[(actor, action)] += n
    ids = sorted({int(actor) for actor, _ in by_actor_id if actor})
    labels = dict(session.execute(select(User.id, func.coalesce(User.display_name, User.username))
                                  .where(User.id.in_(ids))).all()) if ids else {}
    by_actor: dict[tuple[str, str], int] = defaultdict(int)
    for (actor, action), n in by_actor_id.items():
        by_actor[(labels.get(int(actor), DELETED_ACCOUNT) if actor else DELETED_ACCOUNT, action)] += n
    actions = {names.submit: "提交", names.approve: "审核确认", names.reject: "退回"}
    weekly = Table("collection_weekly", f"近{WEEKS_SHOWN}周提交、审核确认与退回", "周（起始日）",
                   [(w, w) for w in sorted({w for w, _ in by_week})], list(actions.items()), dict(by_week),
                   chart="line", unit="次")
    people = sorted({who for who, _ in by_actor}, key=lambda who: -sum(n for (w, _), n in by_actor.items() if w == who))
    reviewers = Table("collection_reviewers", f"审核人员近{WEEKS_SHOWN}周办理量", "审核人员", [(p, p) for p in people],
                      [(names.approve, "审核确认"), (names.reject, "退回")], dict(by_actor), chart="stacked", unit="份")
    return weekly, reviewers


def rejection_reasons(counts: Counts, groups: Groups, names: WorkflowNames) -> Table:
    """Return every rejection so far counted under each flagged item, by drill-down row."""
    cells: dict[tuple[str, str], int] = defaultdict(int)
    for (key, value), n in counts.history("items").items():
        action, code = value.split("|", 1)
        code = code or NO_ITEM
        if action == names.reject and code in ITEMS:
            cells[(code, key)] += n
    return rejection_table(groups, dict(cells))


def late_registrations_and_updates(counts: Counts, groups: Groups, names: WorkflowNames) -> Table:
    """Return per drill-down row the registrations and the changes filed so far, and how many were late (三)."""
    updates: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (key, value), n in counts.history("update").items():
        action, kind = value.split("|")
        if action == names.submit:
            updates[key][0 if kind == "filed" else 1] += n
    return late_table(groups, counts.registrations(), {key: tuple(pair) for key, pair in updates.items()})


def queue_snapshot(names: WorkflowNames):
    """Return the snapshot of the dossiers waiting for review (through the queue's index, not every dossier)."""
    return (select(Dossier.id.label("dossier_id"), Dossier.state.label("state"), Dossier.region_id.label("region_id"))
            .where(Dossier.state == names.queue, Dossier.checked_in_at.is_(None), Dossier.baseline_id.is_(None))
            .subquery("queue"))


def counted_collection_tables(session, counts: Counts, groups: Groups, day: date,
                              names: WorkflowNames) -> list[Table]:
    """Return the collection panels in page order, every one from the counters but the queue's."""
    weekly, reviewers = flow_tables(session, counts, names)
    return [*counts.dossier_tables(), weekly, queue_waiting(session, queue_snapshot(names), groups, day, names),
            reviewers, rejection_reasons(counts, groups, names), late_registrations_and_updates(counts, groups, names)]
