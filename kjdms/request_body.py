"""Parse the files of a request straight into the blob store's staging, or into memory: never a second copy."""
from __future__ import annotations

import io
from typing import IO

from flask import Request

from .backends import get_blob_store
from .services.attachments import SNIFF_BYTES


class StagedUploadRequest(Request):
    """Flask's request, with each uploaded file within MAX_CONTENT_LENGTH parsed into the store's staging or memory.

    Werkzeug spills a file over 500 KB to a temporary file on disk, which a 2.5 MB scan then pays for with a write
    and a read before the blob store hashes it. A local store stages the part instead: hashed and written to the
    file the store renames into place, its first bytes kept for sniffing, so the upload is read once. Other stores
    get it in memory: the body is at most the upload cap plus the form (waitress and Flask refuse longer ones
    before parsing), so each request holds at most that much.
    """

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        cap = self.max_content_length
        if cap is not None and total_content_length is not None and total_content_length <= cap:
            stage = getattr(get_blob_store(), "stage", None)
            if stage is None:
                return io.BytesIO()
            staged = stage(SNIFF_BYTES)
            # Kept here too: a body that breaks off inside a part (no closing boundary, too many parts) makes
            # werkzeug drop its parts without ever handing them to request.files, whose files close() removes.
            self.__dict__.setdefault("_staged_files", []).append(staged)
            return staged
        return super()._get_file_stream(total_content_length, content_type, filename, content_length)

    def close(self) -> None:
        """Close the request's files, and remove every staged file no store installed, parsed whole or not."""
        try:
            super().close()
        finally:
            for staged in self.__dict__.pop("_staged_files", ()):
                staged.close()
