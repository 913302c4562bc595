"""Carrying out the planner's decisions: copies, deletes, conflict copies, index updates.

Everything here is I/O; everything it decides was decided by :mod:`app.engine.plan`. After
each operation the index row is written from what the location itself reports (``write``'s
return value), which is what keeps the engine's own writes from coming back as edits.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any, BinaryIO, cast

from app.engine.conflicts import conflict_name
from app.engine.failures import target_failed
from app.engine.index import StateIndex
from app.engine.plan import Decision, Side
from app.engine.slot import Slot
from app.engine.stopping import stop_aware
from app.errors import FileChanged, FileSyncError, FileVanished, LocationUnavailable
from app.locations.base import CHUNK_SIZE, FileMeta
from app.messages import shown

log = logging.getLogger(__name__)

Recorder = Callable[[str, str, str, str], None]


@dataclass
class Applied:
    """What :meth:`Applier.apply` did: new paths to sync, and the locations that refused."""

    follow_ups: list[str] = field(default_factory=list)
    failed: dict[str, FileSyncError] = field(default_factory=dict)


class _SourceStream(io.RawIOBase):
    """The source's stream, remembering whether reading it failed (rather than the target)."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self.failed: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._inner.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._inner.read(-1 if size is None else size)
        except BaseException as exc:
            self.failed = exc
            raise

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


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

    def __init__(
        self, index: StateIndex, record: Recorder, stopping: threading.Event | None = None
    ) -> None:
        self.index = index
        self.record = record
        self.stopping = stopping  # set: every copy or compare stops at its next chunk
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
                    return streams_equal(stop_aware(fa, self.stopping), fb)
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
    ) -> Applied:
        """Carry out ``decision`` for ``path``, one location at a time.

        A location that refuses its part (read-only, full, a folder in the way, unreachable)
        is reported in :attr:`Applied.failed` and the others still get the change; its index
        row is left as it was. A problem with the source or a file that changed meanwhile
        concerns every target, so it is raised and the whole path is planned again.
        """
        done = Applied()
        for key in decision.forget:
            if key not in decision.delete_in:  # those rows go only once their delete worked
                self.drop(slots[key], path)
        if decision.source is None:
            for key in decision.delete_in:
                slot = slots[key]
                with self._per_target(done, key, "delete", path, slot):
                    slot.location.guarded_delete(path, sides[key].current)
                    slot.deletes += 1
                    self.drop(slot, path)
                    self.record("deleted", path, slot.location.name, "")
            return done
        source = slots[decision.source]
        winner = sides[decision.source].current
        assert winner is not None
        renamed_away: set[str] = set()
        for key in decision.conflicts:
            with self._per_target(done, key, "keep a conflict copy of", path, slots[key]):
                name, moved = self._keep_conflict_copy(slots[key], path, sides[key])
                done.follow_ups.append(name)
                if moved:
                    renamed_away.add(key)
        with contextlib.ExitStack() as reader:
            stream: _SourceStream | None = None
            for key in decision.copy_to:
                if key in done.failed:  # its own version could not be kept aside
                    continue
                slot = slots[key]
                expected = None if key in renamed_away else sides[key].current
                if stream is None or not stream.seekable():
                    reader.close()  # one open of the source for all targets when it can seek
                    opened = reader.enter_context(source.location.open_read(path))
                    stream = _SourceStream(stop_aware(opened, self.stopping))
                else:
                    stream.seek(0)
                with self._per_target(done, key, "write", path, slot, stream=stream):
                    data = cast(BinaryIO, stream)
                    meta = slot.location.guarded_write(path, data, winner.mtime_ns, expected)
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
        return done

    @contextlib.contextmanager
    def _per_target(
        self,
        done: Applied,
        key: str,
        verb: str,
        path: str,
        slot: Slot,
        *,
        stream: _SourceStream | None = None,
    ) -> Iterator[None]:
        """Catch what only ``slot`` refused into ``done.failed``; let the rest through."""
        try:
            yield
        except FileChanged:
            raise
        except (FileSyncError, OSError) as exc:
            if stream is not None and stream.failed is not None:
                raise  # reading the source failed: no target can get it now
            if isinstance(exc, LocationUnavailable):
                done.failed[key] = exc
            else:
                done.failed[key] = target_failed(verb, path, slot.location.name, exc)

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
                meta = loc.write(name, stop_aware(stream, self.stopping), current.mtime_ns)
        self.put(slot, name, meta)
        log.warning("conflict: %s in %s kept as %s", shown(path), loc.name, shown(name))
        self.record("conflict", path, loc.name, f"kept as {shown(name)}")
        return name, moved
