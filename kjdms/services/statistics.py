"""Workforce, collection and credit statistics within a user's regions, as they stood at the end of a Beijing day.

Every count is read from a "snapshot": one row per effective dossier with its state and fields at the cutoff.
For today the snapshot is the dossier table itself; for a past day it is each dossier's last revision recorded
before the cutoff (dossiers bulk-imported and never changed since: their current content), exactly as the
archive's dossier_as_of reads one dossier. The page reads it in few scans: every workforce dimension at once by
conditional sums per region, the states and the old-system confirmation at once, the history window once; a
cross-tab is its own GROUP BY (count_by). bench/stats.py measures this against plain GROUP BYs. Today's page reads
the workforce, the states and the confirmation from counters instead (counted_statistics.py); a past day's reads
its snapshot written once into a temporary table (stats_page.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Date, String, Text, and_, case, cast, exists, func, literal, or_, select, type_coerce, union_all
from sqlalchemy.orm import aliased

from ..local_time import end_of_day, local_today
from ..models import CreditRecord, Dossier, DossierRevision, Person, Region, User, WorkflowHistory, as_utc, utcnow
from ..vocabulary import (CREDIT_KINDS, EDUCATION_LEVELS, JOB_TYPES, QUALIFICATION_LEVELS, SCOPE_CATEGORIES, SEXES,
                          STAFF_ROLES)
from ..workflow import WorkflowEngine

NO_REGION = "none"
NO_REGION_TITLE = "未确定地区"
OWN_LEVEL = "（本级）"
UNKNOWN = "未填写"
YES_NO = {"1": "是", "0": "否"}
HAS_EMPLOYER = {"1": "有工作单位", "0": "无工作单位"}
ORIGINS = {"legacy": "原系统人员", "new": "新登记人员"}
# Ages at the as-of date; the birth date is the one the ID number carries (registration checks they agree).
AGE_BANDS = {"under_30": "30岁以下", "30_39": "30–39岁", "40_49": "40–49岁", "50_59": "50–59岁",
             "60_over": "60岁及以上"}
AGE_LIMITS = (("under_30", 30), ("30_39", 40), ("40_49", 50), ("50_59", 60))
WEEKS_SHOWN = 12


# -- the region tree and the user's scope -------------------------------------------------------

@dataclass(frozen=True)
class RegionTree:
    """The region tree read once: names, parents, children in display order."""

    names: dict[int, str]
    parents: dict[int, int | None]
    children: dict[int | None, list[int]]

    def subtree(self, region_id: int) -> set[int]:
        """Return region_id and every region below it."""
        found, stack = set(), [region_id]
        while stack:
            node = stack.pop()
            found.add(node)
            stack.extend(self.children.get(node, []))
        return found

    def path(self, region_id: int) -> list[int]:
        """Return the regions from the top of the tree down to region_id."""
        chain = []
        while region_id is not None:
            chain.append(region_id)
            region_id = self.parents[region_id]
        return chain[::-1]


def region_tree(session) -> RegionTree:
    """Return the region tree."""
    rows = session.execute(select(Region.id, Region.name, Region.parent_id).order_by(Region.sort_order, Region.id)).all()
    children: dict[int | None, list[int]] = {}
    for region_id, _, parent_id in rows:
        children.setdefault(parent_id, []).append(region_id)
    return RegionTree({r[0]: r[1] for r in rows}, {r[0]: r[2] for r in rows}, children)


@dataclass(frozen=True)
class Scope:
    """The regions a user's staff roles reach: the tops they were given and every region below them."""

    tops: tuple[int, ...]
    regions: frozenset[int]
    # Dossiers with no region yet belong to the top of the tree (as permissions.roles_on reads them).
    unplaced: bool

    @property
    def empty(self) -> bool:
        """Tell whether the scope reaches nothing."""
        return not self.regions


def statistics_scope(tree: RegionTree, user: User | None) -> Scope:
    """Return the scope of user's staff roles (every staff role sees the statistics of its regions)."""
    if not isinstance(user, User) or not user.is_active or user.is_applicant:
        return Scope((), frozenset(), False)
    given = {a.region_id for a in user.role_assignments if a.role in STAFF_ROLES}
    regions = set().union(*(tree.subtree(region_id) for region_id in given)) if given else set()
    # Only the regions no other given region contains are drill-down tops.
    tops = tuple(sorted((r for r in given if not any(p in given for p in tree.path(r)[:-1])),
                        key=lambda r: tree.path(r)))
    return Scope(tops, frozenset(regions), any(tree.parents[r] is None for r in given))


def full_scope(tree: RegionTree) -> Scope:
    """Return the whole tree: the scope of an operator at the server's terminal (bench, report)."""
    roots = tuple(tree.children.get(None, []))
    return Scope(roots, frozenset(tree.names), True)


@dataclass(frozen=True)
class Groups:
    """The drill-down rows under a focus: each child region (with its subtree), the focus's own level, unplaced."""

    focus: int | None
    keys: tuple[str, ...]
    titles: dict[str, str]
    members: dict[str, frozenset[int]]
    unplaced: bool

    def key_of(self, region_id: int | None) -> str | None:
        """Return the row a dossier in region_id counts in, or None when it is outside."""
        if region_id is None:
            return NO_REGION if self.unplaced else None
        return next((key for key in self.keys if region_id in self.members.get(key, ())), None)


def drill_down(tree: RegionTree, scope: Scope, focus: int | None) -> Groups:
    """Return the rows under focus (None: the user's top regions); a region outside scope never appears."""
    if focus is not None and focus not in scope.regions:
        focus = None
    if focus is None and len(scope.tops) == 1:
        focus = scope.tops[0]
    keys, titles, members = [], {}, {}
    below = scope.tops if focus is None else [c for c in tree.children.get(focus, []) if c in scope.regions]
    if focus is not None:
        keys.append(f"r{focus}")
        titles[f"r{focus}"] = tree.names[focus] + OWN_LEVEL
        members[f"r{focus}"] = frozenset({focus})
    for region_id in below:
        keys.append(f"r{region_id}")
        titles[f"r{region_id}"] = tree.names[region_id]
        members[f"r{region_id}"] = frozenset(tree.subtree(region_id) & scope.regions)
    unplaced = scope.unplaced and (focus is None or tree.parents[focus] is None)
    if unplaced:
        keys.append(NO_REGION)
        titles[NO_REGION] = NO_REGION_TITLE
    return Groups(focus, tuple(keys), titles, members, unplaced)


# -- the workflow's own names -----------------------------------------------------------------

@dataclass(frozen=True)
class WorkflowNames:
    """The states and transitions the statistics read, found in the workflow definition rather than named here."""

    queue: str
    approve: str
    reject: str
    submit: str
    approved: str
    purged: str
    state_titles: dict[str, str]


def workflow_names(workflow: WorkflowEngine) -> WorkflowNames:
    """Return the review queue's state, the transitions into and out of it, and their destinations."""
    definition = workflow.definition
    queue = next(iter(definition.worklists.values())).state
    leaving = [t for t in definition.transitions.values() if queue in t.sources and t.guard.permissions]
    approve = next(t for t in leaving if not t.comment_required)
    reject = next(t for t in leaving if t.comment_required)
    submit = next(t for t in definition.transitions.values() if t.destination == queue)
    # The one transition open from every state: the purge (辽财会〔2019〕116号 二（三）).
    purge = max(definition.transitions.values(), key=lambda t: len(t.sources))
    return WorkflowNames(queue, approve.name, reject.name, submit.name, approve.destination, purge.destination,
                         {name: state.title for name, state in definition.states.items()})


# -- the snapshot: one row per effective dossier at the cutoff ---------------------------------

def _json_value(dialect: str, column, key: str):
    """Return the SQL value of key in a JSON column (text; JSON text for lists)."""
    if dialect == "sqlite":
        return func.json_extract(column, f"$.{key}")
    return column.op("->>")(key)


def _json_true(dialect: str, column, key: str):
    """Return a condition: key in a JSON column is true."""
    value = _json_value(dialect, column, key)
    return value == 1 if dialect == "sqlite" else value == "true"


def snapshot(session, day: date):
    """Return the snapshot subquery for the end of day: dossier_id, state, region_id and the counted fields."""
    dialect = session.get_bind().dialect.name
    cutoff = end_of_day(day)

    def current(where):
        return (select(Dossier.id.label("dossier_id"), Dossier.state.label("state"),
                       Dossier.region_id.label("region_id"), Person.sex.label("sex"),
                       Person.birth_date.label("birth_date"), Dossier.education.label("education"),
                       Dossier.scope_category.label("scope_category"),
                       Dossier.qualification_level.label("qualification_level"),
                       cast(Dossier.job_types, Text).label("job_types"),
                       case((Dossier.is_student.is_(True), 1), else_=0).label("is_student"),
                       case((func.coalesce(Dossier.employer_name, "") != "", 1), else_=0).label("has_employer"),
                       case((Person.is_legacy.is_(True), 1), else_=0).label("is_legacy"),
                       case((Dossier.to_confirm.is_(True), 1), else_=0).label("to_confirm"))
                .join(Person, Person.id == Dossier.person_id)
                .where(Dossier.baseline_id.is_(None), Dossier.created_at < cutoff, *where))

    if day >= local_today():
        return current(()).subquery("snapshot")
    # The last revision before the cutoff, ordered as dossier_as_of orders them (time, then id).
    order = func.row_number().over(partition_by=DossierRevision.dossier_id,
                                   order_by=(DossierRevision.recorded_at.desc(), DossierRevision.id.desc()))
    ranked = (select(DossierRevision.dossier_id, DossierRevision.id.label("revision_id"), order.label("rank"))
              .where(DossierRevision.recorded_at < cutoff).subquery("ranked"))
    latest = select(ranked.c.dossier_id, ranked.c.revision_id).where(ranked.c.rank == 1).subquery("latest")
    fields = DossierRevision.fields
    birth = _json_value(dialect, fields, "birth_date")
    employer = _json_value(dialect, fields, "employer_name")
    jobs = _json_value(dialect, fields, "job_types")
    recorded = (select(Dossier.id.label("dossier_id"), DossierRevision.state.label("state"),
                       Region.id.label("region_id"), _json_value(dialect, fields, "sex").label("sex"),
                       (type_coerce(birth, Date) if dialect == "sqlite" else cast(birth, Date)).label("birth_date"),
                       _json_value(dialect, fields, "education").label("education"),
                       _json_value(dialect, fields, "scope_category").label("scope_category"),
                       _json_value(dialect, fields, "qualification_level").label("qualification_level"),
                       jobs.label("job_types"),
                       case((_json_true(dialect, fields, "is_student"), 1), else_=0).label("is_student"),
                       case((func.coalesce(employer, "") != "", 1), else_=0).label("has_employer"),
                       case((DossierRevision.is_legacy.is_(True), 1), else_=0).label("is_legacy"),
                       case((DossierRevision.to_confirm.is_(True), 1), else_=0).label("to_confirm"))
                .select_from(latest)
                .join(DossierRevision, DossierRevision.id == latest.c.revision_id)
                .join(Dossier, Dossier.id == latest.c.dossier_id)
                .outerjoin(Region, Region.code == _json_value(dialect, fields, "region"))
                .where(Dossier.baseline_id.is_(None), Dossier.created_at < cutoff))
    never_revised = current((~exists().where(DossierRevision.dossier_id == Dossier.id),))
    return union_all(recorded, never_revised).subquery("snapshot")


# -- dimensions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dimension:
    """A way to split a count: its title and its values' Chinese names, in display order."""

    name: str
    title: str
    labels: dict[str, str]
    # Job types: a person may hold several, so each is its own conditional count rather than a GROUP BY value.
    multi: bool = False


WORKFORCE_DIMENSIONS = {
    d.name: d for d in (
        Dimension("region", "地区", {}),
        Dimension("scope_category", "人员类别", SCOPE_CATEGORIES),
        Dimension("qualification_level", "会计专业技术资格", QUALIFICATION_LEVELS),
        Dimension("education", "学历", EDUCATION_LEVELS),
        Dimension("job_type", "会计工作岗位", JOB_TYPES, multi=True),
        Dimension("sex", "性别", SEXES),
        Dimension("age_band", "年龄段", AGE_BANDS),
        Dimension("is_student", "在校学生", YES_NO),
        Dimension("has_employer", "工作单位", HAS_EMPLOYER),
        Dimension("origin", "人员来源", ORIGINS),
    )
}


def _years_before(day: date, years: int) -> date:
    """Return the same calendar day years earlier (28 February for a 29th)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _age_band(column, day: date):
    """Return the age band of a birth date at day, in SQL (date literals computed here, so both databases agree)."""
    whens = [(column > _years_before(day, limit), band) for band, limit in AGE_LIMITS]
    return case((column.is_(None), None), *whens, else_="60_over")


def _expression(snap, groups: Groups, name: str, day: date):
    """Return the SQL value a dimension groups by (never a multi dimension)."""
    c = snap.c
    if name == "region":
        whens = [(c.region_id.in_(sorted(groups.members[key])), key) for key in groups.keys if key != NO_REGION]
        return case(*whens, else_=NO_REGION) if whens else literal(NO_REGION)
    if name == "age_band":
        return _age_band(c.birth_date, day)
    if name == "origin":
        return case((c.is_legacy == 1, "legacy"), else_="new")
    if name in ("is_student", "has_employer"):
        return cast(getattr(c, name), String)
    return getattr(c, name)


def in_groups(snap, groups: Groups):
    """Return the condition: the snapshot row is in one of the drill-down rows."""
    regions = sorted(set().union(*groups.members.values())) if groups.members else []
    conditions = [snap.c.region_id.in_(regions)] if regions else []
    if groups.unplaced:
        conditions.append(snap.c.region_id.is_(None))
    return or_(*conditions) if conditions else literal(False)


def _labels(groups: Groups, dimension: Dimension, names: WorkflowNames | None = None) -> dict[str, str]:
    if dimension.name == "region":
        return dict(groups.titles)
    if dimension.name == "state" and names is not None:
        return dict(names.state_titles)
    return dict(dimension.labels)


# -- tables -------------------------------------------------------------------------------------

@dataclass
class Table:
    """A count split by one dimension (rows) and optionally a second (columns); every cell a number."""

    key: str
    title: str
    row_title: str
    rows: list[tuple[str, str]]
    columns: list[tuple[str, str]] = field(default_factory=lambda: [("count", "人数")])
    cells: dict[tuple[str, str], float] = field(default_factory=dict)
    chart: str = "bar"
    unit: str = "人"
    # What is counted and how, when the title cannot say it (shown under the title and in every export).
    note: str = ""

    def value(self, row: str, column: str) -> float:
        """Return the cell's number (0 when nothing was counted)."""
        return self.cells.get((row, column), 0)

    def matrix(self) -> list[list[float]]:
        """Return the cells row by row, in the rows' and columns' order."""
        return [[self.value(r, c) for c, _ in self.columns] for r, _ in self.rows]

    def total(self, column: str) -> float:
        """Return the column's sum over the rows."""
        return sum(self.value(r, column) for r, _ in self.rows)


def _ordered(found: set[str], labels: dict[str, str]) -> list[tuple[str, str]]:
    """Return (code, label) for every known code in its order (zeros too), then anything else found, unknown last."""
    rows = list(labels.items())
    extra = sorted(code for code in found if code not in labels and code is not None)
    rows += [(code, code) for code in extra]
    if None in found:
        rows.append((UNKNOWN, UNKNOWN))
    return rows


def count_by(session, snap, base_condition, groups: Groups, day: date, row: Dimension,
             column: Dimension | None = None, names: WorkflowNames | None = None) -> Table:
    """Return the GROUP BY count of the snapshot rows meeting base_condition, by row (and column)."""
    if row.multi and column is not None and not column.multi:
        flipped = count_by(session, snap, base_condition, groups, day, column, row, names)
        return _transpose(flipped, row, column)
    condition = and_(base_condition, in_groups(snap, groups))
    cells: dict[tuple[str, str], float] = {}
    if row.multi:  # job type alone, or job type by job type
        sums = [func.sum(case((snap.c.job_types.like(f'%"{job}"%'), 1), else_=0)) for job in row.labels]
        if column is None:
            totals = session.execute(select(*sums).where(condition)).one()
            cells = {(job, "count"): n or 0 for job, n in zip(row.labels, totals)}
        else:
            for job in column.labels:
                filtered = and_(condition, snap.c.job_types.like(f'%"{job}"%'))
                totals = session.execute(select(*sums).where(filtered)).one()
                cells.update({(r, job): n or 0 for r, n in zip(row.labels, totals)})
        rows = list(row.labels.items())
    else:
        expression = _expression(snap, groups, row.name, day).label("row")
        if column is None:
            query = select(expression, func.count()).where(condition).group_by(expression)
            found = {(key, "count"): n for key, n in session.execute(query)}
        elif column.multi:
            sums = [func.sum(case((snap.c.job_types.like(f'%"{job}"%'), 1), else_=0)) for job in column.labels]
            query = select(expression, *sums).where(condition).group_by(expression)
            found = {}
            for key, *totals in session.execute(query):
                found.update({(key, job): n or 0 for job, n in zip(column.labels, totals)})
        else:
            other = _expression(snap, groups, column.name, day).label("column")
            query = select(expression, other, func.count()).where(condition).group_by(expression, other)
            found = {(key, col if col is not None else UNKNOWN): n for key, col, n in session.execute(query)}
        labels = _labels(groups, row, names)
        rows = _ordered({k for k, _ in found}, labels)
        cells = {((k if k is not None else UNKNOWN), col): n for (k, col), n in found.items()}
    columns = [("count", "人数")]
    if column is not None:
        labels = _labels(groups, column, names)
        present = {col for _, col in cells}
        columns = [(code, label) for code, label in labels.items()]
        columns += [(code, code) for code in sorted(present - set(labels) - {UNKNOWN})]
        if UNKNOWN in present:
            columns.append((UNKNOWN, UNKNOWN))
    title = row.title if column is None else f"{row.title} × {column.title}"
    return Table(key=row.name if column is None else f"{row.name}__{column.name}", title=title,
                 row_title=row.title, rows=rows, columns=columns, cells=cells)


def _transpose(table: Table, row: Dimension, column: Dimension) -> Table:
    cells = {(c, r): n for (r, c), n in table.cells.items()}
    return Table(key=f"{row.name}__{column.name}", title=f"{row.title} × {column.title}", row_title=row.title,
                 rows=table.columns, columns=table.rows, cells=cells)


# -- the panels ---------------------------------------------------------------------------------

def _region_keys(groups: Groups) -> dict[int | None, str]:
    """Return region id → the drill-down row it counts in (None: the unplaced row, when shown)."""
    keys = {region_id: key for key in groups.keys for region_id in groups.members.get(key, ())}
    if groups.unplaced:
        keys[None] = NO_REGION
    return keys


def _workforce_sums(snap, day: date) -> dict[tuple[str, str | None], object]:
    """Return (dimension, value) → the SQL sum counting the rows with that value (None: not filled in)."""
    c = snap.c
    sums = {}

    def counted(condition):
        return func.sum(case((condition, 1), else_=0))
    for name in ("scope_category", "qualification_level", "education", "sex"):
        column = getattr(c, name)
        sums.update({(name, code): counted(column == code) for code in WORKFORCE_DIMENSIONS[name].labels})
        sums[(name, None)] = counted(column.is_(None))
    # Age bands as date ranges: the band of a birth date at day, compared once per band rather than computed.
    younger = None
    for band, limit in AGE_LIMITS:
        oldest = _years_before(day, limit)
        sums[("age_band", band)] = counted(c.birth_date > oldest if younger is None
                                           else and_(c.birth_date > oldest, c.birth_date <= younger))
        younger = oldest
    sums[("age_band", "60_over")] = counted(c.birth_date <= younger)
    sums[("age_band", None)] = counted(c.birth_date.is_(None))
    for name, flag in (("is_student", c.is_student), ("has_employer", c.has_employer), ("origin", c.is_legacy)):
        sums[(name, "1" if name != "origin" else "legacy")] = func.sum(flag)
    sums.update({("job_type", job): counted(c.job_types.like(f'%"{job}"%')) for job in JOB_TYPES})
    return sums


def workforce_tables(session, snap, groups: Groups, day: date, names: WorkflowNames) -> list[Table]:
    """Return the persons with an approved dossier, split by each workforce dimension.

    One scan of the snapshot counts every dimension's values per region with conditional sums; the regions fold
    into the drill-down rows here (a GROUP BY per dimension read the snapshot ten times). A value outside the
    vocabulary, which the sums cannot name, sends that one dimension back to its own GROUP BY.
    """
    approved = snap.c.state == names.approved
    sums = _workforce_sums(snap, day)
    query = (select(snap.c.region_id, func.count(), *sums.values())
             .where(approved, in_groups(snap, groups)).group_by(snap.c.region_id))
    keys = _region_keys(groups)
    totals: dict[str, int] = {}
    found: dict[tuple[str, str | None], int] = {}
    for region_id, count, *values in session.execute(query):
        key = keys[region_id]
        totals[key] = totals.get(key, 0) + count
        for name, n in zip(sums, values):
            found[name] = found.get(name, 0) + (n or 0)
    return build_workforce_tables(groups, names, totals, found, lambda dimension: count_by(
        session, snap, approved, groups, day, dimension, names=names))


def build_workforce_tables(groups: Groups, names: WorkflowNames, totals: dict[str, int],
                           found: dict[tuple[str, str | None], int], fallback=None) -> list[Table]:
    """Return the workforce tables from the approved persons per drill-down row (totals) and per dimension value.

    found holds the "yes" of each yes/no dimension only; fallback(dimension), when given, counts a dimension whose
    values do not add up to everyone (a value the conditional sums cannot name).
    """
    found = dict(found)
    everyone = sum(totals.values())
    # The complement of a yes/no sum is its "no"; "new" is everyone not from the old system.
    for name, yes, no in (("is_student", "1", "0"), ("has_employer", "1", "0"), ("origin", "legacy", "new")):
        found[(name, no)] = everyone - found.get((name, yes), 0)
    tables = []
    for dimension in WORKFORCE_DIMENSIONS.values():
        if dimension.name == "region":
            cells = {(key, "count"): n for key, n in totals.items() if n}
        else:
            cells = {(code if code is not None else UNKNOWN, "count"): n
                     for (name, code), n in found.items() if name == dimension.name and n}
        counted = sum(n for (name, code), n in found.items() if name == dimension.name)
        if fallback and not dimension.multi and dimension.name != "region" and counted != everyone:
            table = fallback(dimension)
        else:
            present = {row if row != UNKNOWN else None for row, _ in cells}
            rows = list(dimension.labels.items()) if dimension.multi else _ordered(present,
                                                                                   _labels(groups, dimension, names))
            table = Table(key=dimension.name, title=dimension.title, row_title=dimension.title, rows=rows, cells=cells)
        table.title = f"在册会计人员：按{dimension.title}"
        table.key = f"workforce_{dimension.name}"
        tables.append(table)
    return tables


def cross_tab(session, workflow: WorkflowEngine, scope: Scope, tree: RegionTree, focus: int | None, day: date,
              row: str, column: str) -> Table:
    """Return the approved persons counted by two workforce dimensions (a table, no chart)."""
    return cross_tab_of(session, snapshot(session, day), drill_down(tree, scope, focus), day,
                        workflow_names(workflow), row, column)


def cross_tab_of(session, snap, groups: Groups, day: date, names: WorkflowNames, row: str, column: str) -> Table:
    """Return the cross-tab of two workforce dimensions counted in snap."""
    return titled_cross_tab(count_by(session, snap, snap.c.state == names.approved, groups, day,
                                     WORKFORCE_DIMENSIONS[row], WORKFORCE_DIMENSIONS[column], names))


def titled_cross_tab(table: Table) -> Table:
    """Return table titled and shown as a cross-tab of the approved persons (a table, no chart)."""
    table.title = f"在册会计人员：{table.title}"
    table.chart = "none"
    return table


def collection_tables(session, snap, groups: Groups, day: date, names: WorkflowNames) -> list[Table]:
    """Return the collection's progress: states, origins, legacy confirmation, weekly flow, the queue, reviewers."""
    weekly, reviewers = flow_tables(session, snap, groups, day, names)
    return [*dossier_tables(session, snap, groups, names), weekly, queue_waiting(session, snap, groups, day, names),
            reviewers]


def dossier_tables(session, snap, groups: Groups, names: WorkflowNames) -> list[Table]:
    """Return the dossiers by state, by region and state, and the old-system persons' confirmation, from one scan."""
    c = snap.c
    query = (select(c.region_id, c.state, c.is_legacy, c.to_confirm, func.count()).where(in_groups(snap, groups))
             .group_by(c.region_id, c.state, c.is_legacy, c.to_confirm))
    keys = _region_keys(groups)
    return build_dossier_tables(groups, names, ((keys[region_id], state, is_legacy, to_confirm, n)
                                                for region_id, state, is_legacy, to_confirm, n in session.execute(query)))


def build_dossier_tables(groups: Groups, names: WorkflowNames, counts) -> list[Table]:
    """Return the dossier tables from (drill-down row, state, is_legacy, to_confirm, count) tuples."""
    by_state: dict[tuple[str, str], int] = {}
    by_region: dict[tuple[str, str], int] = {}
    confirm: dict[tuple[str, str], int] = {}
    for key, state, is_legacy, to_confirm, n in counts:
        if not n:
            continue
        for cells, cell in ((by_state, (state, "count")), (by_region, (key, state))):
            cells[cell] = cells.get(cell, 0) + n
        if is_legacy:
            status = "purged" if state == names.purged else "to_confirm" if to_confirm else "confirmed"
            confirm[(status, "count")] = confirm.get((status, "count"), 0) + n
    state_labels = dict(names.state_titles)
    states = _ordered({state for state, _ in by_state}, state_labels)
    region_rows = _ordered({key for key, _ in by_region}, dict(groups.titles))
    extra = sorted({state for state, _ in by_state} - set(state_labels))
    tables = [
        Table("collection_state", "档案：按状态", "状态", states, cells=by_state, unit="份"),
        Table("collection_region_state", "档案：地区 × 状态", "地区", region_rows,
              [*state_labels.items(), *((state, state) for state in extra)], by_region, chart="stacked", unit="份"),
        Table("collection_legacy", "原系统人员确认情况", "确认情况",
              [("confirmed", "已确认"), ("to_confirm", "待确认"), ("purged", "逾期未确认已删除")], cells=confirm, unit="人"),
    ]
    return tables


def _week_start(dialect: str, column):
    """Return the Monday (Beijing) of the week of a stored UTC time, as ISO text."""
    if dialect == "sqlite":
        return func.date(column, "+8 hours", "weekday 0", "-6 days")
    local = func.timezone("Asia/Shanghai", column)
    return func.to_char(func.date_trunc("week", local), "YYYY-MM-DD")


def flow_tables(session, snap, groups: Groups, day: date, names: WorkflowNames) -> tuple[Table, Table]:
    """Return the submissions, approvals and rejections per week, and per reviewer, over the last weeks before the cutoff.

    One scan of the history window counts both: by week, by action, and by actor for the reviewers' actions.
    """
    dialect = session.get_bind().dialect.name
    cutoff = end_of_day(day)
    since = cutoff - timedelta(weeks=WEEKS_SHOWN)
    week = _week_start(dialect, WorkflowHistory.created_at).label("week")
    reviewed = [names.approve, names.reject]
    # Submissions are the applicants' own: only the reviewers' actions are told apart by actor.
    actor = case((WorkflowHistory.action.in_(reviewed),
                  func.coalesce(User.display_name, User.username, "（已删除的账号）")), else_=None).label("actor")
    query = (select(week, actor, WorkflowHistory.action, func.count())
             .join(snap, snap.c.dossier_id == WorkflowHistory.dossier_id)
             .outerjoin(User, User.id == WorkflowHistory.actor_id)
             .where(WorkflowHistory.created_at >= since, WorkflowHistory.created_at < cutoff,
                    WorkflowHistory.action.in_([names.submit, *reviewed]), in_groups(snap, groups))
             .group_by(week, actor, WorkflowHistory.action))
    by_week: dict[tuple[str, str], int] = {}
    by_actor: dict[tuple[str, str], int] = {}
    for moment, who, action, n in session.execute(query):
        by_week[(moment, action)] = by_week.get((moment, action), 0) + n
        if who is not None:
            by_actor[(who, action)] = by_actor.get((who, action), 0) + n
    actions = {names.submit: "提交", names.approve: "审核确认", names.reject: "退回"}
    weekly = Table("collection_weekly", f"近{WEEKS_SHOWN}周提交、审核确认与退回", "周（起始日）",
                   [(w, w) for w in sorted({w for w, _ in by_week})], list(actions.items()), by_week, chart="line",
                   unit="次")
    people = sorted({who for who, _ in by_actor}, key=lambda who: -sum(n for (w, _), n in by_actor.items() if w == who))
    reviewers = Table("collection_reviewers", f"审核人员近{WEEKS_SHOWN}周办理量", "审核人员", [(p, p) for p in people],
                      [(names.approve, "审核确认"), (names.reject, "退回")], by_actor, chart="stacked", unit="份")
    return weekly, reviewers


def queue_waiting(session, snap, groups: Groups, day: date, names: WorkflowNames) -> Table:
    """Return per region the dossiers waiting for review, and their waiting time's median and 90th percentile (days)."""
    cutoff = end_of_day(day)
    now = min(utcnow(), cutoff)
    # The history of the dossiers waiting then only (the queue is a small part of all dossiers): when each came in.
    entered = (select(snap.c.dossier_id, snap.c.region_id, func.max(WorkflowHistory.created_at).label("since"))
               .join(WorkflowHistory, WorkflowHistory.dossier_id == snap.c.dossier_id)
               .where(snap.c.state == names.queue, in_groups(snap, groups), WorkflowHistory.to_state == names.queue,
                      WorkflowHistory.created_at < cutoff)
               .group_by(snap.c.dossier_id, snap.c.region_id).subquery("entered"))
    region = _expression(entered, groups, "region", day).label("region")
    ranked = select(region, entered.c.since,
                    func.row_number().over(partition_by=region, order_by=entered.c.since.desc()).label("rank"),
                    func.count().over(partition_by=region).label("n")).subquery("ranked")
    # Nearest rank: the waiting time of the ceil(p·n)-th shortest wait (newest entry first); integer division.
    p50, p90 = (50 * ranked.c.n + 99) // 100, (90 * ranked.c.n + 99) // 100
    query = select(ranked.c.region, ranked.c.n, ranked.c.rank, ranked.c.since, p50, p90).where(
        or_(ranked.c.rank == p50, ranked.c.rank == p90))
    columns = [("waiting", "待审核（份）"), ("p50", "等待天数中位数"), ("p90", "等待天数90%分位")]
    table = Table("collection_queue", "待审核档案与等待时间", "地区",
                  [(key, groups.titles[key]) for key in groups.keys], columns, chart="bar", unit="天")
    for key, n, rank, since, first, ninetieth in session.execute(query):
        waited = round((now - as_utc(since)).total_seconds() / 86400, 1)
        table.cells[(key, "waiting")] = n
        if rank == first:
            table.cells[(key, "p50")] = waited
        if rank == ninetieth:
            table.cells[(key, "p90")] = waited
    return table


def credit_tables(session, groups: Groups, day: date) -> list[Table]:
    """Return the live findings of the credit files at the cutoff, by kind and by recording office's region."""
    cutoff = end_of_day(day)
    later = aliased(CreditRecord)
    head = and_(CreditRecord.recorded_at < cutoff, CreditRecord.action != "revoke",
                ~exists().where(later.supersedes_id == CreditRecord.id, later.recorded_at < cutoff))
    regions = sorted(set().union(*groups.members.values())) if groups.members else []
    whens = [(CreditRecord.office_region_id.in_(sorted(groups.members[k])), k) for k in groups.keys if k != NO_REGION]
    region = (case(*whens, else_=None) if whens else literal(None)).label("region")
    query = (select(region, CreditRecord.kind, func.count())
             .where(head, CreditRecord.office_region_id.in_(regions)).group_by(region, CreditRecord.kind))
    table = Table("credit_findings", "信用档案：有效记录（按地区、类别）", "地区",
                  [(key, groups.titles[key]) for key in groups.keys if key != NO_REGION],
                  list(CREDIT_KINDS.items()), chart="stacked", unit="条")
    table.cells = {(key, kind): n for key, kind, n in session.execute(query)}
    return [table]
