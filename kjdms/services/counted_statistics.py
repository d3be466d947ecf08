"""Today's statistics read from the counters (services/stats_counters.py) instead of a scan of every dossier.

The workforce, the dossiers by state, the old-system confirmation, the registrations of the one-month rule, the
history's keys (counted_history.py) and a cross-tab of the region by one workforce dimension come from the counter
rows of the regions in view, read in one statement; counted_collection.py builds the history panels from them.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import and_, case, func, literal, or_, select, union_all

from ..models import Dossier, Person, StatsCounter
from .stats_counters import NO_REGION_ID, STATE_FREE
from .statistics import (AGE_LIMITS, UNKNOWN, WEEKS_SHOWN, WORKFORCE_DIMENSIONS, Groups, Table, WorkflowNames,
                         _ordered, _region_keys, _transpose, _years_before, build_dossier_tables,
                         build_workforce_tables)

counters = StatsCounter.__table__
# Counted in every state (the collection panels); the workforce dimensions are read for the approved state only.
EVERY_STATE = ("all", "origin", "legacy_to_confirm", "registration")
EDGE = "edge:"
# The rows of the edge months' birth-day count, read in the counters' statement.
YOUNG = "young_in_edge_month"


def _edges(day: date) -> list[tuple[str, date, str, str]]:
    """Return per age limit: the birth month holding the band's edge, the edge day, the younger and older band."""
    bands = [band for band, _ in AGE_LIMITS] + ["60_over"]
    edges = []
    for i, (band, limit) in enumerate(AGE_LIMITS):
        edge = _years_before(day, limit)
        edges.append((f"{edge:%Y-%m}", edge, band, bands[i + 1]))
    return edges


def _band(value, day: date):
    """Return the age band of a birth-month counter at day in SQL; the edge months come back as edge:<month>."""
    whens = [(value == "", literal(""))]
    for month, _, younger, _ in _edges(day):
        whens += [(value > month, literal(younger)), (value == month, literal(EDGE + month))]
    return case(*whens, else_=literal("60_over"))


class Counts:
    """The counter sums of one scope and day: per drill-down row, state, dimension and value."""

    def __init__(self, session, groups: Groups, day: date, names: WorkflowNames):
        self.groups, self.day, self.names = groups, day, names
        self.keys = {(NO_REGION_ID if region_id is None else region_id): key
                     for region_id, key in _region_keys(groups).items()}
        # One statement, so one snapshot on either database: the counters and the birth days of the edge months.
        rows = session.execute(union_all(self._counted(), self._young_in_edge_months()))
        # (region id, state, dimension, value) for the edge months, where a birth day decides the band
        by_region: dict[tuple, int] = defaultdict(int)
        young: dict[tuple[int, str], int] = {}
        for region_id, state, name, code, n in rows:
            if name == YOUNG:
                young[(region_id, code)] = n
            else:
                by_region[(region_id, state, name, code)] += n
        self._split_edges(by_region, young)
        # (row, state, dimension, value or None) → count
        self.cells: dict[tuple, int] = defaultdict(int)
        for (region_id, state, name, code), n in by_region.items():
            self.cells[(self.keys[region_id], state, name, code if code != "" else None)] += n

    def _counted(self):
        """Return the counter sums the page reads: the approved persons' dimensions, the collection's counts in every
        state, and the history's keys (the flow within the weeks shown)."""
        c = counters.c
        dimension = case((c.dimension == "birth_month", literal("age_band")), else_=c.dimension).label("dimension")
        value = case((c.dimension == "birth_month", _band(c.value, self.day)), else_=c.value).label("value")
        since = self.day - timedelta(weeks=WEEKS_SHOWN) + timedelta(days=1)
        history = and_(c.state == STATE_FREE, or_(c.dimension.in_(("items", "update")), and_(
            c.dimension == "flow", c.value >= f"{since:%Y-%m-%d}", c.value < f"{self.day + timedelta(days=1):%Y-%m-%d}")))
        return (select(c.region_id, c.state, dimension, value, func.sum(c.count).label("n"))
                .where(c.region_id.in_(sorted(self.keys)), c.count != 0,
                       or_(c.state == self.names.approved, c.dimension.in_(EVERY_STATE), history))
                .group_by(c.region_id, c.state, dimension, value))

    def _young_in_edge_months(self):
        """Return per region and edge month the approved persons born after the edge day (the younger band's)."""
        region = func.coalesce(Dossier.region_id, NO_REGION_ID).label("region_id")
        whens, ranges = [], []
        for month, edge, _, _ in _edges(self.day):
            after = (date(edge.year, edge.month, 1) + timedelta(days=32)).replace(day=1)
            ranges.append(and_(Person.birth_date > edge, Person.birth_date < after))
            whens.append((ranges[-1], literal(month)))
        month = case(*whens, else_=literal("")).label("value")
        found = (select(region, month).join(Person, Person.id == Dossier.person_id)
                 .where(Dossier.baseline_id.is_(None), Dossier.state == self.names.approved, or_(*ranges),
                        region.in_(sorted(self.keys)))
                 .subquery("young"))
        return (select(found.c.region_id, literal(self.names.approved).label("state"), literal(YOUNG).label("dimension"),
                       found.c.value, func.count().label("n"))
                .group_by(found.c.region_id, found.c.value))

    def _split_edges(self, by_region: dict[tuple, int], young: dict[tuple[int, str], int]) -> None:
        """Share out the approved persons born in an edge month between its two bands, by their birth day."""
        for month, _, younger, older in _edges(self.day):
            for key in [k for k in by_region if k[3] == EDGE + month]:
                region_id, state, name, _ = key
                n, born_after = by_region.pop(key), young.get((region_id, month), 0)
                by_region[(region_id, state, name, younger)] += born_after
                by_region[(region_id, state, name, older)] += n - born_after

    def history(self, dimension: str) -> dict[tuple[str, str], int]:
        """Return (drill-down row, value) → count of one of the history's dimensions (counted_history.py)."""
        return {(key, code or ""): n for (key, state, name, code), n in self.cells.items()
                if state == STATE_FREE and name == dimension}

    def workforce_tables(self) -> list[Table]:
        """Return the workforce tables (approved persons)."""
        approved = self.names.approved
        totals: dict[str, int] = defaultdict(int)
        found: dict[tuple, int] = defaultdict(int)
        for (key, state, name, code), n in self.cells.items():
            if state != approved:
                continue
            if name == "all":
                totals[key] += n
            elif name in WORKFORCE_DIMENSIONS:
                found[(name, code)] += n
        return build_workforce_tables(self.groups, self.names, dict(totals), dict(found))

    def dossier_tables(self) -> list[Table]:
        """Return the dossiers by state, by region and state, and the old-system confirmation."""
        split = []
        for (key, state, name, _), n in self.cells.items():
            if name == "all":
                legacy = self.cells.get((key, state, "origin", "legacy"), 0)
                waiting = self.cells.get((key, state, "legacy_to_confirm", "1"), 0)
                split += [(key, state, 0, 0, n - legacy), (key, state, 1, 1, waiting),
                          (key, state, 1, 0, legacy - waiting)]
        return build_dossier_tables(self.groups, self.names, split)

    def registrations(self) -> dict[str, tuple[int, int]]:
        """Return per drill-down row the new registrants with a job start date and how many registered late."""
        found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for (key, _, name, code), n in self.cells.items():
            if name == "registration":
                found[key][0 if code == "registered" else 1] += n
        return {key: (n, late) for key, (n, late) in found.items() if n}

    def cross_tab(self, row: str, column: str) -> Table | None:
        """Return the approved persons by region and one workforce dimension (None for any other pair)."""
        if "region" not in (row, column) or row == column:
            return None
        other = WORKFORCE_DIMENSIONS[column if row == "region" else row]
        region = WORKFORCE_DIMENSIONS["region"]
        cells: dict[tuple[str, str], int] = defaultdict(int)
        for (key, state, name, code), n in self.cells.items():
            if state == self.names.approved and name == other.name:
                cells[(key, code if code is not None else UNKNOWN)] += n
        # The yes/no dimensions keep their "yes" only: the "no" is everyone else of the row.
        complement = {"is_student": ("1", "0"), "has_employer": ("1", "0"), "origin": ("legacy", "new")}
        if other.name in complement:
            yes, no = complement[other.name]
            for (key, state, name, _), n in self.cells.items():
                if state == self.names.approved and name == "all":
                    cells[(key, no)] += n - self.cells.get((key, state, other.name, yes), 0)
        cells = {cell: n for cell, n in cells.items() if n}
        rows = _ordered({key for key, _ in cells}, dict(self.groups.titles))
        labels = dict(other.labels)
        present = {code for _, code in cells}
        columns = list(labels.items()) + [(code, code) for code in sorted(present - set(labels) - {UNKNOWN})]
        if UNKNOWN in present and not other.multi:
            columns.append((UNKNOWN, UNKNOWN))
        table = Table(key=f"region__{other.name}", title=f"{region.title} × {other.title}", row_title=region.title,
                      rows=rows, columns=columns, cells=cells)
        return table if row == "region" else _transpose(table, other, region)


