"""Append-only tables refuse TRUNCATE too on PostgreSQL (row triggers never see it).

Revision ID: 0013
Revises: 0012
"""
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# The audit log and the credit file: both append-only (migrations 0005 and 0007).
GUARDED = ("audit_events", "credit_records")


def upgrade():
    # SQLite has no TRUNCATE: its "DELETE FROM t" meets the row triggers already there.
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE FUNCTION refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME; END $$")
    for table in GUARDED:
        # A statement trigger: it fires for a table emptied by another's TRUNCATE … CASCADE as well.
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate()")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in GUARDED:
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    op.execute("DROP FUNCTION refuse_truncate()")
