"""Versions: the trash of overwritten and deleted files, and conflict copies, as plain data.

What the dashboard's JSON API and the tray show, and the two ways to undo an automatic
decision: :func:`restore` a trashed version (or every deletion in a time window) and
:func:`resolve` a conflict. Every call takes the engine's locations (``Engine.locations()``)
and acts through each location's own safe writes, beside the engine, never inside it: what it
writes is a change like a user's, which the engine then syncs everywhere. Only kinds that keep
versions (folders) have a trash; conflicts are listed and resolved in those locations.
"""

from __future__ import annotations

from app.versions.conflicts import list_conflicts, resolve
from app.versions.items import ConflictItem, RestoreResult, TrashItem
from app.versions.trash import list_trash, restore, restore_window

__all__ = [
    "ConflictItem",
    "RestoreResult",
    "TrashItem",
    "list_conflicts",
    "list_trash",
    "resolve",
    "restore",
    "restore_window",
]
