"""Store document content keyed by its sha256, on local disk or in memory."""

from kjdms.blobs.base import BlobCorrupted, BlobInfo, BlobNotFound, BlobStore
from kjdms.blobs.local import LocalBlobStore
from kjdms.blobs.memory import InMemoryBlobStore

__all__ = [
    "BlobCorrupted",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "InMemoryBlobStore",
    "LocalBlobStore",
]
