"""The server's request log: one line a request, without the query string (it can carry names and ID numbers)."""
from __future__ import annotations

import logging
import time

log = logging.getLogger("kjdms.requests")


class RequestLog:
    """WSGI middleware writing address, method, path, status, size and time of each request to the log."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.monotonic()
        answer = {}

        def recording_start_response(status, headers, exc_info=None):
            answer["status"] = status.split(" ", 1)[0]
            answer["size"] = next((value for name, value in headers if name.lower() == "content-length"), "-")
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, recording_start_response)
        finally:
            # The path only: search words, ID numbers and sealed queries live in the query string.
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            log.info("%s %s %s %s %s %.0fms", environ.get("REMOTE_ADDR", "-"), environ.get("REQUEST_METHOD", "-"),
                     path, answer.get("status", "-"), answer.get("size", "-"), (time.monotonic() - started) * 1000)
