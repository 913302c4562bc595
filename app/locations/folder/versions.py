"""A folder's trash as a list of versions, for the trash view and for restoring.

Reads ``.filesync/trash/<UTC stamp>/<path>`` without following links, with each stamp folder's
note (:func:`~app.locations.folder.trash.read_notes`) saying why and when each version went
there. A version trashed before notes existed is still listed: its time is its folder's stamp
and its reason a guess, ``overwritten`` if a file is at its path now, else ``deleted``.
"""

from __future__ import annotations

import contextlib
import os
import stat as stat_mod
from pathlib import Path
from typing import BinaryIO

from app.errors import FileSyncError
from app.locations.base import Location, TrashedVersion, VersionStore
from app.locations.folder.trash import (
    DELETED,
    NOTE_NAME,
    OVERWRITTEN,
    TrashNote,
    read_notes,
    stamp_seconds,
)


class FolderVersions(VersionStore):
    """The trash of one folder location; ``files`` is a private instance of that folder."""

    def __init__(self, files: Location, trash: Path, trash_rel: str) -> None:
        self.files = files
        self._trash = trash
        self._trash_rel = trash_rel

    def trashed(self) -> list[TrashedVersion]:
        """Every regular file in the trash; links and a trash that is a link are skipped."""
        if self._trash.is_symlink() or self._trash.parent.is_symlink() or not self._trash.is_dir():
            return []
        found: list[TrashedVersion] = []
        notes: dict[str, dict[str, TrashNote]] = {}
        top = str(self._trash)
        for dirpath, _dirs, names, dir_fd in os.fwalk(top):
            rel_dir = os.path.relpath(dirpath, top)
            if rel_dir == ".":
                continue  # only stamp folders belong at the top
            stamp, _, inner = rel_dir.partition(os.sep)
            seconds = stamp_seconds(stamp)
            if seconds is None:
                continue
            if not inner:
                notes[stamp] = read_notes(dir_fd)
            for name in names:
                if not inner and name == NOTE_NAME:
                    continue
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
                if not stat_mod.S_ISREG(st.st_mode):
                    continue
                entry = f"{inner}/{name}" if inner else name
                note = notes.get(stamp, {}).get(entry)
                found.append(self._version(stamp, entry, st, note, seconds))
        return found

    def _version(
        self, stamp: str, entry: str, st: os.stat_result, note: TrashNote | None, seconds: int
    ) -> TrashedVersion:
        if note is not None:
            path, reason, at_ns = note.path, note.reason, note.at_ns
        else:  # trashed before notes were kept
            path, at_ns = entry, seconds * 1_000_000_000
            reason = OVERWRITTEN if self._exists(path) else DELETED
        return TrashedVersion(f"{stamp}/{entry}", path, st.st_size, st.st_mtime_ns, at_ns, reason)

    def _exists(self, path: str) -> bool:
        try:
            return self.files.stat(path) is not None
        except (FileSyncError, OSError):  # an unreadable name only makes the guess "deleted"
            return False

    def open_trashed(self, entry: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Open a trashed version through the folder's link-refusing reads."""
        return self.files.open_read(f"{self._trash_rel}/{entry}")
