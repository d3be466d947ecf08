"""Records lifecycle: append-only credit records, legacy import runs, dossier revisions, the time-rule dates.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

APPEND_ONLY = "credit records are append-only: record a correction or a revocation instead"


def upgrade():
    op.create_table(
        'credit_records',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('supersedes_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('finding', sa.Text(), nullable=False),
        sa.Column('legal_basis', sa.String(length=128), nullable=False),
        sa.Column('evidence', sa.JSON(), nullable=False),
        sa.Column('found_on', sa.Date(), nullable=False),
        sa.Column('office_region_id', sa.Integer(), nullable=False),
        sa.Column('recorded_by_id', sa.Integer(), nullable=True),
        sa.Column('recorded_by_label', sa.String(length=64), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('subject_name', sa.String(length=64), nullable=False),
        sa.Column('subject_id_hash', sa.String(length=64), nullable=False),
        sa.CheckConstraint("kind IN ('falsified_information', 'false_report', 'other')",
                           name=op.f('ck_credit_records_known_kind')),
        sa.CheckConstraint("action IN ('record', 'correct', 'revoke')", name=op.f('ck_credit_records_known_action')),
        sa.CheckConstraint("(action = 'record') = (supersedes_id IS NULL)",
                           name=op.f('ck_credit_records_changes_point_at_a_record')),
        sa.ForeignKeyConstraint(['office_region_id'], ['regions.id'],
                                name=op.f('fk_credit_records_office_region_id_regions')),
        sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_credit_records_person_id_persons')),
        sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_credit_records_recorded_by_id_users')),
        sa.ForeignKeyConstraint(['supersedes_id'], ['credit_records.id'],
                                name=op.f('fk_credit_records_supersedes_id_credit_records')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_records')),
    )
    with op.batch_alter_table('credit_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_records_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_records_supersedes_id'), ['supersedes_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_credit_records_subject_id_hash'), ['subject_id_hash'], unique=False)
    # The SQL half of append-only: whatever reaches the database past the ORM is refused too.
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER credit_records_no_{verb.lower()} BEFORE {verb} ON credit_records "
                       f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")
    else:
        op.execute("CREATE FUNCTION credit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$")
        op.execute("CREATE TRIGGER credit_records_no_change BEFORE UPDATE OR DELETE ON credit_records "
                   "FOR EACH ROW EXECUTE FUNCTION credit_records_append_only()")

    op.create_table(
        'legacy_imports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('file_sha256', sa.String(length=64), nullable=False),
        sa.Column('filename', sa.String(length=255), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('rows_total', sa.Integer(), nullable=False),
        sa.Column('last_row', sa.Integer(), nullable=False),
        sa.Column('imported', sa.Integer(), nullable=False),
        sa.Column('unchanged', sa.Integer(), nullable=False),
        sa.Column('refused', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_legacy_imports')),
    )
    with op.batch_alter_table('legacy_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legacy_imports_file_sha256'), ['file_sha256'], unique=False)

    op.create_table(
        'dossier_revisions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dossier_id', sa.Integer(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.Column('attachments', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['dossier_id'], ['dossiers.id'], ondelete='CASCADE',
                                name=op.f('fk_dossier_revisions_dossier_id_dossiers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dossier_revisions')),
    )
    with op.batch_alter_table('dossier_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dossier_revisions_dossier_id'), ['dossier_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dossier_revisions_recorded_at'), ['recorded_at'], unique=False)

    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('job_started_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('information_changed_on', sa.Date(), nullable=True))


def downgrade():
    with op.batch_alter_table('dossiers', schema=None) as batch_op:
        batch_op.drop_column('information_changed_on')
        batch_op.drop_column('job_started_on')
    op.drop_table('dossier_revisions')
    op.drop_table('legacy_imports')
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER credit_records_no_change ON credit_records")
        op.execute("DROP FUNCTION credit_records_append_only()")
    op.drop_table('credit_records')
