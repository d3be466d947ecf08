"""Whoosh's file storage with the index files read through mmap: in place, and shared by every reader."""
from __future__ import annotations

import mmap
from pathlib import Path

from whoosh.filedb.filestore import FileStorage
from whoosh.filedb.structfile import StructFile


class MappedFileStorage(FileStorage):
    """FileStorage whose files are read from a read-only memory map instead of a buffered file."""

    def open_file(self, name, **kwargs):
        """Open the file as a StructFile over a memory map of it (a plain file if it is empty)."""
        # Measured with bench/search.py: a search reads thousands of posting blocks, and each read
        # through a buffered file is a seek and a system call; from the map it is a copy in memory.
        # (Whoosh's own mmap use, for compound files, copies each file into a BytesIO on opening.)
        with open(self._fpath(name), "rb") as file:
            try:
                mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            except (ValueError, OSError):  # an empty file, or a file system that cannot map files
                return super().open_file(name, **kwargs)
        return StructFile(mapped, name=name, **kwargs)


def open_index(folder: Path):
    """Open the Whoosh index in folder."""
    return MappedFileStorage(str(folder)).open_index()


def create_index(folder: Path, schema):
    """Create an empty Whoosh index of schema in folder."""
    return MappedFileStorage(str(folder)).create_index(schema)
