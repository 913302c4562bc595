"""Carrying out the planner's decisions: copies, deletes, conflict copies, index updates.

Everything here is I/O; everything it decides was decided by :mod:`app.engine.plan`. After
each operation the index row is written from what the location itself reports (``write``'s
return value), which is what keeps the engine's own writes from coming back as edits.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING

from app.engine.conflicts import conflict_name
from app.engine.copyjob import Copy, same_bytes
from app.engine.failures import target_failed
from app.engine.index import StateIndex
from app.engine.keepaside import KeptAside, keep_aside
from app.engine.landing import Landing
from app.engine.plan import Decision, Side
from app.engine.slot import Slot
from app.engine.status import Recorder
from app.engine.stopping import SyncStopped
from app.engine.workers import SlotIo
from app.errors import (
    FileChanged,
    FileSyncError,
    LocationBusy,
    LocationUnavailable,
)
from app.locations.base import FileMeta, LocalRoot, Location
from app.messages import shown

if TYPE_CHECKING:
    from app.engine.copies import CopyGroups, PendingCopy

log = logging.getLogger(__name__)


class Applied:
    """What :meth:`Applier.apply` did: new paths to sync, and the locations that refused."""

    __slots__ = ("deferred", "failed", "follow_ups")

    def __init__(self) -> None:
        self.follow_ups: list[str] = []
        self.failed: dict[str, FileSyncError] = {}
        #: Copies handed to a location's group (see :mod:`app.engine.copies`), not written yet.
        self.deferred: dict[str, PendingCopy] = {}


class Applier:
    """Executes decisions against the slots and keeps the index in step.

    Every location call runs on that location's worker (:mod:`app.engine.workers`), waited for
    at most ``io.deadline``; the bookkeeping (index rows, activity) stays on the engine thread.
    """

    def __init__(
        self,
        index: StateIndex,
        record: Recorder,
        io: SlotIo,
        stopping: threading.Event | None = None,
    ) -> None:
        self.index = index
        self.record = record
        self.io = io
        self.stopping = stopping  # set: every copy or compare stops at its next chunk
        self.bytes_copied = 0
        self.files_copied = 0
        self.landing = Landing()
        self._groups: CopyGroups | None = None
        self._roots: dict[Location, LocalRoot] = {}

    @property
    def made_groups(self) -> CopyGroups | None:
        """The groups of copies if :attr:`groups` made them, else None (nothing to finish)."""
        return self._groups

    @property
    def groups(self) -> CopyGroups:
        """The locations' groups of copies, made (and :mod:`app.engine.copies` loaded) when
        first asked for: a restart that copies nothing never loads it."""
        if self._groups is None:
            from app.engine.copies import CopyGroups

            self._groups = CopyGroups(self.io, self._copied_group, self._late_copied)
        return self._groups

    def same_content(self, slots: dict[str, Slot], path: str) -> Callable[[str, str], bool]:
        """A content comparer for :func:`plan_path` bound to one path (run on ``a``'s worker)."""

        def compare(a: str, b: str) -> bool:
            return slots[a].run(
                partial(same_bytes, slots[a].location, slots[b].location, path, self.stopping),
                self.io.deadline,
            )

        return compare

    def put(self, slot: Slot, path: str, meta: FileMeta) -> None:
        """Record ``meta`` for ``path`` in ``slot`` (memory, SQLite and its watcher)."""
        self.landing.touch(slot, path)
        slot.known[path] = meta
        self.index.put(slot.key, path, meta)
        if slot.watcher is not None:
            slot.watcher.expect(path, meta)

    def _put_group(self, slot: Slot, rows: list[tuple[str, FileMeta]]) -> None:
        """:meth:`put` for many paths of one slot: an initial sync records a row for every
        copy, and one call per row was a fifth of the engine thread's time."""
        self.landing.touch_group(slot, [path for path, _ in rows])
        slot.known.update(rows)
        self.index.put_group(slot.key, rows)
        if slot.watcher is not None:
            for path, meta in rows:
                slot.watcher.expect(path, meta)

    def drop(self, slot: Slot, path: str) -> None:
        """Forget ``path`` in ``slot`` (it is gone there, or everywhere)."""
        self.landing.touch(slot, path)
        if slot.known.pop(path, None) is not None:
            self.index.remove(slot.key, path)
        if slot.watcher is not None:
            slot.watcher.expect(path, None)

    def apply(
        self, path: str, decision: Decision, slots: dict[str, Slot], sides: dict[str, Side]
    ) -> Applied:
        """Carry out ``decision`` for ``path``, one location at a time.

        A location that refuses its part (read-only, full, a folder in the way, unreachable,
        not answering in time) is reported in :attr:`Applied.failed` and the others still get
        the change; its index row is left as it was. A problem with the source or a file that
        changed meanwhile concerns every target, so it is raised and the path planned again.
        """
        done = Applied()
        for key in decision.forget:
            if key not in decision.delete_in:  # those rows go only once their delete worked
                self.drop(slots[key], path)
        if decision.source is None:
            for key in decision.delete_in:
                slot = slots[key]
                with self._per_target(done, key, "delete", path, slot):
                    delete = partial(slot.location.guarded_delete, path, sides[key].current)
                    slot.run(delete, self.io.deadline, partial(self._late_delete, slot, path))
                    self._deleted(slot, path)
            return done
        source = slots[decision.source]
        winner = sides[decision.source].current
        assert winner is not None
        for key in decision.conflicts:
            with self._per_target(done, key, "keep a conflict copy of", path, slots[key]):
                done.follow_ups.append(self._keep_conflict_copy(slots[key], path, sides[key]).name)
        for key in decision.copy_to:
            if key in done.failed:  # its own version could not be kept aside
                continue
            slot = slots[key]
            expected = sides[key].current  # a kept loser is still there, untouched
            copy = Copy(
                source.location,
                slot.location,
                path,
                winner.mtime_ns,
                expected,
                stopping=self.stopping,
            )
            if slot.location.capabilities.batched_writes:  # the location takes groups
                job = copy.job(winner.size, self._local_root(source.location))
                done.deferred[key] = self.groups.add(
                    slot, source, path, winner, job=job, source_failed=copy.source_failed
                )
                continue
            with self._per_target(done, key, "write", path, slot, copy=copy):
                late = partial(self._late_copy, slot, source, path, winner)
                self._copied(slot, source, path, slot.run(copy.run, self.io.deadline, late))
        for key in decision.record:
            current = sides[key].current
            if current is not None:
                self.put(slots[key], path, current)
        if decision.copy_to and source.key not in decision.record:
            self.put(source, path, winner)
        return done

    def copy_new(self, source: Slot, targets: list[Slot], rows: list[tuple[str, FileMeta]]) -> None:
        """:meth:`apply` for paths that only ``source`` has and no location has a row for
        (:mod:`app.engine.newfiles`): queues a copy of each in every target's group (the
        caller sends the groups), and records its row in ``source``, as
        :func:`~app.engine.sides.new_in_one` decides. Every target declares
        ``batched_writes``; what a copy came to is the groups' to report.
        """
        root = self._local_root(source.location)
        add, stopping, where = self.groups.add, self.stopping, source.location
        for slot in targets:
            to = slot.location
            for path, winner in rows:
                copy = Copy(where, to, path, winner.mtime_ns, None, stopping=stopping)
                job = copy.job(winner.size, root)
                add(slot, source, path, winner, job=job, source_failed=copy.source_failed)
        self._put_group(source, rows)

    def _local_root(self, source: Location) -> LocalRoot | None:
        """``source``'s root for the jobs copying from it, if it is a folder on this computer
        (one object per location, so a group opens each source root once)."""
        if not source.capabilities.local_files:
            return None
        root = self._roots.get(source)
        if root is None:
            root = self._roots[source] = LocalRoot(source.local_root, self._check_stop)
        return root

    def _check_stop(self) -> None:
        if self.stopping is not None and self.stopping.is_set():
            raise SyncStopped("stopping")

    def _copied(self, slot: Slot, source: Slot, path: str, meta: FileMeta) -> None:
        slot.writes += 1
        self.files_copied += 1
        self.bytes_copied += meta.size
        self.put(slot, path, meta)
        self.record("copied", path, slot.location.name, f"from {source.location.name}")

    def _copied_group(self, slot: Slot, copies: list[tuple[Slot, str, FileMeta]]) -> None:
        """:meth:`_copied` for the copies of a group into ``slot`` (the same rows, counts and
        records, in the same order)."""
        slot.writes += len(copies)
        self.files_copied += len(copies)
        self.bytes_copied += sum(meta.size for _, _, meta in copies)
        self._put_group(slot, [(path, meta) for _, path, meta in copies])
        name, record = slot.location.name, self.record
        for source, path, _ in copies:
            record("copied", path, name, f"from {source.location.name}")

    def _late_copy(
        self, slot: Slot, source: Slot, path: str, winner: FileMeta, future: Future[FileMeta]
    ) -> None:
        """A write that missed its deadline ended: record what landed, as a timely one would.

        The path stays stale there (the catch-up checks it again) unless the version written
        is still the one every location agreed on, so nothing decided meanwhile is missed.
        """
        if future.exception() is None:
            self._late_copied(slot, source, path, winner, future.result())

    def _late_copied(
        self, slot: Slot, source: Slot, path: str, winner: FileMeta, meta: FileMeta
    ) -> None:
        self._copied(slot, source, path, meta)
        if source.known.get(path) == winner and path in slot.stale:
            slot.stale.discard(path)
            self.index.clear_stale(slot.key, path)

    def _deleted(self, slot: Slot, path: str) -> None:
        slot.deletes += 1
        self.drop(slot, path)
        self.record("deleted", path, slot.location.name, "")

    def _late_delete(self, slot: Slot, path: str, future: Future[None]) -> None:
        if future.exception() is None:
            self._deleted(slot, path)

    @contextlib.contextmanager
    def _per_target(
        self,
        done: Applied,
        key: str,
        verb: str,
        path: str,
        slot: Slot,
        *,
        copy: Copy | None = None,
    ) -> Iterator[None]:
        """Catch what only ``slot`` refused into ``done.failed``; let the rest through."""
        try:
            yield
        except FileChanged:
            raise
        except (FileSyncError, OSError) as exc:
            if copy is not None and copy.source_failed():
                raise  # reading the source failed: no target can get it now
            if isinstance(exc, LocationUnavailable | LocationBusy):
                done.failed[key] = exc
            else:
                done.failed[key] = target_failed(verb, path, slot.location.name, exc)

    def _keep_conflict_copy(self, slot: Slot, path: str, side: Side) -> KeptAside:
        """Keep the losing version of ``path`` under a conflict-copy name in its location,
        leaving ``path`` itself in place for the winner to replace (see ``keepaside``)."""
        current = side.current
        assert current is not None
        loc = slot.location
        names = [conflict_name(path, current.mtime_ns, loc.label, n) for n in range(1, 100)]
        names.append(conflict_name(path, current.mtime_ns, f"{loc.label}-{id(side)}"))
        taken = {n for n in names if n in slot.known}
        keep = partial(keep_aside, loc, path, current, names, taken, stopping=self.stopping)
        kept = slot.run(keep, self.io.deadline, partial(self._late_conflict, slot, path))
        self._conflict_kept(slot, path, kept)
        return kept

    def _conflict_kept(self, slot: Slot, path: str, kept: KeptAside) -> None:
        self.put(slot, kept.name, kept.meta)
        name = shown(kept.name)
        log.warning("conflict: %s in %s kept as %s", shown(path), slot.location.name, name)
        self.record("conflict", path, slot.location.name, f"kept as {name}")

    def _late_conflict(self, slot: Slot, path: str, future: Future[KeptAside]) -> None:
        if future.exception() is None:
            self._conflict_kept(slot, path, future.result())
