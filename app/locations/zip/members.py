"""Which members of an archive's central directory are files FileSync lists.

The central directory names every member; only regular files with safe, non-internal names
are synced (folders, Unix symlinks and zip-slip names are kept untouched on rewrite but never
listed). The checks are memoized by name, so re-reading a large unchanged directory after
another program's edit does not repeat them.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Sequence

from app.errors import UnsafePath
from app.locations.base import Listing, check_relpath, is_internal
from app.locations.names import ZIP_NAMES
from app.locations.zip.format import Entry
from app.locations.zip.staging import meta_of
from app.messages import shown

log = logging.getLogger(__name__)

_UNIX = 3  # 'version made by' host system whose external attributes hold st_mode


class Members:
    """The listable members of the last directory read: by name, and as a listing."""

    def __init__(self, archive: str) -> None:
        self.archive = archive
        self.by_name: dict[str, Entry] = {}
        self.listing: Listing = {}
        self._listable: dict[str, bool] = {}  # name checks, memoized across re-reads

    def read(self, entries: Sequence[Entry]) -> None:
        """Take the safe file names of a directory just read (the last duplicate wins)."""
        by_name: dict[str, Entry] = {}
        listable = self._listable
        if len(listable) > 2 * len(entries) + 10_000:
            listable.clear()  # names come and go; do not grow without bound
        for entry in entries:
            name = entry.name
            ok = listable.get(name)
            if ok is None:
                ok = listable[name] = self._is_listable(entry)
            if ok:
                by_name[name] = entry
        self.by_name = by_name
        self.listing = {name: meta_of(e) for name, e in by_name.items()}

    def _is_listable(self, entry: Entry) -> bool:
        """A regular file with a safe, non-internal name; unsafe names are logged once.

        Unix symlinks (``zip -y``) are skipped like a folder skips them: their content is
        the link target, which must not become a regular file elsewhere.
        """
        if entry.is_dir:
            return False
        kind = stat.S_IFMT(entry.ext_attr >> 16) if entry.made_by >> 8 == _UNIX else 0
        if kind not in (0, stat.S_IFREG):
            if kind != stat.S_IFDIR:
                log.warning("%s: skipping %s (not a regular file)", self.archive, shown(entry.name))
            return False
        try:
            check_relpath(entry.name)
        except UnsafePath:
            log.warning("%s: refusing unsafe member name %r", self.archive, entry.name)
            return False
        return not is_internal(entry.name)


def check_new_name(path: str, archive: str) -> None:
    """Refuse to create a member under a name the archive cannot hold (see ZIP_NAMES)."""
    check_relpath(path)
    why = ZIP_NAMES.refusal(path)
    if why is not None:
        raise UnsafePath(f"cannot hold the name {path!r}: {why}", location=archive)
    if is_internal(path):
        raise UnsafePath(f"{path!r} is a FileSync internal name", location=archive)
