"""Restore a backup (services/backup.py) into an empty instance: keys, rows, blobs; resumable after a crash."""
from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from ..blobs import BlobCorrupted, BlobNotFound, BlobStore
from ..blobs.base import copy_blob
from ..config import read_or_create_file
from . import archive
from .backup import (SKIPPED_TABLES, TABLES, BackupRefused, Keys, Progress, blob_store, listed_blobs,
                     read_manifest)
from .backup_keys import KEYS_FILE, open_keys

MARKER = "restore-in-progress.json"
ROWS_PER_INSERT = 1000


@dataclass
class RestorePlan:
    """A restore under way: which snapshot, and the steps already done (kept in the storage folder)."""

    marker: Path
    snapshot: Path
    done: list[str] = field(default_factory=list)

    def save(self) -> None:
        """Write the plan beside the instance, whole or not at all."""
        partial = self.marker.with_name(f".{self.marker.name}.new")
        partial.write_text(json.dumps({"snapshot": str(self.snapshot), "done": self.done}), "utf-8")
        os.replace(partial, self.marker)

    def finish(self, step: str) -> None:
        """Record step as done."""
        self.done.append(step)
        self.save()


def start_restore(storage_dir: Path, snapshot: Path, engine, blobs: BlobStore, signing_key_file: Path) -> RestorePlan:
    """Return the plan to restore snapshot, resuming one under way; refuse to overwrite a live instance."""
    marker = Path(storage_dir) / MARKER
    if marker.exists():
        recorded = json.loads(marker.read_text("utf-8"))
        if Path(recorded["snapshot"]) != snapshot:
            raise BackupRefused(f"正在恢复另一个备份（{recorded['snapshot']}）：请继续那一次恢复，或清空实例后重来")
        return RestorePlan(marker, snapshot, recorded["done"])
    tables = sa.inspect(engine).get_table_names()
    if tables:
        raise BackupRefused(f"数据库不是空的（有 {len(tables)} 张表）：恢复只写入空数据库，不会覆盖正在使用的实例")
    if next(iter(blobs.iter_hashes()), None) is not None:
        raise BackupRefused("文件存储不是空的：恢复只写入空的实例，不会覆盖正在使用的实例")
    if signing_key_file.exists():
        raise BackupRefused(f"{signing_key_file} 已存在：这是一个用过的实例，恢复不会覆盖它的签名密钥")
    check = archive.verify_package(snapshot)
    if not check.ok:
        problems = [*check.problems, *check.missing, *check.different, *check.extra]
        raise BackupRefused(f"备份 {snapshot.name} 未通过核验（{'；'.join(problems)}）：请先运行 kjdms backup verify")
    plan = RestorePlan(marker, snapshot)
    plan.save()
    return plan


def read_keys(snapshot: Path, passphrase: str | None) -> Keys:
    """Return the keys kept in snapshot, opening them with passphrase if they were sealed."""
    manifest = read_manifest(snapshot)
    body = (snapshot / manifest["keys"]).read_bytes()
    return Keys(**json.loads(body if manifest["keys"] == KEYS_FILE else open_keys(body, passphrase)))


def _replace_file(path: Path, contents: bytes) -> None:
    """Write contents to path owner-only, replacing what is there in one step."""
    partial = path.with_name(f".{path.name}.restore")
    partial.unlink(missing_ok=True)
    read_or_create_file(partial, lambda: contents)
    os.replace(partial, path)


def put_keys(keys: Keys, storage_dir: Path, signing_key_file: Path) -> None:
    """Put the backup's keys where the instance reads them (its own were made on first start and never used)."""
    _replace_file(Path(storage_dir) / "secret_key", (keys.secret_key + "\n").encode("ascii"))
    _replace_file(Path(storage_dir) / "id_hash_key", (keys.id_hash_key + "\n").encode("ascii"))
    signing_key_file.parent.mkdir(parents=True, exist_ok=True)
    _replace_file(signing_key_file, keys.package_signing_key.encode("ascii"))


def _converter(column_type):
    """Return the function that turns a stored cell back into what the column takes."""
    if isinstance(column_type, sa.DateTime):
        return lambda value: None if value is None else datetime.fromisoformat(value).astimezone(timezone.utc)
    if isinstance(column_type, sa.Date):
        return lambda value: None if value is None else date.fromisoformat(value)
    return lambda value: value


def _stored_rows(path: Path) -> tuple[list[str], Iterator[list]]:
    handle = gzip.open(path, "rt", encoding="utf-8")
    columns = json.loads(handle.readline())

    def rows():
        with handle:
            for line in handle:
                yield json.loads(line)
    return columns, rows()


def _load_table(connection, table: sa.Table, path: Path) -> int:
    """Insert the stored rows of table in key order; return how many.

    A row that points at a later row of its own table (a region moved under one created after it) is
    inserted without that link, which is set once the table is complete.
    """
    columns, rows = _stored_rows(path)
    unknown = set(columns) - set(table.columns.keys())
    if unknown:
        raise BackupRefused(f"表 {table.name} 没有列 {'、'.join(sorted(unknown))}：备份与数据库结构版本不符")
    convert = [_converter(table.columns[name].type) for name in columns]
    primary = [column.name for column in table.primary_key.columns]
    key = primary[0] if len(primary) == 1 else None
    self_links = [fk.parent.name for fk in table.foreign_keys if fk.column.table.name == table.name] if key else []
    later_links, batch, count = [], [], 0
    for stored in rows:
        row = {name: to_column(value) for name, to_column, value in zip(columns, convert, stored)}
        for name in self_links:
            if row[name] is not None and row[name] >= row[key]:
                later_links.append((row[key], name, row[name]))
                row[name] = None
        batch.append(row)
        count += 1
        if len(batch) == ROWS_PER_INSERT:
            connection.execute(table.insert(), batch)
            batch = []
    if batch:
        connection.execute(table.insert(), batch)
    for row_key, name, value in later_links:
        connection.execute(table.update().where(table.c[key] == row_key).values({name: value}))
    return count


def _reset_sequence(connection, table: sa.Table) -> None:
    """Let PostgreSQL's id sequence continue after the restored rows (SQLite's follows the largest id by itself)."""
    if connection.dialect.name != "postgresql" or len(table.primary_key.columns) != 1:
        return
    column = next(iter(table.primary_key.columns))
    sequence = connection.execute(sa.select(sa.func.pg_get_serial_sequence(table.name, column.name))).scalar()
    if sequence:
        connection.execute(sa.text(f'SELECT setval(:sequence, COALESCE(MAX("{column.name}"), 1), '
                                   f'MAX("{column.name}") IS NOT NULL) FROM "{table.name}"'), {"sequence": sequence})


def load_database(engine, snapshot: Path, progress: Progress = lambda label, done, total: None) -> dict[str, int]:
    """Insert every stored row into the freshly migrated, empty schema in one transaction; return rows per table."""
    expected = read_manifest(snapshot)["counts"]
    metadata = sa.MetaData()
    with engine.begin() as connection:
        metadata.reflect(connection)
        tables = [table for table in metadata.sorted_tables if table.name not in SKIPPED_TABLES]
        missing = set(expected) - {table.name for table in tables}
        if missing:
            raise BackupRefused(f"数据库结构中没有表 {'、'.join(sorted(missing))}：备份与数据库结构版本不符")
        counts = {}
        for done, table in enumerate(tables):
            progress("数据表", done, len(tables))
            path = snapshot / TABLES / f"{table.name}.jsonl.gz"
            if not path.exists():
                raise BackupRefused(f"备份中缺少表 {table.name} 的数据")
            # The migrations seed a few rows (the audit chain's head); the backup holds the real ones.
            if connection.execute(sa.select(sa.func.count()).select_from(table)).scalar():
                connection.execute(table.delete())
            counts[table.name] = _load_table(connection, table, path)
            _reset_sequence(connection, table)
        progress("数据表", len(tables), len(tables))
        different = {name: (counts.get(name), rows) for name, rows in expected.items() if counts.get(name) != rows}
        if different:
            raise BackupRefused(f"恢复的行数与清单不符：{different}")
    return counts


def restore_blobs(destination: Path, snapshot: Path, target: BlobStore,
                  progress: Progress = lambda label, done, total: None) -> int:
    """Copy every blob the snapshot lists into target, checking each against its name; return how many."""
    source, copied = blob_store(destination), 0
    for sha256 in listed_blobs(snapshot, read_manifest(snapshot)["blobs"], progress):
        try:
            copied += copy_blob(source, target, sha256)
        except BlobNotFound:
            raise BackupRefused(f"备份中缺少文件 {source.path_for(sha256)}") from None
        except BlobCorrupted:
            raise BackupRefused(f"备份中的文件已损坏：{source.path_for(sha256)}") from None
    return copied


@dataclass
class RestoredCheck:
    """The checks a restore ends with: blobs, search index, audit chain, and the purges a restore undoes."""

    missing_blobs: list[str]
    corrupt_blobs: list[str]
    index: object
    audit_rows: int
    audit_problem: str | None
    expired: list

    @property
    def ok(self) -> bool:
        """Tell whether the restored instance is sound."""
        return not (self.missing_blobs or self.corrupt_blobs or self.audit_problem) and self.index.ok


def check_restored(session, blobs: BlobStore, index, id_hash_key: str, confirmation_deadline: date) -> RestoredCheck:
    """Run blobs verify, index check and audit verify, and list the dossiers the deadline purge would remove now.

    Those are the persons purged after the backup's instant (or still to purge): a restore brings them back.
    """
    from . import audit_chain
    from .deadline_purge import expired_dossiers
    from .maintenance import missing_or_corrupt_blobs
    from .reindex import check_index

    missing, corrupt = missing_or_corrupt_blobs(session, blobs)
    index_check = check_index(session, index, id_hash_key)
    rows, problem = audit_chain.verify(session)
    return RestoredCheck(missing, corrupt, index_check, rows, problem,
                         expired_dossiers(session, confirmation_deadline))
