"""Keep blobs in a dict, as a fast fake blob store for tests."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from typing import BinaryIO, Iterator

from kjdms.blobs.base import BlobCorrupted, BlobInfo, BlobNotFound, read_chunks, validate_sha256


class InMemoryBlobStore:
    """Blobs held in process memory and lost when the process ends."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._modified: dict[str, float] = {}
        self._lock = threading.Lock()

    def put(self, data: bytes | BinaryIO) -> BlobInfo:
        """Store data under its sha256; created is False if it was already stored."""
        if isinstance(data, (bytes, bytearray)):
            content = bytes(data)
        else:
            content = b"".join(read_chunks(data))
        sha256 = hashlib.sha256(content).hexdigest()
        with self._lock:
            created = sha256 not in self._blobs
            self._blobs.setdefault(sha256, content)
            # Restart the garbage collector's grace period, as LocalBlobStore does.
            self._modified[sha256] = time.time()
        return BlobInfo(sha256, len(content), created)

    def open(self, sha256: str, verify: bool = False) -> BinaryIO:
        """Return a binary stream of the blob, rehashing it first when verify is set."""
        return io.BytesIO(self.read(sha256, verify=verify))

    def read(self, sha256: str, verify: bool = True) -> bytes:
        """Return the blob's bytes, raising BlobCorrupted if they no longer match."""
        content = self._content(sha256)
        if verify and hashlib.sha256(content).hexdigest() != sha256:
            raise BlobCorrupted(sha256)
        return content

    def exists(self, sha256: str) -> bool:
        """Tell whether a blob is stored under sha256."""
        return validate_sha256(sha256) in self._blobs

    def delete(self, sha256: str) -> bool:
        """Remove the blob and tell whether it was there."""
        validate_sha256(sha256)
        with self._lock:
            self._modified.pop(sha256, None)
            return self._blobs.pop(sha256, None) is not None

    def iter_hashes(self) -> Iterator[str]:
        """Yield the sha256 of every stored blob."""
        # A snapshot, so callers may delete while iterating.
        with self._lock:
            hashes = list(self._blobs)
        return iter(hashes)

    def verify(self, sha256: str) -> bool:
        """Rehash the stored blob and tell whether it still matches sha256."""
        return hashlib.sha256(self._content(sha256)).hexdigest() == sha256

    def size(self, sha256: str) -> int:
        """Return the blob's size in bytes."""
        return len(self._content(sha256))

    def modified_at(self, sha256: str) -> float:
        """Return when the blob was last stored or re-stored, as unix time."""
        try:
            return self._modified[validate_sha256(sha256)]
        except KeyError:
            raise BlobNotFound(sha256) from None

    def _content(self, sha256: str) -> bytes:
        try:
            return self._blobs[validate_sha256(sha256)]
        except KeyError:
            raise BlobNotFound(sha256) from None
