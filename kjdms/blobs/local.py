"""Store blobs as read-only files under a root folder, fanned out by hash prefix."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from kjdms.blobs.base import BlobCorrupted, BlobInfo, BlobNotFound, read_chunks, validate_sha256
from kjdms.blobs.staging import StagedBlob

TEMPORARY_PREFIX = ".tmp-"

# Owner read-only: blobs never change once written, and documents stay private like mkstemp's 0o600.
_BLOB_MODE = 0o400


class LocalBlobStore:
    """Blobs on local disk at root/ab/cd/abcd..., written atomically and durably."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        """Return the path where the blob named sha256 is, or would be, stored."""
        sha256 = validate_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes | BinaryIO) -> BlobInfo:
        """Store data under its sha256; created is False if it was already stored."""
        if isinstance(data, (bytes, bytearray)):
            final = self.path_for(hashlib.sha256(data).hexdigest())
            if _refresh(final):
                return BlobInfo(final.name, len(data), created=False)
            new_folders = self._make_folders(final.parent)
            temporary, sha256, size = _write_temporary(final.parent, [data])
        elif isinstance(data, StagedBlob) and data.folder == self.root:
            return self._install_staged(data)
        else:
            # A stream's hash is known only at its end, so stage it in the root: the root
            # shares a file system with every fan-out folder, which keeps the rename atomic.
            new_folders = []
            temporary, sha256, size = _write_temporary(self.root, read_chunks(data))
        return self._install(temporary, sha256, size, new_folders)

    def stage(self, head_bytes: int) -> StagedBlob:
        """Return a temporary file in the root to write a blob into as it arrives; put installs it without rereading."""
        # The root, like a stream's staging: it shares a file system with every fan-out folder.
        return StagedBlob(self.root, TEMPORARY_PREFIX, head_bytes)

    def _install_staged(self, staged: StagedBlob) -> BlobInfo:
        if staged.installed:
            return BlobInfo(staged.sha256, staged.size, created=False)
        temporary = staged.finish()
        staged.installed = True  # From here the file is renamed into place or removed by _install.
        try:
            os.chmod(temporary, _BLOB_MODE)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return self._install(temporary, staged.sha256, staged.size, [])

    def open(self, sha256: str, verify: bool = False) -> BinaryIO:
        """Return a binary stream of the blob, rehashing it first when verify is set."""
        path = self.path_for(sha256)
        try:
            file = path.open("rb")
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None
        if verify:
            try:
                if not _matches(file, sha256):
                    raise BlobCorrupted(sha256)
                file.seek(0)
            except BaseException:
                file.close()
                raise
        return file

    def read(self, sha256: str, verify: bool = True) -> bytes:
        """Return the blob's bytes, raising BlobCorrupted if they no longer match."""
        with self.open(sha256) as file:
            data = file.read()
        if verify and hashlib.sha256(data).hexdigest() != sha256:
            raise BlobCorrupted(sha256)
        return data

    def exists(self, sha256: str) -> bool:
        """Tell whether a blob is stored under sha256."""
        return self.path_for(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        """Remove the blob and tell whether it was there."""
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            return False  # Never stored, or a concurrent delete won the race.
        return True

    def iter_hashes(self) -> Iterator[str]:
        """Yield the sha256 of every stored blob, skipping temporary and stray files."""
        for path in self.root.glob("*/*/*"):
            if _is_blob_path(path):
                yield path.name

    def verify(self, sha256: str) -> bool:
        """Rehash the stored blob and tell whether it still matches sha256."""
        with self.open(sha256) as file:
            return _matches(file, sha256)

    def size(self, sha256: str) -> int:
        """Return the blob's size in bytes."""
        return self._stat(sha256).st_size

    def modified_at(self, sha256: str) -> float:
        """Return when the blob was last stored or re-stored, as unix time."""
        return self._stat(sha256).st_mtime

    def remove_stale_temporary_files(self, older_than_seconds: float = 3600) -> int:
        """Delete temporary files that interrupted writes left behind; return how many."""
        # Every write refreshes a file's mtime, so a slow but live upload never looks stale.
        cutoff = time.time() - older_than_seconds
        removed = 0
        for pattern in (f"{TEMPORARY_PREFIX}*", f"*/*/{TEMPORARY_PREFIX}*"):
            for path in self.root.glob(pattern):
                try:
                    if path.stat().st_mtime <= cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue  # Its writer finished or another cleaner got there first.
        return removed

    def _install(self, temporary: Path, sha256: str, size: int, new_folders: list[Path]) -> BlobInfo:
        final = self.path_for(sha256)
        try:
            if _refresh(final):
                temporary.unlink()
                return BlobInfo(sha256, size, created=False)
            # Synced only once it is known to be new (a stream's duplicate is dropped unsynced), and
            # before the rename: a name must never show bytes a power cut could still take away.
            _fsync(temporary)
            new_folders = new_folders + self._make_folders(final.parent)
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        # The new entries, innermost first: the blob's name, then each folder made for it in its parent. All are
        # synced before put returns (and so before any row names the blob); syncing them together after the rename
        # rather than one by one as each folder is made lets a journaling file system commit them at once.
        for folder in [final.parent, *(path.parent for path in reversed(new_folders))]:
            _fsync(folder)
        return BlobInfo(sha256, size, created=True)

    def _make_folders(self, folder: Path) -> list[Path]:
        """Make folder and its parent where missing; return the folders made (their parents' entries want a sync)."""
        made = []
        for path in (folder.parent, folder):
            try:
                path.mkdir()
            except FileExistsError:
                continue
            made.append(path)
        return made

    def _stat(self, sha256: str) -> os.stat_result:
        try:
            return self.path_for(sha256).stat()
        except FileNotFoundError:
            raise BlobNotFound(sha256) from None


def _write_temporary(folder: Path, chunks: Iterable[bytes]) -> tuple[Path, str, int]:
    descriptor, name = tempfile.mkstemp(dir=folder, prefix=TEMPORARY_PREFIX)
    temporary = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(descriptor, "wb") as file:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                file.write(chunk)
        os.chmod(temporary, _BLOB_MODE)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary, digest.hexdigest(), size


def _refresh(final: Path) -> bool:
    # Touch an existing blob: a re-upload is about to gain a reference, so the garbage
    # collector's grace period must restart or it could delete the blob from under it.
    try:
        os.utime(final)
    except FileNotFoundError:
        return False
    return True


def _matches(file: BinaryIO, sha256: str) -> bool:
    return hashlib.file_digest(file, "sha256").hexdigest() == sha256


def _is_blob_path(path: Path) -> bool:
    try:
        name = validate_sha256(path.name)
    except ValueError:
        return False
    return path.parent.name == name[2:4] and path.parent.parent.name == name[:2]


def _fsync(path: Path) -> None:
    """Flush a file's content, or a folder's entries, to disk."""
    if os.name == "nt" and path.is_dir():
        return  # Windows cannot open a folder to fsync it; NTFS journals renames itself.
    # Read-only suffices for fsync, and a blob is already owner read-only when it is synced.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
