"""Revisions keep the old-system flags (is_legacy, to_confirm), so a past day's statistics count that day's values.

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('dossier_revisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_legacy', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('to_confirm', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    # Earlier revisions never recorded the flags: today's values are the best knowledge of them (what was read before).
    op.execute("UPDATE dossier_revisions SET "
               "is_legacy = (SELECT persons.is_legacy FROM dossiers JOIN persons ON persons.id = dossiers.person_id "
               "WHERE dossiers.id = dossier_revisions.dossier_id), "
               "to_confirm = (SELECT dossiers.to_confirm FROM dossiers WHERE dossiers.id = dossier_revisions.dossier_id)")


def downgrade():
    with op.batch_alter_table('dossier_revisions', schema=None) as batch_op:
        batch_op.drop_column('to_confirm')
        batch_op.drop_column('is_legacy')
