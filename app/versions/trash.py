"""Listing the trash of every location that keeps one, and restoring from it.

A restored version is written back through its location's own guarded write (a temp file
renamed into place, links never followed, nothing replaced), on a private instance of that
location: to the engine it is a new file like one a user made, so it syncs everywhere. It never
overwrites: if its path holds another file, it lands beside it as
``name.restored-YYYYMMDD-HHMMSS.ext`` (UTC). Restoring a version that is already at its path
again changes nothing, so "undo" can be pressed twice.
"""

from __future__ import annotations

import itertools
import posixpath
import time
from collections.abc import Iterator, Sequence

from app.errors import FileChanged, FileSyncError, UnknownVersion
from app.locations.base import FileMeta, Location, VersionStore
from app.versions.items import NS, RestoreResult, TrashItem, version_id

DELETED = "deleted"
#: How many ``.restored-…`` names are tried before giving up (several restores in a second).
_MAX_NAMES = 50


def stores(
    locations: Sequence[Location], location: str | None = None
) -> Iterator[tuple[str, VersionStore]]:
    """(key, store) of each location that keeps versions (only ``location``'s, if given)."""
    for loc in locations:
        if location is not None and loc.key != location:
            continue
        store = loc.version_store()
        if store is not None:
            yield loc.key, store


def _items(
    locations: Sequence[Location], location: str | None = None
) -> Iterator[tuple[TrashItem, VersionStore]]:
    for key, store in stores(locations, location):
        for v in store.trashed():
            item = TrashItem(
                id=version_id(key, v.entry),
                location=key,
                path=v.path,
                size=v.size,
                mtime=v.mtime_ns / NS,
                trashed_at=v.trashed_at_ns / NS,
                reason=v.reason,
                entry=v.entry,
                mtime_ns=v.mtime_ns,
            )
            yield item, store


def list_trash(
    locations: Sequence[Location],
    *,
    location: str | None = None,
    since: float | None = None,
    until: float | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[TrashItem], int]:
    """One page of trashed versions, most recently trashed first, and how many match in all.

    ``location`` (a key) keeps one location's; ``since`` and ``until`` (seconds since the
    epoch, both inclusive) bound when they were trashed.
    """
    items = [
        item
        for item, _ in _items(locations, location)
        if (since is None or item.trashed_at >= since)
        and (until is None or item.trashed_at <= until)
    ]
    items.sort(key=lambda i: (-i.trashed_at, i.location, i.path))
    start = max(offset, 0)
    return items[start : start + max(limit, 0)], len(items)


def restore(locations: Sequence[Location], id: str) -> RestoreResult:
    """Put the trashed version ``id`` back in its location (see the module docstring).

    Raises :class:`UnknownVersion` for an id no trash holds (any more), and the location's
    own error if it cannot be written (unavailable, a folder in the way).
    """
    for item, store in _items(locations):
        if item.id == id:
            return _restore(item, store)
    raise UnknownVersion(f"no version in the trash has the id {id!r} (pruned or mistyped?)")


def restore_window(
    locations: Sequence[Location],
    since: float,
    until: float,
    location: str | None = None,
) -> list[RestoreResult]:
    """Restore every file deleted between ``since`` and ``until`` ("undo the last 10 minutes").

    For each path only its most recently trashed deleted version is restored (the same
    deletion is usually in the trash of every folder it reached). One that cannot be restored
    is returned with its ``error``; the others are still restored.
    """
    newest: dict[str, tuple[TrashItem, VersionStore]] = {}
    for item, store in _items(locations, location):
        if item.reason != DELETED or not since <= item.trashed_at <= until:
            continue
        known = newest.get(item.path)
        if known is None or item.trashed_at > known[0].trashed_at:
            newest[item.path] = (item, store)
    results = []
    for path in sorted(newest):
        item, store = newest[path]
        try:
            results.append(_restore(item, store))
        except FileSyncError as exc:
            results.append(RestoreResult(item.location, item.path, error=str(exc)))
    return results


def _restore(item: TrashItem, store: VersionStore) -> RestoreResult:
    files = store.files
    files.check_available()
    current = files.stat(item.path)
    if current is not None and current.same_version(FileMeta(item.size, item.mtime_ns)):
        return RestoreResult(item.location, item.path)  # already back
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    names = itertools.chain(
        [item.path], (restored_name(item.path, stamp, n) for n in range(1, _MAX_NAMES))
    )
    for target in names:
        if files.stat(target) is not None:
            continue
        try:
            with store.open_trashed(item.entry) as source:
                files.guarded_write(target, source, item.mtime_ns, expected=None)
        except FileChanged:
            continue  # a file appeared there meanwhile: never overwrite it
        return RestoreResult(item.location, target)
    raise FileSyncError(
        "no free name to restore to: rename or remove the .restored- copies",
        location=files.name,
        path=item.path,
    )


def restored_name(path: str, stamp: str, attempt: int = 1) -> str:
    """``name.restored-STAMP.ext`` beside ``path`` (``-2``, ``-3``… for further attempts)."""
    folder, base = posixpath.split(path)
    stem, ext = posixpath.splitext(base)
    if not stem:  # a dot-file such as ".bashrc"
        stem, ext = base, ""
    suffix = f".restored-{stamp}" + (f"-{attempt}" if attempt > 1 else "")
    name = stem + suffix + ext
    return posixpath.join(folder, name) if folder else name
