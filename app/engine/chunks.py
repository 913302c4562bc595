"""Planning and applying a full sync's paths a chunk at a time, each chunk one batch.

The :class:`~app.engine.sync.Syncer` reads the locations and hands the paths to plan here, sorted.
Each chunk of :data:`COMMIT_EVERY` paths is one batch of every location, committed once its
copies landed. Within a chunk, the paths new in one location (:mod:`app.engine.newfiles`) go to
the groups of copies in bulk; every other path is planned on its own (:mod:`app.engine.sides`,
:mod:`app.engine.plan`) and applied (:mod:`app.engine.apply`); what failed is
:mod:`app.engine.outcomes`' to handle.
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
from functools import partial
from itertools import accumulate

from app.engine import calls
from app.engine.apply import Applied, Applier
from app.engine.fastpath import all_in_step, in_step
from app.engine.index import StateIndex
from app.engine.links import HeldLinks
from app.engine.namegate import NameGate
from app.engine.newfiles import split_new
from app.engine.outcomes import Outcomes
from app.engine.plan import Side, SideState
from app.engine.progress import Progress
from app.engine.retries import RetryTable
from app.engine.settle import SettleGate
from app.engine.sides import Sides
from app.engine.slot import Slot
from app.engine.stopping import SyncStopped
from app.engine.workers import SlotIo
from app.errors import FileSyncError
from app.locations.base import Listing

UNCHANGED = SideState.UNCHANGED

#: A full sync commits the index after every this many paths (each chunk is one batch). A
#: chunk ends with every location's copies landed, so the copies stop at each chunk's end: 10,000
#: new files into two folders, 1.20x rsync in one chunk against 1.28x in five (10 rounds
#: interleaved). A crash loses the rows of the chunk under way (and of the last group of the
#: chunk before, which waits for this chunk's first pass): the next run finds those copies
#: identical to their sources (same size and time) and records them.
COMMIT_EVERY = 10_000
#: New files go to the groups of copies at most this many paths at a time, and never more than
#: a group has room for (see :meth:`Chunks._copy_new`): a piece fills a group at once (1.17x
#: rsync against 1.20x with pieces of 128, whose first group went out with 128 files).
NEW_PIECE = 4096


class Chunks:
    """Runs a list of paths through planning and applying, a batch per chunk."""

    def __init__(
        self,
        slots: dict[str, Slot],
        index: StateIndex,
        io: SlotIo,
        *,
        applier: Applier,
        sides: Sides,
        outcomes: Outcomes,
        settle: SettleGate,
        retries: RetryTable,
        links: HeldLinks,
        names: NameGate,
        stopping: threading.Event,
    ) -> None:
        self.slots, self.index, self.io = slots, index, io
        self.applier, self.sides, self.outcomes = applier, sides, outcomes
        self.settle, self.retries = settle, retries
        self.links, self.names = links, names
        self.stopping = stopping

    def apply(
        self, paths: list[str], listings: dict[str, Listing], progress: Progress | None
    ) -> list[str]:
        """Plan and apply ``paths`` (sorted), a chunk at a time; the follow-ups (conflict
        copies) to sync next. Within a chunk, the files new in one location go first (in
        bulk), then every other path in order."""
        if len(listings) < 1:
            return []
        follow_ups: list[str] = []
        slots = [self.slots[key] for key in listings]
        try:
            for start in range(0, len(paths), COMMIT_EVERY):
                end = min(start + COMMIT_EVERY, len(paths))
                follow_ups += self._chunk(paths, start, end, listings, progress)
            groups = self.applier.made_groups  # None: nothing was copied in a group
            if groups is not None and groups.unsettled:  # chunks in step followed the last
                self.outcomes.copies_failed(groups.finish(self.slots), listings)
                if progress is not None:
                    self.index.commit()
        except BaseException:
            if (groups := self.applier.made_groups) is not None:
                groups.abandon()  # a stop between chunks: record what landed
            raise
        for slot in slots:
            slot.pending = 0
        return follow_ups

    def _chunk(
        self,
        paths: list[str],
        start: int,
        end: int,
        listings: dict[str, Listing],
        progress: Progress | None,
    ) -> list[str]:
        """Plan and apply ``paths[start:end]``; the follow-ups (conflict copies) to sync."""
        follow_ups: list[str] = []
        if all_in_step(paths[start:end], listings, self.slots):  # no planning, no batch
            self._check_stop()
            self.settle.forget(paths[start:end])
            if progress is not None:
                progress.step(end, self.applier.files_copied, self.applier.bytes_copied)
            return follow_ups
        slots = [self.slots[key] for key in listings]
        new, rest = split_new(paths[start:end], listings, self.slots, self.links, self.names)
        # Each chunk is its own batch, committed only after the batch has landed: a ZIP
        # archive writes its staged members at batch exit, and an index row saved before
        # its file would make a crash look like a delete.
        self.applier.landing.begin(list(listings))
        with contextlib.ExitStack() as stack:
            for key in listings:
                slot = self.slots[key]
                unlanded = partial(self.outcomes.unlanded, slot)
                stack.enter_context(calls.batch(slot, self.io.deadline, unlanded))
            groups = self.applier.groups
            try:
                done, keys = start, listings.keys() - set()
                for key, mine in new.items():
                    done, left = self._copy_new(
                        key, mine, listings, keys, done=done, total=len(paths), progress=progress
                    )
                    if left:  # a location went away: the planner takes the rest, in order
                        rest = sorted([*rest, *left])
                for n, path in enumerate(rest, done):
                    self._check_stop()  # what landed so far is recorded; stop() commits it
                    if n % 100 == 0:
                        for slot in slots:
                            slot.pending = len(paths) - n
                    if in_step(path, listings, self.slots):
                        self.settle.forget((path,))  # all the planner would have done
                    else:
                        follow_ups += self._apply_one(path, listings)
                    if groups.due:
                        self.outcomes.copies_failed(groups.send_due(self.slots), listings)
                    if progress is not None:
                        copied = self.applier.files_copied
                        progress.step(n + 1, copied, self.applier.bytes_copied)
                # Every copy of the chunk is on disk (or failed) before its rows count. The
                # last group of new files of a chunk that more chunks follow becomes durable
                # with the next chunk's first pass, and is recorded (and committed) then.
                more = end < len(paths)
                self.outcomes.copies_failed(groups.finish(self.slots, settle=not more), listings)
            except BaseException:
                groups.abandon()
                raise
        for key in listings:
            self.applier.landing.landed(key)
        if progress is not None:
            self.index.commit()
        return follow_ups

    def _copy_new(
        self,
        key: str,
        new: list[str],
        listings: dict[str, Listing],
        keys: set[str],
        *,
        done: int,
        total: int,
        progress: Progress | None,
    ) -> tuple[int, list[str]]:
        """Hand ``new`` (paths that only ``key`` has, see :mod:`.newfiles`) to every other
        location's group, a piece at a time, sending the groups that are due in between.

        A piece ends where a target's group would be full (files or bytes), so a group is as
        big as it would have been path by path. Returns how many paths are done, and the paths
        left for the planner: all that remain once the listed locations are no longer
        ``keys`` (one became unavailable, and the planner marks it behind).
        """
        if listings.keys() != keys:
            return done, new
        source = self.slots[key]
        winners = listings[key]
        groups = self.applier.groups
        self.outcomes.disturbed = True  # a location changes: --once reads them all again
        self.settle.forget(new)
        ends = list(accumulate(winners[p].size for p in new))  # bytes up to each path
        at = 0
        while at < len(new):
            if listings.keys() != keys:
                return done, new[at:]
            self._check_stop()
            targets = [self.slots[k] for k in listings if k != key]
            for slot in (source, *targets):
                slot.pending = total - done
            rooms = [groups.room(slot, source) for slot in targets]
            files, room = min(r[0] for r in rooms), min(r[1] for r in rooms)
            end = min(at + max(files, 1), at + NEW_PIECE, len(new))
            full = bisect_left(ends, (ends[at - 1] if at else 0) + room, at, end)
            end = max(at + 1, min(end, full + 1))  # the file that fills it goes too
            piece = new[at:end]
            self.applier.copy_new(source, targets, [(p, winners[p]) for p in piece])
            if groups.due:
                self.outcomes.copies_failed(groups.send_due(self.slots), listings)
            done += len(piece)
            at = end
            if progress is not None:
                progress.step(done, self.applier.files_copied, self.applier.bytes_copied)
        return done, []

    def _check_stop(self) -> None:
        if self.stopping.is_set():
            raise SyncStopped("stopping")

    def _apply_one(self, path: str, listings: dict[str, Listing]) -> list[str]:
        sides = self.sides.of(path, listings)
        try:
            if self._still_written(path, sides):
                self.outcomes.disturbed = True
                return []
            decision = self.sides.decide(path, sides)
            if decision.copy_to or decision.delete_in or decision.conflicts:
                # a location may change: --once reads them all again
                self.outcomes.disturbed = True
            for key, side in sides.items():  # learn a tag the index did not have yet
                current = side.current
                if current is not None and current != side.indexed and side.state is UNCHANGED:
                    self.applier.put(self.slots[key], path, current)
            applied = Applied()
            if not decision.is_noop:
                applied = self.applier.apply(path, decision, self.slots, sides)
                self.outcomes.remember_missed(path, sides)
            for key, exc in applied.failed.items():
                self.outcomes.target_missed(key, path, exc, listings)
            # Every location in this decision has caught up on the path, unless all of them
            # were behind on it (the ones that knew better were not part of it).
            informed = any(path not in self.slots[k].stale for k in sides)
            for key in sides:
                if key in applied.failed or not informed:
                    continue
                pending = applied.deferred.get(key)
                if pending is not None:  # caught up once its copy landed
                    pending.caught_up = partial(self.outcomes.caught_up, key, path)
                else:
                    self.outcomes.caught_up(key, path)
            return applied.follow_ups
        except (FileSyncError, OSError) as exc:
            self.outcomes.path_failed(path, exc, listings)
        return []

    def _still_written(self, path: str, sides: dict[str, Side]) -> bool:
        """True when a copy of ``path`` is still being written: plan it again later instead."""
        parking = self.settle.check(path, sides, self.slots)
        if parking.recheck is not None and sides:
            self.retries.later([next(iter(sides))], path, parking.recheck)
        return parking.hold
