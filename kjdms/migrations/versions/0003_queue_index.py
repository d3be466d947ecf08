"""An index for the reviewer's queue: state, region and waiting time of dossiers not checked in.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

NOT_CHECKED_IN = sa.text('checked_in_at IS NULL')


def upgrade():
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.create_index('ix_dossiers_queue', ['state', 'region_id', 'state_changed_at'], unique=False,
                              sqlite_where=NOT_CHECKED_IN, postgresql_where=NOT_CHECKED_IN)


def downgrade():
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_index('ix_dossiers_queue', sqlite_where=NOT_CHECKED_IN, postgresql_where=NOT_CHECKED_IN)
