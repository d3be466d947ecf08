"""The reviewer's queue index carries checked_in_at too, so that SQLite counts the queue from the index alone.

SQLite does not drop the query's "checked_in_at IS NULL" though the partial index implies it: without the column
in the index it read every queued dossier's table row to test it (10,000 rows a worklist page).

Revision ID: 0021
Revises: 0020
"""
from alembic import op
import sqlalchemy as sa

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

NOT_CHECKED_IN = sa.text('checked_in_at IS NULL')
BEFORE = ['state', 'region_id', 'state_changed_at']


def upgrade():
    _replace(BEFORE + ['checked_in_at'])


def downgrade():
    _replace(BEFORE)


def _replace(columns):
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_index('ix_dossiers_queue', sqlite_where=NOT_CHECKED_IN, postgresql_where=NOT_CHECKED_IN)
        batch_op.create_index('ix_dossiers_queue', columns, unique=False,
                              sqlite_where=NOT_CHECKED_IN, postgresql_where=NOT_CHECKED_IN)
