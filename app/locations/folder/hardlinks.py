"""Which names in one folder location are hard links to the same file.

FileSync syncs every name as a file of its own (as rsync does without ``-H``), but two things
depend on knowing the other names of a file: the OS reports a change made through one name
under that name only, although every name now holds the new content; and whatever happens to
one name (FileSync's own trash link, rename or delete) changes the file's ctime, which the
folder's content tag includes, so the other names look edited. The folder's watcher therefore
reports a change of one name as a change of all its names, and the engine re-reads them all.

Only files with more than one link are remembered, as the last scan and later stats saw them; a
link made while FileSync runs becomes known when one of its names is stat'ed or rescanned.
"""

from __future__ import annotations

import os
import stat as stat_mod
import threading

FileId = tuple[int, int]


class HardLinkNames:
    """The names of each multiply-linked file (by device and inode); thread-safe."""

    def __init__(self) -> None:
        self._file_of: dict[str, FileId] = {}
        self._names: dict[FileId, set[str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def file_id(st: os.stat_result) -> FileId | None:
        """The identity to remember for ``st``: None for a file with a single name."""
        if stat_mod.S_ISREG(st.st_mode) and st.st_nlink > 1:
            return (st.st_dev, st.st_ino)
        return None

    def replace(self, prefix: str, found: dict[str, FileId]) -> None:
        """A scan of ``prefix`` (``""``: everything) found exactly these linked files there."""
        with self._lock:
            inside = prefix + "/"
            gone = [p for p in self._file_of if not prefix or p == prefix or p.startswith(inside)]
            for path in gone:
                self._drop(path)
            for path, file_id in found.items():
                self._add(path, file_id)

    def saw(self, path: str, st: os.stat_result | None) -> None:
        """A stat of ``path`` returned ``st`` (None: nothing there)."""
        file_id = self.file_id(st) if st is not None else None
        with self._lock:
            if self._file_of.get(path) == file_id:
                return
            self._drop(path)
            if file_id is not None:
                self._add(path, file_id)

    def others(self, path: str) -> frozenset[str]:
        """The other known names of the file at ``path``."""
        with self._lock:
            file_id = self._file_of.get(path)
            if file_id is None:
                return frozenset()
            return frozenset(self._names[file_id] - {path})

    def _add(self, path: str, file_id: FileId) -> None:
        self._file_of[path] = file_id
        self._names.setdefault(file_id, set()).add(path)

    def _drop(self, path: str) -> None:
        file_id = self._file_of.pop(path, None)
        if file_id is None:
            return
        names = self._names[file_id]
        names.discard(path)
        if not names:
            del self._names[file_id]
