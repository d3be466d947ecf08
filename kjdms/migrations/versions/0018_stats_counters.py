"""Statistics counters: per region, state and dimension value, with each dossier's member row; persons by birth date;
the history by action and time.

Revision ID: 0018
Revises: 0017
"""
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
    from kjdms.services.stats_counters import count_all
    count_all(op.get_bind())


def downgrade():
    with op.batch_alter_table('workflow_history', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_history_action_created')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_persons_birth_date'))
    op.drop_table('stats_members')
    op.drop_table('stats_counters')
