"""Repair commands: find and remove blobs no row refers to, and check the blobs rows point at."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select

from ..blobs import BlobCorrupted, BlobNotFound, BlobStore
from ..blobs.base import copy_blob
from ..models import AttachmentVersion

# A blob younger than this may belong to an upload whose row is not committed yet.
GRACE_SECONDS = 3600


def unreferenced_blobs(session, blobs: BlobStore, grace_seconds: int = GRACE_SECONDS) -> list[str]:
    """Return the stored blobs that no attachment version refers to and that are past the grace period."""
    referenced = set(referenced_hashes(session))
    cutoff = time.time() - grace_seconds
    return [sha256 for sha256 in blobs.iter_hashes()
            if sha256 not in referenced and blobs.modified_at(sha256) <= cutoff]


def missing_or_corrupt_blobs(session, blobs: BlobStore) -> tuple[list[str], list[str]]:
    """Return (missing, corrupt): referenced blobs that are absent or whose content fails its hash."""
    missing, corrupt = [], []
    for sha256 in referenced_hashes(session):
        if not blobs.exists(sha256):
            missing.append(sha256)
        elif not blobs.verify(sha256):
            corrupt.append(sha256)
    return missing, corrupt


@dataclass
class Migration:
    """What copying the blobs to another store did: copied and checked, already there, missing at the source."""

    copied: int = 0
    present: int = 0
    missing: list[str] = field(default_factory=list)


def referenced_hashes(session) -> list[str]:
    """Return the sha256 of every blob an attachment version refers to, sorted."""
    return sorted(set(session.scalars(select(AttachmentVersion.sha256).distinct())))


def migrate_blobs(session, source: BlobStore, target: BlobStore, progress=lambda done: None) -> Migration:
    """Copy every referenced blob target lacks, re-reading each from target to check it; safe to run again."""
    result = Migration()
    for sha256 in referenced_hashes(session):
        try:
            if copy_blob(source, target, sha256):
                if not target.verify(sha256):
                    target.delete(sha256)
                    raise BlobCorrupted(sha256)
                result.copied += 1
            else:
                result.present += 1
        except BlobNotFound:
            result.missing.append(sha256)
        progress(1)
    return result
