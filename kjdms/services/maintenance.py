"""Repair commands: find and remove blobs no row refers to, and check the blobs rows point at."""
from __future__ import annotations

import time

from sqlalchemy import select

from ..blobs import BlobStore
from ..models import AttachmentVersion

# A blob younger than this may belong to an upload whose row is not committed yet.
GRACE_SECONDS = 3600


def unreferenced_blobs(session, blobs: BlobStore, grace_seconds: int = GRACE_SECONDS) -> list[str]:
    """Return the stored blobs that no attachment version refers to and that are past the grace period."""
    referenced = set(session.scalars(select(AttachmentVersion.sha256).distinct()))
    cutoff = time.time() - grace_seconds
    return [sha256 for sha256 in blobs.iter_hashes()
            if sha256 not in referenced and blobs.modified_at(sha256) <= cutoff]


def missing_or_corrupt_blobs(session, blobs: BlobStore) -> tuple[list[str], list[str]]:
    """Return (missing, corrupt): referenced blobs that are absent or whose content fails its hash."""
    missing, corrupt = [], []
    for sha256 in sorted(set(session.scalars(select(AttachmentVersion.sha256).distinct()))):
        if not blobs.exists(sha256):
            missing.append(sha256)
        elif not blobs.verify(sha256):
            corrupt.append(sha256)
    return missing, corrupt
