"""Working copies (after plone.app.iterate), the time of the last state change, login failures.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 09:15:09.796893

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failures_key'), ['key'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failures_occurred_at'), ['occurred_at'], unique=False)

    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=True))
    # Existing dossiers: their last change is the best estimate of their last state change.
    op.execute("UPDATE dossiers SET state_changed_at = updated_at")
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.alter_column('state_changed_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.add_column(sa.Column('baseline_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('checked_in_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(batch_op.f('uq_dossiers_person_id'), type_='unique')
        batch_op.create_index(batch_op.f('ix_dossiers_person_id'), ['person_id'], unique=False)
        batch_op.create_index('ix_dossiers_state_changed', ['state', 'state_changed_at'], unique=False)
        batch_op.create_index('uq_dossiers_effective_person', ['person_id'], unique=True, sqlite_where=sa.text('baseline_id IS NULL'), postgresql_where=sa.text('baseline_id IS NULL'))
        batch_op.create_index('uq_dossiers_open_working_copy', ['baseline_id'], unique=True, sqlite_where=sa.text('baseline_id IS NOT NULL AND checked_in_at IS NULL'), postgresql_where=sa.text('baseline_id IS NOT NULL AND checked_in_at IS NULL'))
        batch_op.create_foreign_key(batch_op.f('fk_dossiers_baseline_id_dossiers'), 'dossiers', ['baseline_id'], ['id'])



def downgrade():
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_dossiers_baseline_id_dossiers'), type_='foreignkey')
        batch_op.drop_index('uq_dossiers_open_working_copy', sqlite_where=sa.text('baseline_id IS NOT NULL AND checked_in_at IS NULL'), postgresql_where=sa.text('baseline_id IS NOT NULL AND checked_in_at IS NULL'))
        batch_op.drop_index('uq_dossiers_effective_person', sqlite_where=sa.text('baseline_id IS NULL'), postgresql_where=sa.text('baseline_id IS NULL'))
        batch_op.drop_index('ix_dossiers_state_changed')
        batch_op.drop_index(batch_op.f('ix_dossiers_person_id'))
        batch_op.create_unique_constraint(batch_op.f('uq_dossiers_person_id'), ['person_id'])
        batch_op.drop_column('state_changed_at')
        batch_op.drop_column('checked_in_at')
        batch_op.drop_column('baseline_id')

    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failures_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_login_failures_key'))

    op.drop_table('login_failures')
