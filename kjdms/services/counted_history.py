"""The history's share of a dossier's counter keys: its actions per Beijing day, the items its rejections flagged,
and the changes of information filed through its working copies (on time or late, 三).

Every action is kept under its own name: the page picks the workflow's submit, approve and reject when it reads
(services/counted_statistics.py), so the counters need not know the workflow. These keys count in every state
alike (stats_counters.STATE_FREE): a dossier's approval then moves the counters of its new history row only.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from functools import cache

from sqlalchemy import bindparam, case, or_, select
from sqlalchemy.orm import aliased

from ..local_time import local_date
from ..models import Dossier, WorkflowHistory
from ..vocabulary import OWNER_ROLE
from .compliance_stats import changed_on_before_copy
from .time_rules import one_month_after

# flow: "day|action|actor id" of the dossier's own history (no actor for the applicant's own actions, which would
# make one counter per person); items: "action|code" per flagged item ("action|" for none), its working copies'
# rows too; update: "action|filed" and "action|late" per working copy with a change date, by the first firing.
HISTORY_DIMENSIONS = ("flow", "items", "update")


def flow_value(day, action: str, actor: int | str) -> str:
    """Return the flow counter's value of one history row."""
    # isoformat, not strftime: the same YYYY-MM-DD, at a fifth of the cost, for every row of a dossier's history.
    return f"{day.isoformat()}|{action}|{actor}"


@cache
def history_read(dialect: str):
    """Return the read of the history rows of the dossiers and of their working copies on dialect (fold_history's
    rows), each with its dossier's baseline, change date and the change date the baseline held when the copy was made.

    One statement, not the copies then their rows: a round trip less at every change. Built once per dialect:
    building it (the alias, the revision subquery) cost more Python than running it."""
    dossier = aliased(Dossier)
    ids = bindparam("ids", expanding=True)
    # The revision subquery runs for a working copy's rows only (a dossier's own rows need no change date).
    before_copy = case((dossier.baseline_id.is_not(None), changed_on_before_copy(dialect, dossier)), else_=None)
    # acted_at, not created_at: stats_counters reads these rows in one statement with the dossiers' own created_at.
    return (select(WorkflowHistory.dossier_id, WorkflowHistory.action, WorkflowHistory.actor_id,
                   WorkflowHistory.actor_role, WorkflowHistory.flagged, WorkflowHistory.created_at.label("acted_at"),
                   dossier.baseline_id, dossier.information_changed_on, before_copy.label("before_copy"))
            .join(dossier, dossier.id == WorkflowHistory.dossier_id)
            .where(or_(dossier.id.in_(ids), dossier.baseline_id.in_(ids))))


def fold_history(rows) -> dict[int, Counter]:
    """Return per effective dossier the "dimension=value" keys its history adds, from history_read's rows.

    A row whose dossier has a baseline is a working copy's, and counts for that baseline.
    """
    keys: dict[int, Counter] = defaultdict(Counter)
    copies: dict[int, object] = {}
    first: dict[tuple[int, str], object] = {}
    for row in rows:
        owner = row.baseline_id if row.baseline_id is not None else row.dossier_id
        codes = sorted(set(row.flagged or ())) or [""]
        keys[owner].update(f"items={row.action}|{code}" for code in codes)
        if row.baseline_id is not None:
            copies[row.dossier_id] = row
            moment = first.get((row.dossier_id, row.action))
            if moment is None or row.acted_at < moment:
                first[(row.dossier_id, row.action)] = row.acted_at
            continue
        actor = row.actor_id if row.actor_id is not None and row.actor_role != OWNER_ROLE else ""
        keys[owner][f"flow={flow_value(local_date(row.acted_at), row.action, actor)}"] += 1
    for (copy_id, action), moment in first.items():
        change = copies[copy_id]
        changed = change.information_changed_on
        # A change date the baseline already held before the copy is no new change (compliance_stats.LATE_NOTE).
        if changed is None or change.before_copy == changed.isoformat():
            continue
        keys[change.baseline_id][f"update={action}|filed"] += 1
        if local_date(moment) > one_month_after(changed):
            keys[change.baseline_id][f"update={action}|late"] += 1
    return keys
