"""A blob staged while it arrives: hashed, counted and written to the store's temporary file in one pass."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class StagedBlob:
    """A writable, then readable, temporary file in a store's root that knows its sha256, size and first bytes.

    Werkzeug's form parser writes an uploaded part into it as the body is read, so the upload is held once (on disk)
    and passed over once; LocalBlobStore.put installs it by a rename. Closed without being installed, it is removed.
    """

    def __init__(self, folder: Path, prefix: str, head_bytes: int) -> None:
        descriptor, name = tempfile.mkstemp(dir=folder, prefix=prefix)
        self.path, self.folder = Path(name), Path(folder)
        self._file = os.fdopen(descriptor, "w+b")
        self._digest, self._head_bytes = hashlib.sha256(), head_bytes
        self.head, self.size, self.installed = b"", 0, False

    def write(self, data: bytes) -> int:
        """Append data to the file, the hash and the size; keep it in head while head is short."""
        self._digest.update(data)
        self.size += len(data)
        if len(self.head) < self._head_bytes:
            self.head += data[:self._head_bytes - len(self.head)]
        return self._file.write(data)

    @property
    def sha256(self) -> str:
        """The hex sha256 of everything written so far."""
        return self._digest.hexdigest()

    def finish(self) -> Path:
        """Close the file for installing and return its path."""
        self._file.close()
        return self.path

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        """Close the file and, unless the store installed it, remove it."""
        self._file.close()
        if not self.installed:
            self.path.unlink(missing_ok=True)
