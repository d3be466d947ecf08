"""Statistics counters: per region, state and dimension value, with each dossier's member row; persons by birth date;
the history by action and time.

Revision ID: 0018
Revises: 0017
"""
import calendar
from collections import Counter
from datetime import date, timezone
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'stats_counters',
        sa.Column('region_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.Column('dimension', sa.String(length=32), nullable=False),
        sa.Column('value', sa.String(length=64), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('region_id', 'state', 'dimension', 'value', name=op.f('pk_stats_counters')),
    )
    op.create_table(
        'stats_members',
        sa.Column('dossier_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('region_id', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.Column('keys', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('dossier_id', name=op.f('pk_stats_members')),
    )
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_persons_birth_date'), ['birth_date'], unique=False)
    with op.batch_alter_table('workflow_history', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_history_action_created', ['action', 'created_at'], unique=False)
    # Count the dossiers already there, so that the page reads right counters from the first request.
    count_all(op.get_bind())


def downgrade():
    with op.batch_alter_table('workflow_history', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_history_action_created')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_persons_birth_date'))
    op.drop_table('stats_members')
    op.drop_table('stats_counters')


# -- the first count, frozen as this revision counted: later changes of services/stats_counters.py must not change
# what an old migration does (0019 adds the history's keys on top of these).

BATCH = 5000
BEIJING = ZoneInfo("Asia/Shanghai")
VALUE_DIMENSIONS = ("scope_category", "qualification_level", "education", "sex")
metadata = sa.MetaData()
persons = sa.Table("persons", metadata, sa.Column("id", sa.Integer), sa.Column("sex", sa.String),
                   sa.Column("birth_date", sa.Date), sa.Column("is_legacy", sa.Boolean))
dossiers = sa.Table("dossiers", metadata, *(sa.Column(name, sa.Integer) for name in ("id", "person_id", "region_id",
                                                                                       "baseline_id")),
                    *(sa.Column(name, sa.String) for name in ("state", *VALUE_DIMENSIONS[:3], "employer_name")),
                    sa.Column("job_types", sa.JSON), sa.Column("is_student", sa.Boolean),
                    sa.Column("to_confirm", sa.Boolean), sa.Column("job_started_on", sa.Date),
                    sa.Column("created_at", sa.DateTime(timezone=True)))
members = sa.Table("stats_members", metadata, sa.Column("dossier_id", sa.Integer), sa.Column("region_id", sa.Integer),
                   sa.Column("state", sa.String), sa.Column("keys", sa.JSON))
counters = sa.Table("stats_counters", metadata, sa.Column("region_id", sa.Integer), sa.Column("state", sa.String),
                    sa.Column("dimension", sa.String), sa.Column("value", sa.String), sa.Column("count", sa.Integer))


def _one_month_after(day: date) -> date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _local_date(moment) -> date:
    return (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment).astimezone(BEIJING).date()


def _keys(row) -> Counter:
    keys = Counter({"all=": 1})
    for name in VALUE_DIMENSIONS:
        value = getattr(row, name)
        keys[f"{name}={'' if value is None else value}"] += 1
    keys[f"birth_month={row.birth_date.strftime('%Y-%m') if row.birth_date else ''}"] += 1
    for job in sorted(set(row.job_types or ())):
        keys[f"job_type={job}"] += 1
    if row.is_student:
        keys["is_student=1"] += 1
    if (row.employer_name or "") != "":
        keys["has_employer=1"] += 1
    if row.is_legacy:
        keys["origin=legacy"] += 1
        if row.to_confirm:
            keys["legacy_to_confirm=1"] += 1
    elif row.job_started_on is not None:
        keys["registration=registered"] += 1
        if _local_date(row.created_at) > _one_month_after(row.job_started_on):
            keys["registration=late"] += 1
    return keys


def count_all(connection) -> None:
    """Write a member row for every effective dossier and the counters they sum to (both tables start empty)."""
    d, p = dossiers.c, persons.c
    total, after = Counter(), 0
    while True:
        rows = connection.execute(
            sa.select(d.id, d.region_id, d.state, d.scope_category, d.qualification_level, d.education, d.job_types,
                      d.is_student, d.employer_name, d.to_confirm, d.job_started_on, d.created_at, p.sex,
                      p.birth_date, p.is_legacy)
            .join(persons, p.id == d.person_id).where(d.baseline_id.is_(None), d.id > after)
            .order_by(d.id).limit(BATCH)).all()
        if not rows:
            break
        added = []
        for row in rows:
            keys, region_id = _keys(row), row.region_id or 0
            added.append({"dossier_id": row.id, "region_id": region_id, "state": row.state, "keys": dict(keys)})
            total.update({(region_id, row.state, *key.split("=", 1)): n for key, n in keys.items()})
        connection.execute(members.insert(), added)
        after = rows[-1].id
    rows = [{"region_id": r, "state": s, "dimension": k, "value": v, "count": n}
            for (r, s, k, v), n in sorted(total.items()) if n]
    if rows:
        connection.execute(counters.insert(), rows)
