"""Audit log append-only and hash-chained: sequence and hashes on each row, the chain head, triggers.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

APPEND_ONLY = "audit events are append-only"
# Every column but actor_id, which the foreign key sets to NULL when an account is deleted.
KEPT = ("id", "occurred_at", "actor_label", "action", "object_type", "object_id", "detail", "sequence",
        "previous_hash", "row_hash")


def upgrade():
    from kjdms.services.audit_chain import GENESIS, row_hash

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sequence', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('previous_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('row_hash', sa.String(length=64), nullable=True))
    op.create_table(
        'audit_chain_head',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
        sa.Column('row_hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head')),
    )
    # Chain the rows written before, in the order they were written.
    events = sa.table('audit_events', sa.column('id', sa.Integer), sa.column('occurred_at', sa.DateTime(timezone=True)),
                      sa.column('actor_label', sa.String), sa.column('action', sa.String),
                      sa.column('object_type', sa.String), sa.column('object_id', sa.Integer),
                      sa.column('detail', sa.JSON), sa.column('sequence', sa.Integer),
                      sa.column('previous_hash', sa.String), sa.column('row_hash', sa.String))
    connection, sequence, previous = op.get_bind(), 0, GENESIS
    for row in connection.execute(sa.select(events).order_by(events.c.id)).mappings().all():
        sequence += 1
        digest = row_hash(sequence, previous, dict(row, detail=row["detail"] or {}))
        connection.execute(events.update().where(events.c.id == row["id"]).values(
            sequence=sequence, previous_hash=previous, row_hash=digest, detail=row["detail"] or {}))
        previous = digest
    connection.execute(sa.text("INSERT INTO audit_chain_head (id, sequence, row_hash) VALUES (1, :s, :h)"),
                       {"s": sequence, "h": previous})
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('sequence', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('previous_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('row_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_events_sequence'), ['sequence'])
    # The SQL half of append-only (the ORM refuses in services/audit_chain.py).
    if connection.dialect.name == "sqlite":
        unchanged = " AND ".join(f"NEW.{name} IS OLD.{name}" for name in KEPT)
        op.execute("CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
                   f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")
        op.execute("CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
                   f"WHEN NOT (NEW.actor_id IS NULL AND {unchanged}) "
                   f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END")
    else:
        op.execute("CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL "
                   "AND to_jsonb(NEW) - 'actor_id' = to_jsonb(OLD) - 'actor_id' THEN RETURN NEW; END IF; "
                   f"RAISE EXCEPTION '{APPEND_ONLY}'; END $$")
        op.execute("CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
                   "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_events_no_delete")
        op.execute("DROP TRIGGER audit_events_no_update")
    else:
        op.execute("DROP TRIGGER audit_events_no_change ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_table('audit_chain_head')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_audit_events_sequence'), type_='unique')
        batch_op.drop_column('row_hash')
        batch_op.drop_column('previous_hash')
        batch_op.drop_column('sequence')
