"""Assemble every panel /stats/ shows for one scope, focus and day (the tables come from statistics.py and
compliance_stats.py, which builds its rule panels on the same snapshot; today's counted panels from
counted_statistics.py, which reads the counters kept with every change)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ..local_time import local_today
from ..workflow import WorkflowEngine
from .compliance_stats import compliance_tables
from .counted_statistics import Counts, counted_collection_tables
from .statistics import (Groups, RegionTree, Scope, Table, collection_tables, credit_tables, cross_tab, drill_down,
                         snapshot, workflow_names, workforce_tables)


@dataclass
class Statistics:
    """Everything /stats/ shows for one scope, focus and day."""

    day: date
    groups: Groups
    workforce: list[Table]
    collection: list[Table]
    credit: list[Table]
    # Today's counter sums, kept for the cross-tab of the same request (None for a past day).
    counts: Counts | None = None

    @property
    def tables(self) -> list[Table]:
        """Return every panel's table, in page order."""
        return self.workforce + self.collection + self.credit


def compute_statistics(session, workflow: WorkflowEngine, scope: Scope, tree: RegionTree, focus: int | None,
                       day: date | None = None) -> Statistics:
    """Return every panel for scope under focus as it stood at the end of day (Beijing; default today)."""
    day = day or local_today()
    names = workflow_names(workflow)
    groups = drill_down(tree, scope, focus)
    if day >= local_today():
        counts = Counts(session, groups, day, names)
        return Statistics(day, groups, counts.workforce_tables(),
                          counted_collection_tables(session, counts, groups, day, names),
                          credit_tables(session, groups, day), counts)
    snap = snapshot(session, day)
    collection = collection_tables(session, snap, groups, day, names) + compliance_tables(session, snap, groups, day,
                                                                                         names)
    return Statistics(day, groups, workforce_tables(session, snap, groups, day, names), collection,
                      credit_tables(session, groups, day))


def statistics_cross_tab(session, workflow: WorkflowEngine, scope: Scope, tree: RegionTree, stats: Statistics,
                         row: str, column: str) -> Table:
    """Return the cross-tab of two workforce dimensions for the page's scope, focus and day."""
    counted = stats.counts.cross_tab(row, column) if stats.counts is not None else None
    if counted is None:
        return cross_tab(session, workflow, scope, tree, stats.groups.focus, stats.day, row, column)
    counted.title = f"在册会计人员：{counted.title}"
    counted.chart = "none"
    return counted
