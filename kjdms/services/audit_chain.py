"""The audit log as a hash chain: each row carries the SHA-256 of its content and of the previous row's hash.

Writers take the chain head's row lock (an UPDATE of audit_chain_head) before reading it, and keep it to
their commit: on PostgreSQL a second writer waits there and then reads the first one's committed head, so
the chain never forks; on SQLite the UPDATE takes the database's write lock, which serializes writers
anyway. The row's actor_id is left out of the hash: the foreign key sets it to NULL when an account is
deleted (a purge), the one change the triggers allow; actor_label, which is hashed, still names the actor.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import bindparam, event, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..models import AuditChainHead, AuditEvent, utcnow

GENESIS = "0" * 64
HASHED = ("occurred_at", "actor_label", "action", "object_type", "object_id", "detail")
APPEND_ONLY_MESSAGE = "audit events are append-only"
PAGE = 1000


class AuditAppendOnlyError(Exception):
    """Someone tried to change or delete an audit event."""

    def __init__(self):
        super().__init__(APPEND_ONLY_MESSAGE)


def _moment(value: datetime) -> str:
    # SQLite gives naive datetimes back, PostgreSQL aware ones: both hash as the same UTC instant.
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def row_hash(sequence: int, previous_hash: str, row: dict) -> str:
    """Return the SHA-256 of a row's hashed content, its position and the previous row's hash."""
    content = [sequence, previous_hash, *(_moment(row[name]) if name == "occurred_at" else row[name]
                                          for name in HASHED)]
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# Built once: every audit row runs both, and a statement built afresh costs more Python than its round trip.
# One statement locks and reads: on PostgreSQL an UPDATE that waited for a concurrent writer re-reads the
# row that writer committed, and RETURNING hands back that row; on SQLite it takes the write lock.
LOCK_HEAD = (update(AuditChainHead).where(AuditChainHead.id == 1).values(sequence=AuditChainHead.sequence)
             .returning(AuditChainHead.sequence, AuditChainHead.row_hash))
MOVE_HEAD = (update(AuditChainHead).where(AuditChainHead.id == 1)
             .values(sequence=bindparam("new_sequence"), row_hash=bindparam("new_hash")))
# The head read inside another statement's RETURNING, for SQLite: a writing statement holds the database's write lock,
# which keeps the head as read until the commit, as LOCK_HEAD would (remember_locked_head keeps it for place()).
HEAD_READ = (select(AuditChainHead.sequence).where(AuditChainHead.id == 1).scalar_subquery(),
             select(AuditChainHead.row_hash).where(AuditChainHead.id == 1).scalar_subquery())
# The head as another statement of the transaction locked and read it (remember_locked_head), for its next place().
LOCKED_HEAD = "kjdms_audit_locked_head"


def lock_head_after(first):
    """Return LOCK_HEAD as a part of a data-modifying WITH that locks the head only once its part first has run and
    returned a row: the rows first locks stay locked before the head, as when LOCK_HEAD runs after it."""
    # An uncorrelated EXISTS is a one-time filter: PostgreSQL runs it, and so first, before it scans for the head.
    return LOCK_HEAD.where(exists(select(first.c[0]))).cte("locked_head")


def remember_locked_head(connection, sequence: int, row_hash: str) -> None:
    """Keep the head a statement of connection's transaction locked and read (lock_head_after) for its next place()."""
    connection.info[LOCKED_HEAD] = (connection.get_transaction(), (sequence, row_hash))


def _locked_head(connection) -> tuple[int, str]:
    """Lock the chain head until commit and return (sequence, hash) of the newest row."""
    head = connection.execute(LOCK_HEAD).first()
    if head is None:
        # The head row is missing (a fresh table, or emptied): create it from the newest row, once.
        last = connection.execute(select(AuditEvent.sequence, AuditEvent.row_hash)
                                  .order_by(AuditEvent.sequence.desc()).limit(1)).first()
        insert = postgres_insert if connection.dialect.name == "postgresql" else sqlite_insert
        connection.execute(insert(AuditChainHead).values(id=1, sequence=last[0] if last else 0,
                                                         row_hash=last[1] if last else GENESIS)
                           .on_conflict_do_nothing(index_elements=["id"]))
        head = connection.execute(LOCK_HEAD).one()
    return tuple(head)


def link(connection, rows: list[dict]) -> None:
    """Give each new audit row (a dict of its columns) its place and hashes, and move the head past them."""
    if rows:
        connection.execute(MOVE_HEAD, place(connection, rows))


def place(connection, rows: list[dict]) -> dict:
    """Give each new audit row its place and hashes under the locked head; return MOVE_HEAD's parameters.

    The caller runs MOVE_HEAD with them in the same transaction (services/audit.py merges it into the insert).
    """
    # A head remembered in this transaction is used once, by the placement right after its statement; any other
    # placement (a later one, another transaction on this connection) locks and reads it again.
    transaction, head = connection.info.pop(LOCKED_HEAD, (None, None))
    if head is None or transaction is not connection.get_transaction():
        head = _locked_head(connection)
    sequence, previous = head
    for row in rows:
        # Column defaults apply only at INSERT, after the hash: fill them in here.
        row["occurred_at"] = row.get("occurred_at") or utcnow()
        row["detail"] = row.get("detail") or {}
        row.setdefault("object_id", None)
        sequence += 1
        row.update(sequence=sequence, previous_hash=previous, row_hash=row_hash(sequence, previous, row))
        previous = row["row_hash"]
    return {"new_sequence": sequence, "new_hash": previous}


@event.listens_for(AuditEvent, "before_insert")
def _chain(mapper, connection, target):
    # A mapper event, not a session hook: every session writing an audit event links it, whichever it is.
    row = {name: getattr(target, name) for name in HASHED}
    link(connection, [row])
    for name, value in row.items():
        setattr(target, name, value)


@event.listens_for(AuditEvent, "before_update")
def _refuse_update(mapper, connection, target):
    raise AuditAppendOnlyError()


@event.listens_for(AuditEvent, "before_delete")
def _refuse_delete(mapper, connection, target):
    raise AuditAppendOnlyError()


@dataclass(frozen=True)
class Anchor:
    """A point of the chain to keep elsewhere: a rewrite of the whole chain cannot match it."""

    sequence: int
    row_hash: str

    def __str__(self):
        return f"{self.sequence}:{self.row_hash}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """Read "sequence:hash" as printed by kjdms audit anchor."""
        sequence, _, digest = text.strip().partition(":")
        if not sequence.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"锚点：“{text}”应为 序号:64位十六进制散列")
        return cls(int(sequence), digest)


def anchor(session) -> Anchor:
    """Return the newest row's place and hash."""
    last = session.execute(select(AuditEvent.sequence, AuditEvent.row_hash)
                           .order_by(AuditEvent.sequence.desc()).limit(1)).first()
    return Anchor(*last) if last else Anchor(0, GENESIS)


def _rows(session) -> Iterator[AuditEvent]:
    """Yield every audit row in chain order, a page at a time (bounded memory on any length)."""
    after = None
    while True:
        query = select(AuditEvent).order_by(AuditEvent.sequence).limit(PAGE)
        if after is not None:
            query = query.where(AuditEvent.sequence > after)
        page = session.scalars(query).all()
        for row in page:
            yield row
        if len(page) < PAGE:
            return
        after = page[-1].sequence
        session.expunge_all()


def verify(session, anchors: tuple[Anchor, ...] = ()) -> tuple[int, str | None]:
    """Walk the chain; return (rows checked, None) or the first problem as a Chinese sentence naming the row."""
    expected, previous, checked = 1, GENESIS, 0
    wanted = {anchor.sequence: anchor.row_hash for anchor in anchors if anchor.sequence}
    for row in _rows(session):
        name = f"第 {row.sequence} 条（id {row.id}）"
        if row.sequence != expected:
            return checked, f"{name}：应为第 {expected} 条，其前的记录被删除或顺序被改动"
        if row.previous_hash != previous:
            return checked, f"{name}：前一条的散列不符，记录被删除、插入或顺序被改动"
        if row.row_hash != row_hash(row.sequence, row.previous_hash, {name: getattr(row, name) for name in HASHED}):
            return checked, f"{name}：内容与散列不符，记录被改动"
        if row.sequence in wanted and wanted.pop(row.sequence) != row.row_hash:
            return checked, f"{name}：与锚点的散列不符，日志被整体改写"
        expected, previous, checked = expected + 1, row.row_hash, checked + 1
    if wanted:
        return checked, f"第 {min(wanted)} 条：锚点所指的记录不存在，日志被截短"
    head = session.execute(select(AuditChainHead.sequence, AuditChainHead.row_hash)).first()
    if head is not None and tuple(head) != (expected - 1, previous):
        return checked, f"第 {expected} 条起：链头记录第 {head[0]} 条，末尾的记录被删除"
    return checked, None
