"""Carrying out the planner's decisions: copies, deletes, conflict copies, index updates.

Everything here is I/O; everything it decides was decided by :mod:`app.engine.plan`. After
each operation the index row is written from what the location itself reports (``write``'s
return value), which is what keeps the engine's own writes from coming back as edits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from itertools import zip_longest
from typing import BinaryIO

from app.engine.conflicts import conflict_name
from app.engine.index import StateIndex
from app.engine.plan import Decision, Side
from app.engine.slot import Slot
from app.errors import FileVanished
from app.locations.base import CHUNK_SIZE, FileMeta

log = logging.getLogger(__name__)

Recorder = Callable[[str, str, str, str], None]


def streams_equal(a: BinaryIO, b: BinaryIO) -> bool:
    """Compare two streams chunk by chunk (never a whole file in memory)."""
    return all(chunk_a == chunk_b for chunk_a, chunk_b in zip_longest(_chunks(a), _chunks(b)))


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


class Applier:
    """Executes decisions against the slots and keeps the index in step."""

    def __init__(self, index: StateIndex, record: Recorder) -> None:
        self.index = index
        self.record = record
        self.bytes_copied = 0
        self.files_copied = 0

    def same_content(self, slots: dict[str, Slot], path: str) -> Callable[[str, str], bool]:
        """A content comparer for :func:`plan_path` bound to one path."""

        def compare(a: str, b: str) -> bool:
            try:
                with (
                    slots[a].location.open_read(path) as fa,
                    slots[b].location.open_read(path) as fb,
                ):
                    return streams_equal(fa, fb)
            except FileVanished:
                return False

        return compare

    def put(self, slot: Slot, path: str, meta: FileMeta) -> None:
        """Record ``meta`` for ``path`` in ``slot`` (memory, SQLite and its watcher)."""
        slot.index[path] = meta
        self.index.put(slot.key, path, meta)
        if slot.watcher is not None:
            slot.watcher.expect(path, meta)

    def drop(self, slot: Slot, path: str) -> None:
        """Forget ``path`` in ``slot`` (it is gone there, or everywhere)."""
        if slot.index.pop(path, None) is not None:
            self.index.remove(slot.key, path)
        if slot.watcher is not None:
            slot.watcher.expect(path, None)

    def apply(
        self, path: str, decision: Decision, slots: dict[str, Slot], sides: dict[str, Side]
    ) -> list[str]:
        """Carry out ``decision`` for ``path``; return new paths to sync (conflict copies)."""
        follow_ups: list[str] = []
        for key in decision.forget:
            if key not in decision.delete_in:  # those rows go only once their delete worked
                self.drop(slots[key], path)
        if decision.source is None:
            for key in decision.delete_in:
                slot = slots[key]
                slot.location.guarded_delete(path, sides[key].current)
                slot.deletes += 1
                self.drop(slot, path)
                self.record("deleted", path, slot.location.name, "")
            return follow_ups
        source = slots[decision.source]
        winner = sides[decision.source].current
        assert winner is not None
        renamed_away: set[str] = set()
        for key in decision.conflicts:
            name, moved = self._keep_conflict_copy(slots[key], path, sides[key])
            follow_ups.append(name)
            if moved:
                renamed_away.add(key)
        with contextlib.ExitStack() as reader:
            stream: BinaryIO | None = None
            for key in decision.copy_to:
                slot = slots[key]
                expected = None if key in renamed_away else sides[key].current
                if stream is None or not stream.seekable():
                    reader.close()  # one open of the source for all targets when it can seek
                    stream = reader.enter_context(source.location.open_read(path))
                else:
                    stream.seek(0)
                meta = slot.location.guarded_write(path, stream, winner.mtime_ns, expected)
                slot.writes += 1
                self.files_copied += 1
                self.bytes_copied += meta.size
                self.put(slot, path, meta)
                self.record("copied", path, slot.location.name, f"from {source.location.name}")
        for key in decision.record:
            current = sides[key].current
            if current is not None:
                self.put(slots[key], path, current)
        if decision.copy_to and source.key not in decision.record:
            self.put(source, path, winner)
        return follow_ups

    def _keep_conflict_copy(self, slot: Slot, path: str, side: Side) -> tuple[str, bool]:
        """Keep the losing version of ``path`` under a conflict-copy name in its location.

        Returns the copy's path and whether the original was renamed away (rather than copied).
        """
        current = side.current
        assert current is not None
        loc = slot.location
        for attempt in range(1, 100):
            name = conflict_name(path, current.mtime_ns, loc.label, attempt)
            if name not in slot.index and loc.stat(name) is None:
                break
        else:  # pragma: no cover - a hundred conflict copies of one version in one second
            name = conflict_name(path, current.mtime_ns, f"{loc.label}-{id(side)}")
        moved = loc.capabilities.can_rename
        if moved:
            meta = loc.rename(path, name)
        else:
            with loc.open_read(path) as stream:
                meta = loc.write(name, stream, current.mtime_ns)
        self.put(slot, name, meta)
        log.warning("conflict: %s in %s kept as %s", path, loc.name, name)
        self.record("conflict", path, loc.name, f"kept as {name}")
        return name, moved
