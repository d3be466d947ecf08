"""Assemble every panel /stats/ shows for one scope, focus and day (the tables come from statistics.py and
compliance_stats.py, which builds its rule panels on the same snapshot; today's counted panels from
counted_statistics.py, which reads the counters kept with every change)."""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Column, Date, Index, Integer, MetaData, String, Table as SqlTable, Text, insert, select, text

from ..local_time import local_today
from ..sqlite_writer import without_turn
from ..workflow import WorkflowEngine
from .compliance_stats import compliance_tables
from .counted_collection import counted_collection_tables
from .counted_statistics import Counts
from .statistics import (Groups, RegionTree, Scope, Table, collection_tables, credit_tables, cross_tab_of, drill_down,
                         snapshot, titled_cross_tab, workflow_names, workforce_tables)

# The snapshot's columns (services/statistics.py snapshot), typed for a temporary table.
SNAPSHOT_COLUMNS = (("dossier_id", Integer), ("state", String(32)), ("region_id", Integer), ("sex", String(8)),
                    ("birth_date", Date), ("education", String(32)), ("scope_category", String(32)),
                    ("qualification_level", String(16)), ("job_types", Text), ("is_student", Integer),
                    ("has_employer", Integer), ("is_legacy", Integer), ("to_confirm", Integer))


@dataclass
class Statistics:
    """Everything /stats/ shows for one scope, focus and day."""

    day: date
    groups: Groups
    workforce: list[Table]
    collection: list[Table]
    credit: list[Table]
    # The cross-tab asked for with the panels, if any.
    crosstab: Table | None = None

    @property
    def tables(self) -> list[Table]:
        """Return every panel's table, in page order."""
        return self.workforce + self.collection + self.credit


@contextmanager
def materialized_snapshot(session, day: date):
    """Yield a past day's snapshot written once into a temporary table, which every panel then reads.

    A past day's snapshot ranks every revision before the cutoff: done once here rather than once per panel.
    """
    query = snapshot(session, day)
    table = SqlTable(f"stats_snapshot_{uuid.uuid4().hex[:12]}", MetaData(),
                     *(Column(name, kind) for name, kind in SNAPSHOT_COLUMNS), prefixes=["TEMPORARY"])
    connection = session.connection()
    table.create(connection)
    # A temporary table is no write to the database file: on SQLite it must not take the writers' turn, which
    # would then be held, and every writer kept waiting, for as long as the page's panels take.
    with without_turn(connection.connection.dbapi_connection):
        connection.execute(insert(table).from_select([name for name, _ in SNAPSHOT_COLUMNS],
                                                      select(*(query.c[name] for name, _ in SNAPSHOT_COLUMNS))))
    Index(f"{table.name}_dossier", table.c.dossier_id).create(connection)
    connection.execute(text(f"ANALYZE {table.name}"))
    yield table
    # Left to the rollback when a panel failed: the aborted transaction takes the table with it.
    table.drop(connection)


def compute_statistics(session, workflow: WorkflowEngine, scope: Scope, tree: RegionTree, focus: int | None,
                       day: date | None = None, cross: tuple[str, str] | None = None) -> Statistics:
    """Return every panel for scope under focus as it stood at the end of day (Beijing; default today).

    cross, when given, names the two workforce dimensions of the cross-tab to add.
    """
    day = day or local_today()
    names = workflow_names(workflow)
    groups = drill_down(tree, scope, focus)
    if day >= local_today():
        counts = Counts(session, groups, day, names)
        stats = Statistics(day, groups, counts.workforce_tables(),
                           counted_collection_tables(session, counts, groups, day, names),
                           credit_tables(session, groups, day))
        if cross is not None:
            counted = counts.cross_tab(*cross)
            stats.crosstab = (titled_cross_tab(counted) if counted is not None
                              else cross_tab_of(session, snapshot(session, day), groups, day, names, *cross))
        return stats
    with materialized_snapshot(session, day) as snap:
        collection = collection_tables(session, snap, groups, day, names) + compliance_tables(session, snap, groups,
                                                                                             day, names)
        stats = Statistics(day, groups, workforce_tables(session, snap, groups, day, names), collection,
                           credit_tables(session, groups, day))
        if cross is not None:
            stats.crosstab = cross_tab_of(session, snap, groups, day, names, *cross)
    return stats
