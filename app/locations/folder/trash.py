"""What a folder's trash keeps, and how big it may grow (issue 9: slow writers, trash floods).

The trash (``.filesync/trash/<UTC stamp>/<path>``) exists so that an automatic decision can be
undone: every version the engine overwrites or deletes in a folder goes there first, except a
*fresh copy* that a newer version replaces: a version the engine itself wrote at that path less
than :data:`FRESH_COPY_SECONDS` ago and that nobody changed since (same size, mtime, inode and
ctime). Such a copy came from another location, where its user replaced it; it was only a
passing state (a partial of a file still being written, a save superseded at once), so keeping
it would only fill the disk. A fresh copy that is *deleted* is kept: its user may have deleted
the original by hand (which no trash sees) a minute after saving it, and then this copy is the
only version left to restore. Every version a user made or touched, and every copy older than
that, goes to the trash too.

Each stamp folder also holds a note, ``.filesync`` (a name no synced file can have there),
with one JSON line per version: its name in the folder, its path, why it was trashed
(``deleted`` or ``overwritten``) and when, for the trash view. Versions trashed before notes
existed have none and are still listed (see :mod:`app.locations.folder.versions`).

The trash is also capped (``max_bytes``): when a new entry takes it over the cap, the entries
trashed longest ago are deleted until it is under three quarters of the cap. The newest entry
is always kept, even alone over the cap, so the last decision can always be undone.

``json``, ``calendar`` and ``shutil`` load when a note is written or read or the trash has
entries to prune: a start over folders with an empty trash uses none of them (2-3 ms).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import NamedTuple

from app.locations.base import META_DIR, FileMeta

#: A copy the engine wrote less than this long ago, unchanged since, is not kept when replaced.
FRESH_COPY_SECONDS = 600.0
#: Default cap of one folder's trash.
DEFAULT_TRASH_MAX_BYTES = 1 << 30
#: Why a version went to the trash.
DELETED = "deleted"
OVERWRITTEN = "overwritten"
#: The note in each stamp folder (a synced path never starts with ``.filesync``).
NOTE_NAME = META_DIR
#: The name format of the stamp folders (UTC).
STAMP_FORMAT = "%Y%m%d-%H%M%S"


class TrashNote(NamedTuple):
    """What the note says about one trashed version."""

    path: str
    reason: str
    at_ns: int


def note_trashed(stamp_fd: int, entry: str, path: str, reason: str) -> None:
    """Append why and when ``path`` went to the trash as ``entry`` to the stamp folder's note.

    Best effort: a note that cannot be written only makes the trash view guess the reason.
    """
    import json

    line = json.dumps({"entry": entry, "path": path, "reason": reason, "at": time.time_ns()})
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(OSError):
        fd = os.open(NOTE_NAME, flags, 0o644, dir_fd=stamp_fd)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
        finally:
            os.close(fd)


def read_notes(stamp_fd: int) -> dict[str, TrashNote]:
    """The notes of one stamp folder by entry name; lines that do not parse are skipped."""
    import json

    try:
        fd = os.open(NOTE_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stamp_fd)
    except OSError:
        return {}
    with os.fdopen(fd, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    notes: dict[str, TrashNote] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
            note = TrashNote(str(record["path"]), str(record["reason"]), int(record["at"]))
            notes[str(record["entry"])] = note
        except (ValueError, KeyError, TypeError):
            continue
    return notes


def stamp_seconds(name: str) -> int | None:
    """The UTC time a stamp folder's name stands for; None for any other name."""
    import calendar

    try:
        return calendar.timegm(time.strptime(name, STAMP_FORMAT))
    except ValueError:
        return None


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
        self._forget_stale(now)

    def wrote_group(self, copies: list[tuple[str, FileMeta]]) -> None:
        """:meth:`wrote` for each of ``copies``, renamed into place together."""
        now = time.monotonic()
        fresh = self._fresh
        for path, meta in copies:
            fresh.pop(path, None)
            fresh[path] = (meta, now)
        self._forget_stale(now)

    def _forget_stale(self, now: float) -> None:
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
            stamp = stamp_seconds(entry.name)
            if stamp is not None and stamp < cutoff:
                import shutil

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
                if name == NOTE_NAME and os.path.dirname(dirpath) == str(self.trash):
                    continue  # a stamp folder's note, not a version
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
