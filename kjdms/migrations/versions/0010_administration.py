"""Administration: staff accounts belong to an office, one-time passwords, edited regions, settings.

Revision ID: 0010
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('region_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('department', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('phone', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), server_default=sa.text('false'),
                                      nullable=False))
        batch_op.create_index(batch_op.f('ix_users_region_id'), ['region_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_users_region_id_regions'), 'regions', ['region_id'], ['id'])
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hours', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('edited_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'settings',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by_label', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_settings')),
    )
    # Existing staff belong to the region of their first role, the office that appointed them.
    op.execute("UPDATE users SET region_id = (SELECT role_assignments.region_id FROM role_assignments "
               "WHERE role_assignments.user_id = users.id ORDER BY role_assignments.id LIMIT 1) "
               "WHERE username IS NOT NULL")


def downgrade():
    op.drop_table('settings')
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.drop_column('edited_at')
        batch_op.drop_column('hours')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_users_region_id_regions'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_users_region_id'))
        batch_op.drop_column('must_change_password')
        batch_op.drop_column('phone')
        batch_op.drop_column('department')
        batch_op.drop_column('region_id')
