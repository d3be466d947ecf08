"""Back up a whole instance as of one instant (database rows, the blobs they refer to, the keys) and check a backup.

A backup folder holds every snapshot made into it:

    blobs/                       content-addressed, shared by the snapshots: a later backup copies only new blobs
    snapshots/<instant>/         one per backup, named by its instant (UTC), e.g. 20261206T031500Z
        tables/<table>.jsonl.gz  the rows of one table: a header with the column names, then one JSON array a row
        blobs.txt                the sha256 of every blob the database referred to at the instant, sorted
        keys.json | keys.enc     the secret key, the ID-hash key and the package-signing key
        manifest.json (+ .sha256, .sig)   counts, the sha256 of every file, the schema revision; signed
    snapshots/.partial-<instant>/        a backup under way; the next run resumes it

The rows are read in one read-only transaction (a snapshot on PostgreSQL and on SQLite's WAL), so the backup is
consistent while the site keeps writing. One row format serves both databases (and moves an instance from SQLite
to PostgreSQL); restoring it is services/restore.py.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator

import sqlalchemy as sa

from ..blobs import BlobCorrupted, BlobNotFound, BlobStore
from ..blobs.base import copy_blob
from ..blobs.local import LocalBlobStore
from ..search.postgres_index import INDEX_TABLES
from . import archive, audit
from .archive import owner_only
from .backup_keys import KEYS_FILE, SEALED_KEYS_FILE, seal_keys
from .transaction import read_snapshot

FORMAT = "kjdms-backup"
FORMAT_VERSION = 1
MANIFEST = archive.MANIFEST
BLOB_LIST = "blobs.txt"
TABLES = "tables"
# Written by the migrations rather than kept as rows: the snapshot records the revision instead.
# The search index's tables (KJDMS_SEARCH=postgres) are derived data: a restore rebuilds the index.
SKIPPED_TABLES = {"alembic_version", *INDEX_TABLES}
STATE = "state.json"
ROWS_PER_FETCH = 2000

Progress = Callable[[str, int, int | None], None]


class BackupRefused(RuntimeError):
    """The backup cannot be made or read as asked; the message says why in Chinese."""


@dataclass
class Keys:
    """The secrets an instance cannot rebuild: without them sessions, tombstones and signatures are lost."""

    secret_key: str
    id_hash_key: str
    package_signing_key: str  # PEM

    def as_json(self) -> bytes:
        """Return the keys as the JSON document kept in a snapshot."""
        return (json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n").encode("ascii")


@dataclass
class BackupResult:
    """What a backup wrote: its snapshot folder, the rows per table, the blobs (all and newly copied)."""

    snapshot: Path
    instant: datetime
    counts: dict[str, int]
    blobs: int
    blobs_copied: int
    resumed: bool = False


def snapshots_dir(destination: Path) -> Path:
    """Return the folder of destination's snapshots."""
    return destination / "snapshots"


def blob_store(destination: Path) -> LocalBlobStore:
    """Return the content-addressed blob folder of a backup destination."""
    return LocalBlobStore(destination / "blobs")


def _prepare_destination(destination: Path) -> None:
    """Create destination owner-only, refusing a folder others can read: a backup holds keys and personal data."""
    destination.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = destination.stat().st_mode
    if mode & 0o077:
        raise BackupRefused(f"备份目录 {destination} 可被其他用户访问（权限 {oct(mode & 0o777)}）：备份含密钥和个人信息，"
                            f"请先执行 chmod 700 {destination}，或换一个只有本账户可访问的目录")
    snapshots_dir(destination).mkdir(exist_ok=True, mode=0o700)


def _cell(value):
    """Return value as JSON can hold it; times become UTC ISO text (naive times are UTC in kjdms)."""
    if isinstance(value, datetime):
        return (value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, memoryview)):
        raise BackupRefused("数据库中有二进制列，本备份格式不支持")
    return value


def _table_rows(connection, table: sa.Table) -> Iterator[list]:
    """Yield table's rows in primary-key order, a fetch at a time."""
    order = list(table.primary_key.columns) or list(table.columns)
    result = connection.execution_options(stream_results=True, yield_per=ROWS_PER_FETCH).execute(
        sa.select(table).order_by(*order))
    for row in result:
        yield [_cell(value) for value in row]


def _write_table(connection, table: sa.Table, folder: Path) -> int:
    """Write table's rows to folder/<name>.jsonl.gz; return how many."""
    rows = 0
    with owner_only(folder / f"{table.name}.jsonl.gz") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as target:
        target.write(_line([column.name for column in table.columns]))
        for row in _table_rows(connection, table):
            target.write(_line(row))
            rows += 1
    return rows


def _line(value) -> bytes:
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _write_blob_list(connection, folder: Path) -> int:
    """Write the sorted sha256 of every blob the snapshot's attachment versions refer to; return how many."""
    count = 0
    with owner_only(folder / BLOB_LIST) as target:
        for (sha256,) in connection.execute(sa.text(
                "SELECT DISTINCT sha256 FROM attachment_versions ORDER BY sha256")).yield_per(ROWS_PER_FETCH):
            target.write(f"{sha256}\n".encode("ascii"))
            count += 1
    return count


def read_blob_list(snapshot: Path) -> Iterator[str]:
    """Yield the sha256 listed in a snapshot's blobs.txt."""
    with open(snapshot / BLOB_LIST, encoding="ascii") as lines:
        for line in lines:
            if line.strip():
                yield line.strip()


def listed_blobs(snapshot: Path, total: int | None, progress: Progress) -> Iterator[str]:
    """Yield the sha256 listed in a snapshot, reporting progress every fifty."""
    done = 0
    for done, sha256 in enumerate(read_blob_list(snapshot)):
        if done % 50 == 0:
            progress("文件", done, total)
        yield sha256
    progress("文件", total if total is not None else done, total)


def _dump_database(engine, folder: Path, progress: Progress) -> dict:
    """Write every table of the database as of one instant into folder; return the state to resume from."""
    (folder / TABLES).mkdir(exist_ok=True, mode=0o700)
    with read_snapshot(engine) as connection:
        instant = datetime.now(timezone.utc).replace(microsecond=0)
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        metadata = sa.MetaData()
        metadata.reflect(connection)
        tables = [table for table in metadata.sorted_tables if table.name not in SKIPPED_TABLES]
        counts = {}
        for done, table in enumerate(tables):
            progress("数据表", done, len(tables))
            counts[table.name] = _write_table(connection, table, folder / TABLES)
        blobs = _write_blob_list(connection, folder)
    progress("数据表", len(tables), len(tables))
    return {"instant": instant.isoformat(), "schema_revision": revision, "dialect": engine.dialect.name,
            "counts": counts, "blobs": blobs, "database_done": True}


def _copy_blobs(source: BlobStore, target: LocalBlobStore, snapshot: Path, total: int, progress: Progress) -> int:
    """Copy every listed blob the target lacks, checking each against its name; return how many were copied."""
    copied, missing = 0, []
    for sha256 in listed_blobs(snapshot, total, progress):
        try:
            copied += copy_blob(source, target, sha256)
        except BlobNotFound:
            missing.append(sha256)
        except BlobCorrupted:
            raise BackupRefused(f"文件存储中的 {sha256} 已损坏：请先运行 kjdms blobs verify") from None
    if missing:
        raise BackupRefused(f"备份时间点之后，{len(missing)} 个文件已从文件存储删除（逾期清除或清理），例如 {missing[0]}；"
                            "本次备份已作废，请重新运行 kjdms backup create，将取新的时间点")
    return copied


def _write_manifest(folder: Path, state: dict, keys_file: str, signing_key) -> dict:
    """Write the manifest of every file in folder, its checksum and its signature."""
    files = [archive.file_entry(folder, path) for path in sorted((folder / TABLES).iterdir())]
    files += [archive.file_entry(folder, folder / name) for name in (BLOB_LIST, keys_file)]
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "instant": state["instant"],
                "schema_revision": state["schema_revision"], "dialect": state["dialect"], "counts": state["counts"],
                "blobs": state["blobs"], "keys": keys_file, "files": files}
    archive.write_folder_manifest(folder, manifest, signing_key)
    return manifest


def _snapshot_name(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _partial_snapshot(destination: Path) -> Path | None:
    """Return the backup under way in destination whose database part is complete, removing any other."""
    found = None
    for partial in sorted(snapshots_dir(destination).glob(".partial-*")):
        state = _read_state(partial)
        if state and state.get("database_done") and found is None:
            found = partial
        else:
            shutil.rmtree(partial)  # its rows were not all written: nothing of it can be used
    return found


def _read_state(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STATE).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _write_state(folder: Path, state: dict) -> None:
    partial = folder / f".{STATE}.new"
    with owner_only(partial) as target:
        target.write(json.dumps(state).encode("utf-8"))
    os.replace(partial, folder / STATE)


def create_backup(engine, session, source: BlobStore, destination: Path, keys: Keys, signing_key, *,
                  passphrase: str | None = None, actor=None, progress: Progress = lambda label, done, total: None
                  ) -> BackupResult:
    """Back up the instance into destination, resuming a backup that was interrupted after its database part.

    The caller commits session (the audit row of the backup).
    """
    destination = Path(destination)
    _prepare_destination(destination)
    folder = _partial_snapshot(destination)
    resumed = folder is not None
    if folder is None:
        folder = snapshots_dir(destination) / f".partial-{os.getpid()}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
        folder.mkdir(mode=0o700)
        _write_state(folder, {"database_done": False})
        state = _dump_database(engine, folder, progress)
        _write_state(folder, state)
    else:
        state = _read_state(folder)
    try:
        copied = _copy_blobs(source, blob_store(destination), folder, state["blobs"], progress)
    except BackupRefused:
        shutil.rmtree(folder)
        raise
    keys_file = KEYS_FILE if passphrase is None else SEALED_KEYS_FILE
    with owner_only(folder / keys_file) as target:
        target.write(keys.as_json() if passphrase is None else seal_keys(keys.as_json(), passphrase))
    _write_manifest(folder, state, keys_file, signing_key)
    (folder / STATE).unlink()
    instant = datetime.fromisoformat(state["instant"])
    final = snapshots_dir(destination) / _snapshot_name(instant)
    if final.exists():
        raise BackupRefused(f"{final} 已存在：同一秒内不能做两次备份，请稍后再运行")
    os.rename(folder, final)
    _fsync_dir(snapshots_dir(destination))
    audit.record(session, actor, "backup.create", "instance", None, snapshot=final.name, destination=str(destination),
                 counts=state["counts"], blobs=state["blobs"], blobs_copied=copied, keys_sealed=passphrase is not None)
    return BackupResult(final, instant, state["counts"], state["blobs"], copied, resumed)


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def list_snapshots(destination: Path) -> list[Path]:
    """Return destination's complete snapshots, oldest first."""
    folder = snapshots_dir(Path(destination))
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def find_snapshot(destination: Path, name: str | None = None) -> Path:
    """Return the named snapshot of destination, or its newest."""
    snapshots = list_snapshots(destination)
    if name is not None:
        match = [path for path in snapshots if path.name == name]
        if not match:
            raise BackupRefused(f"{destination} 中没有备份 {name}（有：{'、'.join(p.name for p in snapshots) or '无'}）")
        return match[0]
    if not snapshots:
        raise BackupRefused(f"{destination} 中没有完整的备份")
    return snapshots[-1]


@dataclass
class BackupCheck:
    """What verifying a snapshot found: the package check of its files, and the blobs missing or altered."""

    snapshot: Path
    files: archive.Verification
    blobs_checked: int = 0
    missing_blobs: list[str] = field(default_factory=list)
    corrupt_blobs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Tell whether every file and every blob matched."""
        return self.files.ok and not (self.missing_blobs or self.corrupt_blobs)

    def problems(self) -> list[str]:
        """Return every problem as a Chinese line naming the file."""
        found = [*self.files.problems]
        found += [f"缺少 {path}" for path in self.files.missing]
        found += [f"已改动 {path}" for path in self.files.different]
        found += [f"多出 {path}" for path in self.files.extra]
        store = blob_store(self.snapshot.parent.parent)
        found += [f"缺少文件 {store.path_for(sha)}" for sha in self.missing_blobs]
        found += [f"文件已损坏 {store.path_for(sha)}" for sha in self.corrupt_blobs]
        return found


def verify_backup(destination: Path, name: str | None = None, trusted_keys: list[str] | None = None,
                  progress: Progress = lambda label, done, total: None) -> BackupCheck:
    """Check a snapshot's manifest, signature and files, and re-hash every blob it lists, without restoring."""
    snapshot = find_snapshot(Path(destination), name)
    check = BackupCheck(snapshot, archive.verify_package(snapshot, trusted_keys))
    if BLOB_LIST in check.files.different or BLOB_LIST in check.files.missing:
        return check  # the list itself cannot be trusted to name the blobs
    store = blob_store(Path(destination))
    for sha256 in listed_blobs(snapshot, read_manifest(snapshot).get("blobs"), progress):
        if not store.exists(sha256):
            check.missing_blobs.append(sha256)
        elif not store.verify(sha256):
            check.corrupt_blobs.append(sha256)
        check.blobs_checked += 1
    return check


def read_manifest(snapshot: Path) -> dict:
    """Return a snapshot's manifest, refusing one that is not a kjdms backup of this format."""
    try:
        manifest = json.loads((snapshot / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        raise BackupRefused(f"{snapshot / MANIFEST} 无法读取") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupRefused(f"{snapshot} 不是本版本 kjdms 的备份")
    return manifest

