"""Statistics counters of the history: each dossier's actions per day and actor, the items its rejections flagged and
the changes of information filed through its working copies, counted in every state alike; working copies by baseline.

Revision ID: 0019
Revises: 0018
"""
import calendar
from collections import Counter, defaultdict
from datetime import date, timezone
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.create_index('ix_dossiers_baseline_id', ['baseline_id'], unique=False,
                              sqlite_where=sa.text('baseline_id IS NOT NULL'),
                              postgresql_where=sa.text('baseline_id IS NOT NULL'))
    add_history_keys(op.get_bind())


def downgrade():
    connection = op.get_bind()
    connection.execute(counters.delete().where(counters.c.state == STATE_FREE))
    after = 0
    while True:
        rows = connection.execute(sa.select(members.c.dossier_id, members.c.keys).where(members.c.dossier_id > after)
                                  .order_by(members.c.dossier_id).limit(BATCH)).all()
        if not rows:
            break
        connection.execute(members.update().where(members.c.dossier_id == sa.bindparam("id")).values(
            keys=sa.bindparam("kept")), [{"id": row.dossier_id, "kept": {
                key: n for key, n in row.keys.items() if key.split("=", 1)[0] not in HISTORY_DIMENSIONS}}
                for row in rows])
        after = rows[-1].dossier_id
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_index('ix_dossiers_baseline_id')


# -- the history's keys, frozen as this revision counts them (services/counted_history.py keeps them since).

BATCH = 2000
BEIJING = ZoneInfo("Asia/Shanghai")
OWNER_ROLE = "owner"
STATE_FREE = "*"
HISTORY_DIMENSIONS = ("flow", "items", "update")
metadata = sa.MetaData()
dossiers = sa.Table("dossiers", metadata, sa.Column("id", sa.Integer), sa.Column("baseline_id", sa.Integer),
                    sa.Column("information_changed_on", sa.Date), sa.Column("created_at", sa.DateTime(timezone=True)))
history = sa.Table("workflow_history", metadata, sa.Column("dossier_id", sa.Integer), sa.Column("action", sa.String),
                   sa.Column("actor_id", sa.Integer), sa.Column("actor_role", sa.String),
                   sa.Column("flagged", sa.JSON), sa.Column("created_at", sa.DateTime(timezone=True)))
revisions = sa.Table("dossier_revisions", metadata, sa.Column("id", sa.Integer), sa.Column("dossier_id", sa.Integer),
                     sa.Column("fields", sa.JSON), sa.Column("recorded_at", sa.DateTime(timezone=True)))
members = sa.Table("stats_members", metadata, sa.Column("dossier_id", sa.Integer), sa.Column("region_id", sa.Integer),
                   sa.Column("state", sa.String), sa.Column("keys", sa.JSON))
counters = sa.Table("stats_counters", metadata, sa.Column("region_id", sa.Integer), sa.Column("state", sa.String),
                    sa.Column("dimension", sa.String), sa.Column("value", sa.String), sa.Column("count", sa.Integer))


def _one_month_after(day: date) -> date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _local_date(moment) -> date:
    return (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment).astimezone(BEIJING).date()


def _history_keys(connection, dossier_ids: list[int]) -> dict[int, Counter]:
    keys: dict[int, Counter] = defaultdict(Counter)
    copy = dossiers.alias("copy")
    changed = revisions.c.fields["information_changed_on"].as_string()
    before_copy = (sa.select(changed).where(revisions.c.dossier_id == copy.c.baseline_id,
                                            revisions.c.recorded_at <= copy.c.created_at)
                   .order_by(revisions.c.recorded_at.desc(), revisions.c.id.desc()).limit(1).scalar_subquery())
    copies = {row.id: row for row in connection.execute(
        sa.select(copy.c.id, copy.c.baseline_id, copy.c.information_changed_on, before_copy.label("before_copy"))
        .where(copy.c.baseline_id.in_(dossier_ids)))}
    first = {}
    h = history.c
    for row in connection.execute(sa.select(h.dossier_id, h.action, h.actor_id, h.actor_role, h.flagged, h.created_at)
                                  .where(h.dossier_id.in_([*dossier_ids, *copies]))):
        owner = copies[row.dossier_id].baseline_id if row.dossier_id in copies else row.dossier_id
        keys[owner].update(f"items={row.action}|{code}" for code in sorted(set(row.flagged or ())) or [""])
        if row.dossier_id in copies:
            moment = first.get((row.dossier_id, row.action))
            if moment is None or row.created_at < moment:
                first[(row.dossier_id, row.action)] = row.created_at
            continue
        actor = row.actor_id if row.actor_id is not None and row.actor_role != OWNER_ROLE else ""
        keys[owner][f"flow={_local_date(row.created_at):%Y-%m-%d}|{row.action}|{actor}"] += 1
    for (copy_id, action), moment in first.items():
        change = copies[copy_id]
        if change.information_changed_on is None or change.before_copy == change.information_changed_on.isoformat():
            continue
        keys[change.baseline_id][f"update={action}|filed"] += 1
        if _local_date(moment) > _one_month_after(change.information_changed_on):
            keys[change.baseline_id][f"update={action}|late"] += 1
    return keys


def add_history_keys(connection) -> None:
    """Add every counted dossier's history keys to its member row, and their sums to the counters."""
    total, after = Counter(), 0
    while True:
        rows = connection.execute(sa.select(members).where(members.c.dossier_id > after)
                                  .order_by(members.c.dossier_id).limit(BATCH)).all()
        if not rows:
            break
        found = _history_keys(connection, [row.dossier_id for row in rows])
        changed = [{"id": row.dossier_id, "merged": {**row.keys, **found[row.dossier_id]}}
                   for row in rows if found.get(row.dossier_id)]
        for row in rows:
            total.update({(row.region_id, STATE_FREE, *key.split("=", 1)): n
                          for key, n in found.get(row.dossier_id, {}).items()})
        if changed:
            connection.execute(members.update().where(members.c.dossier_id == sa.bindparam("id")).values(
                keys=sa.bindparam("merged")), changed)
        after = rows[-1].dossier_id
    rows = [{"region_id": r, "state": s, "dimension": k, "value": v, "count": n}
            for (r, s, k, v), n in sorted(total.items()) if n]
    if rows:
        connection.execute(counters.insert(), rows)
