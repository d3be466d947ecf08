"""The base of an incremental report: the previous report's fingerprints on disk, asked a batch at a time.

A report of 500,000 persons leaves as many fingerprints (ID number → sha256 of the person's line); held as a Python
dict they take about 100 MB. They go instead into a scratch SQLite file in the report's staging folder, whose page
cache is bounded; the diff asks it one batch of ID numbers at a time, and it lists the persons never asked about, in
ID-number order, for removed.jsonl.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Iterator

CACHE_KIB = 16 * 1024  # the most the scratch file keeps in memory


class PreviousReport:
    """The persons of a previous report (its state.jsonl) with the sha256 of each one's line."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def digests(self, id_numbers: list[str]) -> dict[str, str]:
        """Return the previous sha256 of those of id_numbers it holds, and remember they are reported still."""
        if not id_numbers:
            return {}
        marks = ",".join("?" * len(id_numbers))
        found = dict(self.connection.execute(
            f"SELECT id_number, sha256 FROM base WHERE id_number IN ({marks})", id_numbers))
        if found:
            self.connection.execute(f"UPDATE base SET seen = 1 WHERE id_number IN ({','.join('?' * len(found))})",
                                    list(found))
        return found

    def unseen(self, size: int) -> Iterator[list[str]]:
        """Yield the ID numbers never asked about, in order, size at a time."""
        cursor = self.connection.execute("SELECT id_number FROM base WHERE seen = 0 ORDER BY id_number")
        while rows := cursor.fetchmany(size):
            yield [id_number for id_number, in rows]


@contextmanager
def previous_report(state_file: Path, scratch: Path, batch: int) -> Iterator[PreviousReport]:
    """Yield the previous report whose state.jsonl is state_file, kept in the scratch file (removed afterwards) and
    read into it batch lines at a time."""
    connection = sqlite3.connect(scratch, isolation_level=None)
    try:
        # Scratch data: a crash loses nothing that the state file does not hold.
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{CACHE_KIB}", "temp_store=FILE"):
            connection.execute(f"PRAGMA {pragma}")
        connection.execute("CREATE TABLE base (id_number TEXT PRIMARY KEY, sha256 TEXT NOT NULL, "
                           "seen INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID")
        connection.execute("BEGIN")
        with open(state_file, encoding="utf-8") as lines:
            while chunk := list(islice(lines, batch)):
                # A later line for the same person wins, as it did when the base was read into a dict.
                connection.executemany("INSERT OR REPLACE INTO base (id_number, sha256) VALUES (?, ?)",
                                       [(entry["id_number"], entry["sha256"]) for entry in map(json.loads, chunk)])
        connection.execute("COMMIT")
        yield PreviousReport(connection)
    finally:
        connection.close()
        scratch.unlink(missing_ok=True)
