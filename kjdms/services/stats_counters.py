"""Counters of the effective dossiers per region, state and dimension value, kept in the transaction of every change.

Each effective dossier has a member row saying what it adds to the counters now (its region, its state and its
"dimension=value" keys). change_tracking hands every committed transaction's dossiers to recount(), which reads
them as they now are and moves the counters by the difference; the statistics page reads today's numbers from the
counters (services/statistics.py) instead of scanning every dossier. Age bands move with the calendar, so the
counters keep the birth month and the page folds months into bands on the day it shows.

Under concurrency: on PostgreSQL a transaction first locks the member rows of its dossiers (sorted), then reads the
dossiers, so two transactions changing one person take turns and the second diffs against the first's result;
counter rows change by `count + delta` upserts in one global order, so they never deadlock. SQLite has one writer.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Callable, Iterable, Sequence

from sqlalchemy import bindparam, delete, func, null, select, text, type_coerce, union_all, update
from sqlalchemy.dialects import postgresql, sqlite

from ..local_time import local_date
from ..models import Dossier, Person, StatsCounter, StatsMember
from .counted_history import HISTORY_DIMENSIONS, fold_history, history_read
from .revisions import INSERT_REVISIONS_FROM_JSON, insert_revisions, revisions_json
from .time_rules import one_month_after

NO_REGION_ID = 0
# The fields whose value is one key each ("" when not filled in).
VALUE_DIMENSIONS = ("scope_category", "qualification_level", "education", "sex")
BATCH = 500
# The state under which the history's keys count: whatever the dossier's state (counted_history.py).
STATE_FREE = "*"

counters = StatsCounter.__table__
members = StatsMember.__table__


@dataclass(frozen=True)
class Membership:
    """What one dossier adds to the counters: in which region and state, under which keys, how many times."""

    region_id: int
    state: str
    keys: dict[str, int]


def _key(dimension: str, value) -> str:
    return f"{dimension}={'' if value is None else value}"


def membership(row, history: Counter | None = None) -> Membership:
    """Return what a dossier row (joined with its person, as CURRENT_ROWS reads it) and its history's keys add."""
    keys = Counter({"all=": 1, **(history or {})})
    for name in VALUE_DIMENSIONS:
        keys[_key(name, getattr(row, name))] += 1
    keys[_key("birth_month", row.birth_date.strftime("%Y-%m") if row.birth_date else None)] += 1
    for job in sorted(set(row.job_types or ())):
        keys[_key("job_type", job)] += 1
    if row.is_student:
        keys["is_student=1"] += 1
    if (row.employer_name or "") != "":
        keys["has_employer=1"] += 1
    if row.is_legacy:
        keys["origin=legacy"] += 1
        if row.to_confirm:
            keys["legacy_to_confirm=1"] += 1
    # The one-month rule of 三 for a new registrant (compliance_stats.py counts the same from the rows).
    elif row.job_started_on is not None:
        keys["registration=registered"] += 1
        if local_date(row.created_at) > one_month_after(row.job_started_on):
            keys["registration=late"] += 1
    return Membership(row.region_id or NO_REGION_ID, row.state, dict(keys))


# The statements every change runs are built once (a statement built afresh costs more Python than its round trip).
CURRENT_ROWS = (select(Dossier.id, Dossier.region_id, Dossier.state, Dossier.scope_category,
                       Dossier.qualification_level, Dossier.education, Dossier.job_types, Dossier.is_student,
                       Dossier.employer_name, Dossier.to_confirm, Dossier.job_started_on, Dossier.created_at,
                       Person.sex, Person.birth_date, Person.is_legacy)
                .join(Person, Person.id == Dossier.person_id)
                .where(Dossier.id.in_(bindparam("ids", expanding=True)), Dossier.baseline_id.is_(None)))
STORED = (select(members).where(members.c.dossier_id.in_(bindparam("ids", expanding=True)))
          .order_by(members.c.dossier_id))
STORED_LOCKED = STORED.with_for_update()
# PostgreSQL inserts the transaction's revisions in the statement that locks its member rows: a round trip less.
STORED_LOCKED_AND_REVISIONS = STORED_LOCKED.add_cte(INSERT_REVISIONS_FROM_JSON.cte("revised"))
BASELINES = select(Dossier.baseline_id).where(Dossier.id.in_(bindparam("ids", expanding=True)),
                                             Dossier.baseline_id.is_not(None))
UPDATE_MEMBER = update(members).where(members.c.dossier_id == bindparam("id")).values(
    region_id=bindparam("region_id"), state=bindparam("state"), keys=bindparam("keys"))


@cache
def _counted_read(dialect: str):
    """Return one statement reading both what memberships needs: CURRENT_ROWS and their history (history_read).

    A round trip less at every change. Each row has the columns of both, its own filled and the other's NULL: a
    dossier's row has an id, a history row none. Built once per dialect.
    """
    history = history_read(dialect)

    def blank(columns):
        # Typed, so that the other side's values in these columns get their result processing (JSON, dates).
        return [type_coerce(null(), column.type).label(column.name) for column in columns]

    return union_all(CURRENT_ROWS.add_columns(*blank(history.selected_columns)),
                     history.with_only_columns(*blank(CURRENT_ROWS.selected_columns), *history.selected_columns,
                                               maintain_column_froms=True))


def memberships(connection, dossier_ids: list[int]) -> dict[int, Membership]:
    """Return what each effective dossier among dossier_ids adds to the counters now (none for the others)."""
    rows = connection.execute(_counted_read(connection.dialect.name), {"ids": dossier_ids}).all()
    # The history of a working copy among dossier_ids counts for its baseline (with_baselines put it in the batch
    # too); when the batch holds the copy alone, its rows count for no dossier of this batch and are left.
    history = fold_history(row for row in rows if row.id is None)
    return {row.id: membership(row, history.get(row.id)) for row in rows if row.id is not None}


def with_baselines(connection, dossier_ids: Iterable[int],
                   known_baselines: dict[int, int | None] | None = None) -> set[int]:
    """Return dossier_ids with the baseline of every working copy among them (whose history counts there).

    known_baselines: dossier id → baseline id (None: no working copy) of stored dossiers whose baseline the caller
    holds already (a dossier's baseline never changes); only the others are read.
    """
    ids = set(dossier_ids)
    known = {dossier_id: baseline for dossier_id, baseline in (known_baselines or {}).items() if dossier_id in ids}
    found = {baseline for baseline in known.values() if baseline is not None}
    ordered = sorted(ids - known.keys())
    for start in range(0, len(ordered), BATCH):
        found.update(connection.execute(BASELINES, {"ids": ordered[start:start + BATCH]}).scalars())
    return ids | found


def _stored(connection, dossier_ids: list[int], lock: bool, revisions: Sequence[dict] = ()) -> dict[int, Membership]:
    """Return the stored member rows of dossier_ids, locked on PostgreSQL if lock; revisions: rows to insert there too."""
    query, params = STORED, {"ids": dossier_ids}
    if lock and connection.dialect.name == "postgresql":
        query = STORED_LOCKED
        if revisions:
            query, params = STORED_LOCKED_AND_REVISIONS, {**params, "revisions": revisions_json(revisions)}
    return {row.dossier_id: Membership(row.region_id, row.state, dict(row.keys))
            for row in connection.execute(query, params)}


def _contribution(member: Membership | None) -> Counter:
    if member is None:
        return Counter()
    found = Counter()
    for key, n in member.keys.items():
        dimension, value = key.split("=", 1)
        found[(member.region_id, STATE_FREE if dimension in HISTORY_DIMENSIONS else member.state, dimension, value)] += n
    return found


# SQLite adds row by row (an executemany of one compiled statement). Written as text: the dialect's
# on_conflict_do_update has no cache key, so SQLAlchemy compiled it afresh at every change.
SQLITE_ADD = text(
    "INSERT INTO stats_counters (region_id, state, dimension, value, count) "
    "VALUES (:region_id, :state, :dimension, :value, :count) "
    "ON CONFLICT (region_id, state, dimension, value) DO UPDATE SET count = stats_counters.count + excluded.count")


# PostgreSQL gets the whole delta in one statement (an executemany sends each row on its own, in Python each time),
# as one JSON array of rows: json.dumps is C, where five array parameters cost psycopg's Python an element at a time.
# WITH ORDINALITY keeps the rows in the one global order.
POSTGRES_ADD_SQL = (
    "INSERT INTO stats_counters (region_id, state, dimension, value, count) "
    "SELECT region_id, state, dimension, value, count FROM ROWS FROM (json_to_recordset(CAST(:delta AS json)) "
    "AS (region_id integer, state text, dimension text, value text, count integer)) "
    "WITH ORDINALITY AS delta(region_id, state, dimension, value, count, position) "
    "ORDER BY position "
    "ON CONFLICT (region_id, state, dimension, value) DO UPDATE SET count = stats_counters.count + excluded.count")
POSTGRES_ADD = text(POSTGRES_ADD_SQL)
# A change's member rows, updated in place, and the counters' move in one round trip (a data-modifying WITH). The
# member rows are locked already (STORED_LOCKED), so the counters' upsert keeps its one global order.
POSTGRES_UPDATE_MEMBERS_AND_ADD = text(
    "WITH moved_members AS (UPDATE stats_members SET region_id = member.region_id, state = member.state, "
    "keys = member.keys FROM json_to_recordset(CAST(:members AS json)) "
    "AS member(id integer, region_id integer, state text, keys json) "
    "WHERE stats_members.dossier_id = member.id) " + POSTGRES_ADD_SQL)
DELTA_FIELDS = ("region_id", "state", "dimension", "value", "count")


def _delta_rows(delta: Counter) -> list[tuple]:
    """Return delta's non-zero changes as (region_id, state, dimension, value, change), in the one global order."""
    return [(*key, n) for key, n in sorted(delta.items()) if n]


def _delta_json(rows: list[tuple]) -> str:
    """Return _delta_rows' rows as the JSON array POSTGRES_ADD takes."""
    return json.dumps([dict(zip(DELTA_FIELDS, row)) for row in rows], ensure_ascii=False)


def add_to_counters(connection, delta: Counter) -> None:
    """Move the counters by delta ((region_id, state, dimension, value) → change), in the one global order."""
    rows = _delta_rows(delta)
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(POSTGRES_ADD, {"delta": _delta_json(rows)})
    else:
        connection.execute(SQLITE_ADD, [
            {"region_id": r, "state": s, "dimension": d, "value": v, "count": n} for r, s, d, v, n in rows])


@cache
def _insert_new_member(dialect_name: str):
    """Return an INSERT of a member row that skips a dossier inserted meanwhile and returns the ids it inserted."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return (dialect.insert(members).on_conflict_do_nothing(index_elements=[members.c.dossier_id])
            .returning(members.c.dossier_id))


def _claim_new_members(connection, new: dict[int, Membership]) -> set[int]:
    """Insert the member rows of dossiers not counted yet; return the ids inserted.

    A concurrent transaction may have inserted one meanwhile (both read no row: there was none to lock). Its insert
    is skipped rather than failing the commit, and the caller diffs that dossier against the row now stored.
    """
    if not new:
        return set()
    rows = [{"dossier_id": i, "region_id": m.region_id, "state": m.state, "keys": m.keys}
            for i, m in sorted(new.items())]
    return {row.dossier_id for row in connection.execute(_insert_new_member(connection.dialect.name), rows)}


def _updated_members(changed: dict[int, Membership | None], before: dict[int, Membership]) -> list[dict]:
    """Return the rows of the changed members counted before and still counted, to update in place."""
    return [{"id": i, "region_id": m.region_id, "state": m.state, "keys": m.keys}
            for i, m in changed.items() if m and i in before]


def _write_members(connection, changed: dict[int, Membership | None], before: dict[int, Membership]) -> None:
    """Store the changed member rows of dossiers counted before: updated in place, so that a transaction waiting on
    one's lock reads the new row (PostgreSQL would skip a row deleted and inserted anew, and the waiting transaction
    would count it twice)."""
    updated = _updated_members(changed, before)
    if updated:
        connection.execute(UPDATE_MEMBER, updated)
    gone = [i for i, m in changed.items() if m is None and i in before]
    if gone:
        connection.execute(delete(members).where(members.c.dossier_id.in_(gone)))


def _move(connection, changed: dict[int, Membership | None], before: dict[int, Membership],
          delta: Counter | None) -> None:
    """Store the changed member rows and move the counters by delta (None: the members only).

    On PostgreSQL a change whose members are all updated in place (a transition's, an edit's) does both in one
    statement; a member added or gone takes the two steps.
    """
    updated, rows = _updated_members(changed, before), _delta_rows(delta or Counter())
    if connection.dialect.name == "postgresql" and rows and updated and len(updated) == len(changed):
        connection.execute(POSTGRES_UPDATE_MEMBERS_AND_ADD, {"members": json.dumps(updated), "delta": _delta_json(rows)})
        return
    _write_members(connection, changed, before)
    if delta is not None:
        add_to_counters(connection, delta)


def recount(connection, dossier_ids: Iterable[int], counted: bool = True,
            known_baselines: dict[int, int | None] | None = None, revisions: Sequence[dict] = ()) -> int:
    """Bring the members and counters of dossier_ids in line with the dossiers as they now are; return how many moved.

    A dossier that is no longer effective (or gone) leaves the counters; a working copy among dossier_ids recounts
    its baseline. Running it twice changes nothing. Without counted only the member rows move (a rebuild sums the
    counters from them at the end). known_baselines: as with_baselines takes them. revisions: the transaction's
    revision rows (revisions.revision_rows), inserted before the dossiers are read; on PostgreSQL in the statement
    that locks the first batch's member rows.
    """
    moved = 0
    ordered = sorted(with_baselines(connection, dossier_ids, known_baselines))
    riding = connection.dialect.name == "postgresql" and bool(ordered)
    if not riding:
        insert_revisions(connection, list(revisions))
    for start in range(0, len(ordered), BATCH):
        batch = ordered[start:start + BATCH]
        before = _stored(connection, batch, lock=True, revisions=list(revisions) if riding and start == 0 else [])
        after = memberships(connection, batch)
        new = {i: after[i] for i in after if i not in before}
        claimed = _claim_new_members(connection, new)
        if len(claimed) < len(new):
            # Inserted by a transaction that committed meanwhile: count the difference from its row instead.
            before.update(_stored(connection, sorted(set(new) - claimed), lock=True))
        changed = [i for i in batch if before.get(i) != after.get(i)]
        if not changed:
            continue
        delta = Counter()
        for dossier_id in changed if counted else ():
            delta.update(_contribution(after.get(dossier_id)))
            delta.subtract(_contribution(before.get(dossier_id)))
        _move(connection, {i: after.get(i) for i in changed if i not in claimed}, before, delta if counted else None)
        moved += len(changed)
    return moved


# -- check and rebuild ------------------------------------------------------------------------------

def _id_batches(connection, after: int = 0):
    """Yield the ids of every effective dossier and every member, in batches, from after on."""
    while True:
        size = BATCH * 10
        # The first ids of each side: the first of their union are among them (and no side is read to its end).
        dossiers = (select(Dossier.id.label("id")).where(Dossier.baseline_id.is_(None), Dossier.id > after)
                    .order_by(Dossier.id).limit(size).subquery())
        counted = (select(members.c.dossier_id.label("id")).where(members.c.dossier_id > after)
                   .order_by(members.c.dossier_id).limit(size).subquery())
        both = select(dossiers.c.id).union(select(counted.c.id)).subquery()
        batch = list(connection.execute(select(both.c.id).order_by(both.c.id).limit(size)).scalars())
        if not batch:
            return
        yield batch
        after = batch[-1]


def count_all(connection) -> int:
    """Recount every dossier in connection's one transaction (the migration's first count); return how many moved."""
    return sum(recount(connection, batch) for batch in _id_batches(connection))


def expected_counters(connection) -> Counter:
    """Return the counters computed afresh from every effective dossier (the check's truth)."""
    total = Counter()
    for batch in _id_batches(connection):
        for member in memberships(connection, batch).values():
            total.update(_contribution(member))
    return +total


def stored_counters(connection) -> Counter:
    """Return the counters as stored (zero rows left out)."""
    rows = connection.execute(select(counters).where(counters.c.count != 0))
    return Counter({(r.region_id, r.state, r.dimension, r.value): r.count for r in rows})


def differences(connection) -> list[tuple[tuple, int, int]]:
    """Return every counter whose stored number differs from the dossiers': (key, stored, actual)."""
    expected, stored = expected_counters(connection), stored_counters(connection)
    return [(key, stored.get(key, 0), expected.get(key, 0)) for key in sorted(set(expected) | set(stored))
            if stored.get(key, 0) != expected.get(key, 0)]


def rebuild(begin: Callable, progress: Callable[[int, int], None] = lambda done, total: None) -> int:
    """Recount every dossier batch by batch (each its own transaction), then set the counters to the members' sum.

    begin() opens a transaction and yields its connection (engine.begin). An interrupted rebuild can run again:
    the batches done write nothing the second time. Return how many dossiers moved.
    """
    with begin() as connection:
        total = connection.scalar(select(func.count()).select_from(Dossier).where(Dossier.baseline_id.is_(None)))
    moved, done, after = 0, 0, 0
    while True:
        with begin() as connection:
            batch = next(_id_batches(connection, after), None)
            if batch is None:
                break
            moved += recount(connection, batch, counted=False)
        after, done = batch[-1], done + len(batch)
        progress(min(done, total), total)
    with begin() as connection:
        resum_counters(connection)
    return moved


def resum_counters(connection) -> None:
    """Set the counters to the sum of the member rows (mends a counter changed behind the members' back)."""
    if connection.dialect.name == "postgresql":
        # Locked before the members are read: a transaction between its member and counter writes waits, then adds
        # its delta to the new sums, which do not hold its member yet.
        connection.exec_driver_sql("LOCK TABLE stats_counters IN SHARE ROW EXCLUSIVE MODE")
    # On SQLite the delete takes the write lock before the members are read, to the same end.
    connection.execute(delete(counters))
    total = Counter()
    for row in connection.execute(select(members)):
        total.update(_contribution(Membership(row.region_id, row.state, dict(row.keys))))
    add_to_counters(connection, +total)
