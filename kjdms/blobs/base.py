"""Define the blob store protocol, its errors and the helpers every store shares."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Protocol, runtime_checkable

CHUNK_SIZE = 1024 * 1024

_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


class BlobNotFound(KeyError):
    """No blob is stored under the given sha256."""

    def __init__(self, sha256: str) -> None:
        super().__init__(sha256)
        self.sha256 = sha256


class BlobCorrupted(Exception):
    """A stored blob no longer hashes to the sha256 it is stored under."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"blob {sha256} does not match its sha256")
        self.sha256 = sha256


@dataclass(frozen=True)
class BlobInfo:
    """The outcome of a put: the content's hash, its size, and whether it was new."""

    sha256: str
    size: int
    created: bool


def validate_sha256(value: object) -> str:
    """Return value if it is exactly 64 lower-case hex characters, else raise ValueError."""
    # fullmatch, not match with "$": "$" would also accept a trailing newline.
    if not isinstance(value, str) or not _SHA256_PATTERN.fullmatch(value):
        # Truncated because a hostile caller may send megabytes.
        raise ValueError(f"not a lower-case sha256 hex digest: {value!r:.80}")
    return value


def read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the stream's content in CHUNK_SIZE pieces until it is exhausted."""
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def copy_blob(source: "BlobStore", target: "BlobStore", sha256: str) -> bool:
    """Copy one blob into target unless it is there, checking it against its name; tell whether it was copied.

    Raises BlobNotFound if source lacks it and BlobCorrupted (leaving nothing in target) if its bytes changed.
    """
    if target.exists(sha256):
        return False  # content-addressed: the same name holds the same bytes, and a put is whole or absent
    with source.open(sha256) as stream:
        info = target.put(stream)
    if info.sha256 != sha256:
        target.delete(info.sha256)
        raise BlobCorrupted(sha256)
    return True


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed storage: every blob is named by the sha256 of its bytes."""

    def put(self, data: bytes | BinaryIO) -> BlobInfo:
        """Store data under its sha256; created is False if it was already stored."""
        ...

    def open(self, sha256: str, verify: bool = False) -> BinaryIO:
        """Return a binary stream of the blob, rehashing it first when verify is set."""
        ...

    def read(self, sha256: str, verify: bool = True) -> bytes:
        """Return the blob's bytes, raising BlobCorrupted if they no longer match."""
        ...

    def exists(self, sha256: str) -> bool:
        """Tell whether a blob is stored under sha256."""
        ...

    def delete(self, sha256: str) -> bool:
        """Remove the blob and tell whether it was there."""
        ...

    def iter_hashes(self) -> Iterator[str]:
        """Yield the sha256 of every stored blob."""
        ...

    def verify(self, sha256: str) -> bool:
        """Rehash the stored blob and tell whether it still matches sha256."""
        ...

    def size(self, sha256: str) -> int:
        """Return the blob's size in bytes."""
        ...

    def modified_at(self, sha256: str) -> float:
        """Return when the blob was last stored or re-stored, as unix time."""
        ...
