"""Search: the index outbox, and the extracted text of attachment versions.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'index_outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dossier_id', sa.Integer(), nullable=False),
        sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('indexed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_index_outbox')),
    )
    with op.batch_alter_table('index_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_index_outbox_dossier_id'), ['dossier_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_index_outbox_indexed_at'), ['indexed_at'], unique=False)
    with op.batch_alter_table('attachment_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_status', sa.String(length=16), server_default='pending', nullable=False))
        batch_op.add_column(sa.Column('extracted_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('text_method', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('text_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('text_extracted_at', sa.DateTime(timezone=True), nullable=True))
    # Every dossier already in the database goes into the new index.
    op.execute("INSERT INTO index_outbox (dossier_id, queued_at, attempts) "
               "SELECT id, CURRENT_TIMESTAMP, 0 FROM dossiers")


def downgrade():
    with op.batch_alter_table('attachment_versions', schema=None) as batch_op:
        for column in ('text_extracted_at', 'text_error', 'text_method', 'extracted_text', 'text_status'):
            batch_op.drop_column(column)
    with op.batch_alter_table('index_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_index_outbox_indexed_at'))
        batch_op.drop_index(batch_op.f('ix_index_outbox_dossier_id'))
    op.drop_table('index_outbox')
