"""What a folder's trash keeps, and how big it may grow (issue 9: slow writers, trash floods).

The trash (``.filesync/trash/<UTC stamp>/<path>``) exists so that an automatic decision can be
undone: every version the engine overwrites or deletes in a folder goes there first, except a
*fresh copy*: a version the engine itself wrote at that path less than
:data:`FRESH_COPY_SECONDS` ago and that nobody changed since (same size, mtime, inode and
ctime). Such a copy came from another location, where its original lives or was replaced by
its user; it was only a passing state (a partial of a file still being written, a save
superseded at once), so keeping it would only fill the disk. Every version a user made or
touched in the folder, and every copy older than that, still goes to the trash.

The trash is also capped (``max_bytes``): when a new entry takes it over the cap, the entries
trashed longest ago are deleted until it is under three quarters of the cap. The newest entry
is always kept, even alone over the cap, so the last decision can always be undone.
"""

from __future__ import annotations

import calendar
import os
import shutil
import time
from pathlib import Path

from app.locations.base import FileMeta

#: A copy the engine wrote less than this long ago, unchanged since, is not kept in the trash.
FRESH_COPY_SECONDS = 600.0
#: Default cap of one folder's trash.
DEFAULT_TRASH_MAX_BYTES = 1 << 30


class TrashPolicy:
    """Remembers the engine's fresh copies in one folder and keeps its trash under a cap."""

    def __init__(self, trash: Path, max_bytes: int = DEFAULT_TRASH_MAX_BYTES) -> None:
        self.trash = trash
        self.max_bytes = max_bytes
        #: path -> (meta the engine's write left, monotonic time of that write); oldest first.
        self._fresh: dict[str, tuple[FileMeta, float]] = {}
        self._bytes: int | None = None  # trash size, counted lazily

    def wrote(self, path: str, meta: FileMeta, at: float | None = None) -> None:
        """The engine just wrote (or renamed) a copy at ``path`` that now reports ``meta``."""
        now = time.monotonic()
        self._fresh.pop(path, None)
        self._fresh[path] = (meta, now if at is None else at)
        while self._fresh:  # forget what is no longer fresh, oldest first
            oldest = next(iter(self._fresh))
            if now - self._fresh[oldest][1] < FRESH_COPY_SECONDS:
                break
            del self._fresh[oldest]

    def fresh_since(self, path: str, meta: FileMeta) -> float | None:
        """When the engine wrote ``path``, if the version there (``meta``) is still that fresh
        copy; None for any other version. Forgets the record either way: the version leaves."""
        record = self._fresh.pop(path, None)
        if record is None or record[0] != meta:
            return None
        if time.monotonic() - record[1] >= FRESH_COPY_SECONDS:
            return None
        return record[1]

    def prune(self, days: float) -> None:
        """Delete the trash folders stamped more than ``days`` ago."""
        if not self._real_folder():
            return
        cutoff = time.time() - days * 86400
        for entry in self.trash.iterdir():
            try:
                stamp = calendar.timegm(time.strptime(entry.name, "%Y%m%d-%H%M%S"))
            except ValueError:
                continue
            if stamp < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        self._bytes = None  # count again when next needed

    def kept(self, size: int) -> None:
        """A version of ``size`` bytes went to the trash: enforce the cap."""
        if self._bytes is None:
            self._bytes = sum(s for _, s, _ in self._entries())
        else:
            self._bytes += size
        if self._bytes > self.max_bytes:
            self._bytes = self._shrink(self.max_bytes * 3 // 4)

    def _real_folder(self) -> bool:
        """True when the trash is a real folder: pruning never deletes through a symbolic link
        (``.filesync`` or its ``trash`` made a link would point it at someone else's files)."""
        if self.trash.is_symlink() or self.trash.parent.is_symlink():
            return False
        return self.trash.is_dir()

    def _entries(self) -> list[tuple[int, int, str]]:
        """(ctime, size, full path) of every file in the trash; ctime is when it was trashed."""
        found: list[tuple[int, int, str]] = []
        if not self._real_folder():
            return found
        for dirpath, _dirs, files in os.walk(self.trash):
            for name in files:
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                found.append((st.st_ctime_ns, st.st_size, full))
        return found

    def _shrink(self, goal: int) -> int:
        """Delete the oldest entries (never the newest) until at most ``goal`` bytes remain."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, full in entries[:-1]:
            if total <= goal:
                break
            try:
                os.unlink(full)
            except OSError:
                continue
            total -= size
            _remove_empty_folders(Path(full).parent, self.trash)
        return total


def _remove_empty_folders(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
