"""Parse the files of a request into memory: its body is capped before it is read, so a temporary file buys nothing."""
from __future__ import annotations

import io
from typing import IO

from flask import Request


class InMemoryUploadRequest(Request):
    """Flask's request, with each uploaded file parsed into memory when the body is within MAX_CONTENT_LENGTH.

    Werkzeug spills a file over 500 KB to a temporary file on disk, which a 2.5 MB scan then pays for with a write
    and a read before the blob store hashes it. The body is at most the upload cap plus the form (waitress and Flask
    refuse longer ones before parsing), so each request holds at most that much in memory.
    """

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        cap = self.max_content_length
        if cap is not None and total_content_length is not None and total_content_length <= cap:
            return io.BytesIO()
        return super()._get_file_stream(total_content_length, content_type, filename, content_length)
