"""The region tree's version row, so that an upgraded instance's processes keep their copy of the tree
(services/region_tree.py) from the first request, not only after the first region edit.

Revision ID: 0020
Revises: 0019
"""
import uuid
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

# The key as services/region_tree.py names it, copied: a migration keeps doing what it did when code moves on.
VERSION_KEY = 'region_tree_version'
settings = sa.table('settings', sa.column('key', sa.String), sa.column('value', sa.Text),
                    sa.column('updated_at', sa.DateTime(timezone=True)), sa.column('updated_by_label', sa.String))


def upgrade():
    connection = op.get_bind()
    if connection.execute(sa.select(settings.c.key).where(settings.c.key == VERSION_KEY)).first() is None:
        connection.execute(settings.insert().values(key=VERSION_KEY, value=uuid.uuid4().hex,
                                                    updated_at=datetime.now(timezone.utc), updated_by_label='系统'))


def downgrade():
    op.execute(settings.delete().where(settings.c.key == VERSION_KEY))
