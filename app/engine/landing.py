"""Index rows that wait for their location's batch to land.

A ZIP archive stages the writes of a batch and lands them with one rewrite when the batch
ends. The engine records each write's row as it is made (the archive's own listing already
shows it), but if the rewrite then fails and FileSync stops, the file never reaches the
archive: a saved row would make the next run read "in the index, gone from the archive" as a
delete, and delete the user's originals everywhere else. So, per location, the row each path
had before the batch is kept here; when a batch does not land, those rows are put back (in
memory and in SQLite) and the paths are synced again once the location can take them.
"""

from __future__ import annotations

from collections.abc import Collection

from app.engine.index import StateIndex
from app.engine.slot import Slot
from app.locations.base import FileMeta


class Landing:
    """The rows each location had before the current batch, for the paths the batch touched."""

    def __init__(self) -> None:
        self._before: dict[str, dict[str, FileMeta | None]] = {}

    def begin(self, keys: list[str]) -> None:
        """A batch over these locations starts: remember rows from now on."""
        self._before = {key: {} for key in keys}

    def touch(self, slot: Slot, path: str) -> None:
        """``path``'s row in ``slot`` is about to change: keep the row it had first."""
        rows = self._before.get(slot.key)
        if rows is not None and path not in rows:
            rows[path] = slot.known.get(path)

    def touch_group(self, slot: Slot, paths: list[str]) -> None:
        """:meth:`touch` for each of ``paths``."""
        rows = self._before.get(slot.key)
        if rows is not None:
            known = slot.known
            for path in paths:
                if path not in rows:
                    rows[path] = known.get(path)

    def landed(self, key: str) -> None:
        """``key``'s batch landed: its rows stand."""
        self._before.pop(key, None)

    def revert(
        self, slot: Slot, index: StateIndex, only: Collection[str] | None = None
    ) -> list[str]:
        """``slot``'s batch did not land (or ``only`` these paths of it did not): put their rows
        back; return the paths reverted."""
        rows = self._before.pop(slot.key, {})
        if only is not None:
            rows = {path: meta for path, meta in rows.items() if path in only}
        for path, meta in rows.items():
            if meta is None:
                slot.known.pop(path, None)
                index.remove(slot.key, path)
            else:
                slot.known[path] = meta
                index.put(slot.key, path, meta)
        return sorted(rows)
