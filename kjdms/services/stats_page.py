"""Assemble every panel /stats/ shows for one scope, focus and day (the tables come from statistics.py and
compliance_stats.py, which builds its rule panels on the same snapshot)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ..local_time import local_today
from ..workflow import WorkflowEngine
from .compliance_stats import compliance_tables
from .statistics import (Groups, RegionTree, Scope, Table, collection_tables, credit_tables, drill_down, snapshot,
                         workflow_names, workforce_tables)


@dataclass
class Statistics:
    """Everything /stats/ shows for one scope, focus and day."""

    day: date
    groups: Groups
    workforce: list[Table]
    collection: list[Table]
    credit: list[Table]

    @property
    def tables(self) -> list[Table]:
        """Return every panel's table, in page order."""
        return self.workforce + self.collection + self.credit


def compute_statistics(session, workflow: WorkflowEngine, scope: Scope, tree: RegionTree, focus: int | None,
                       day: date | None = None) -> Statistics:
    """Return every panel for scope under focus as it stood at the end of day (Beijing; default today)."""
    day = day or local_today()
    names = workflow_names(workflow)
    snap = snapshot(session, day)
    groups = drill_down(tree, scope, focus)
    collection = collection_tables(session, snap, groups, day, names) + compliance_tables(session, snap, groups, day,
                                                                                         names)
    return Statistics(day, groups, workforce_tables(session, snap, groups, day, names), collection,
                      credit_tables(session, groups, day))
