"""Listing conflict copies and resolving them: keep the current version or the copy.

Both ways end with the copy deleted in one location that keeps versions (into its trash), a
delete the engine then makes everywhere. Keeping the copy first writes its content over the
current version there, through a guarded write that refuses if the current version changed
since it was looked at (the replaced version goes to the trash): a change in one location
against none elsewhere wins everywhere, whatever its time, so the copy becomes current.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from app.engine.conflicts import is_conflict_copy, original_path
from app.errors import FileChanged, FileSyncError, UnknownVersion
from app.locations.base import Location, VersionStore
from app.versions.items import NS, ConflictItem, version_id
from app.versions.trash import stores

log = logging.getLogger(__name__)

KEEP_CURRENT = "current"
KEEP_COPY = "copy"


def _conflicts_in(key: str, store: VersionStore) -> Iterator[ConflictItem]:
    try:
        listing = store.files.scan()
    except FileSyncError as exc:  # unavailable now: nothing to list there
        log.info("not listing conflicts in %s: %s", key, exc)
        return
    for copy, meta in listing.items():
        if not is_conflict_copy(copy):
            continue
        path = original_path(copy)
        current = listing.get(path)
        yield ConflictItem(
            id=version_id(key, copy),
            path=path,
            copy=copy,
            location=key,
            mtime=meta.mtime_ns / NS,
            size=meta.size,
            current_mtime=current.mtime_ns / NS if current else None,
            current_size=current.size if current else None,
        )


def list_conflicts(locations: Sequence[Location]) -> list[ConflictItem]:
    """Every conflict copy, once (as the first location keeping versions lists it), by path."""
    seen: set[str] = set()
    items = []
    for key, store in stores(locations):
        for item in _conflicts_in(key, store):
            if item.copy not in seen:
                seen.add(item.copy)
                items.append(item)
    items.sort(key=lambda i: (i.path, i.copy))
    return items


def resolve(locations: Sequence[Location], id: str, keep: str) -> None:
    """Resolve conflict ``id``: ``keep`` is ``"current"`` or ``"copy"`` (module docstring).

    Raises :class:`UnknownVersion` for an id no location lists (resolved already, or
    mistyped), :class:`FileChanged` if a version changed since it was listed, ValueError for
    another ``keep``.
    """
    if keep not in (KEEP_CURRENT, KEEP_COPY):
        raise ValueError(f"keep must be {KEEP_CURRENT!r} or {KEEP_COPY!r}, not {keep!r}")
    for key, store in stores(locations):
        for item in _conflicts_in(key, store):
            if item.id == id:
                _resolve(item, store, keep)
                return
    raise UnknownVersion(f"no conflict copy has the id {id!r} (resolved already or mistyped?)")


def _resolve(item: ConflictItem, store: VersionStore, keep: str) -> None:
    files = store.files
    copy = files.stat(item.copy)
    if copy is None:
        raise UnknownVersion("the conflict copy is gone", location=files.name, path=item.copy)
    try:
        if keep == KEEP_COPY:
            current = files.stat(item.path)
            with files.open_read(item.copy) as source:
                files.guarded_write(item.path, source, copy.mtime_ns, expected=current)
        files.guarded_delete(item.copy, copy)
    except FileChanged:
        raise FileChanged(
            "changed while resolving the conflict; look at it again",
            location=files.name,
            path=item.path,
        ) from None
