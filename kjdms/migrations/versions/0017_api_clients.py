"""API clients: downstream systems asking the JSON API, their regions and their per-minute counters;
tombstones keep a keyed hash of the name, so a status lookup matches a purged person's name and ID number.

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'api_clients',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('purpose', sa.String(length=255), nullable=False),
        sa.Column('may_see_credit', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('rate_per_minute', sa.Integer(), server_default='60', nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('key_prefix', sa.String(length=16), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_api_clients_created_by_id_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_clients')),
        sa.UniqueConstraint('name', name=op.f('uq_api_clients_name')),
        sa.UniqueConstraint('key_prefix', name=op.f('uq_api_clients_key_prefix')),
    )
    op.create_table(
        'api_client_regions',
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('region_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'],
                                name=op.f('fk_api_client_regions_client_id_api_clients'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_api_client_regions_region_id_regions')),
        sa.PrimaryKeyConstraint('client_id', 'region_id', name=op.f('pk_api_client_regions')),
    )
    op.create_table(
        'api_rate_windows',
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'],
                                name=op.f('fk_api_rate_windows_client_id_api_clients'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('client_id', 'window_start', name=op.f('pk_api_rate_windows')),
    )
    with op.batch_alter_table('tombstones', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_hash', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('tombstones', schema=None) as batch_op:
        batch_op.drop_column('name_hash')
    op.drop_table('api_rate_windows')
    op.drop_table('api_client_regions')
    op.drop_table('api_clients')
