"""Syncing paths: read the locations, plan each path, apply, keep the state index in step.

The engine thread owns a :class:`Syncer` and calls it for the initial and periodic full syncs
and for every batch of changes; nothing here runs on another thread. Reading is
:mod:`app.engine.reading`, deciding :mod:`app.engine.plan`, doing :mod:`app.engine.apply`,
renames :mod:`app.engine.renames`; this module runs them in order, and
:mod:`app.engine.outcomes` decides what to try again when a path or a location fails.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from functools import partial

from app.engine import calls
from app.engine.apply import Applied, Applier
from app.engine.fastpath import all_in_step, every_location_in_step, in_step
from app.engine.ignore import IgnoreRules
from app.engine.index import StateIndex
from app.engine.links import HeldLinks
from app.engine.massdelete import guard_mass_delete
from app.engine.namegate import NameGate
from app.engine.outcomes import Outcomes
from app.engine.plan import Decision, Side, SideState
from app.engine.progress import Progress
from app.engine.reading import Reader
from app.engine.renames import Renamer
from app.engine.retries import RETRY_FAILED_PATH_AFTER, RetryTable
from app.engine.settle import SETTLE_BOUND, SettleGate
from app.engine.sides import Sides
from app.engine.slot import Slot
from app.engine.status import LocationState, Recorder
from app.engine.stopping import SyncStopped
from app.engine.workers import SlotIo
from app.errors import FileSyncError
from app.locations.base import Listing
from app.watch.change import Change, ChangeKind

log = logging.getLogger(__name__)
UNCHANGED = SideState.UNCHANGED

#: A full sync commits the index after every this many paths (each chunk is one batch).
COMMIT_EVERY = 2000


class Syncer:
    """Turns "these paths (or everything) may have changed" into the right copies and deletes."""

    def __init__(
        self,
        slots: dict[str, Slot],
        index: StateIndex,
        record: Recorder,
        *,
        debounce: float,
        allow_mass_delete: bool,
        ignore: tuple[str, ...] = (),
        stopping: threading.Event | None = None,
        settle_bound: float = SETTLE_BOUND,
    ) -> None:
        self.slots = slots
        self.stopping = stopping or threading.Event()  # set: raise SyncStopped between paths
        self.index = index
        self.record = record
        self.debounce = debounce
        self.allow_mass_delete_always = allow_mass_delete
        self.io = SlotIo()
        self.applier = Applier(index, record, self.io, self.stopping)
        self.base_ignore = ignore
        self.ignore = IgnoreRules(ignore)
        self.retries = RetryTable()
        self.settle = SettleGate(settle_bound)
        self.links = HeldLinks(record)
        self.names = NameGate(record)
        self.reader = Reader(
            slots,
            self.io,
            links=self.links,
            names=self.names,
            check_stop=self._check_stop,
        )
        self.sides = Sides(slots, self.applier, self.links, self.names)
        self.renamer = Renamer(self.reader, self.applier, self.links, self.names, record)
        self.outcomes = Outcomes(
            slots,
            index,
            record,
            applier=self.applier,
            retries=self.retries,
            links=self.links,
            names=self.names,
            ignore=lambda: self.ignore,
            debounce=debounce,
        )
        #: The last full sync's listings, kept while nothing it did could have changed a
        #: location (no write, delete or conflict copy was tried, nothing failed or waited):
        #: :meth:`converged` then plans from them instead of reading every location again.
        #: Only kept while ``keep_listings`` (a start without watching, whose caller checks
        #: convergence next): a watching engine must not hold 100,000 entries while idle.
        self._quiet_listings: dict[str, Listing] | None = None
        #: That sync found every location in step (:func:`every_location_in_step`): nothing
        #: to check again.
        self._quiet_in_step = False
        self.keep_listings = False

    def next_retry_at(self) -> float | None:
        """When the next path is due to be tried again (monotonic), or None."""
        return self.retries.next_at()

    def retry_due(self) -> None:
        """Plan again the paths whose retry is due."""
        due = self.retries.take_due()
        if due:
            self.sync_paths(due, "retry")

    def retry_later(self, changes: Iterable[Change]) -> None:
        """Plan these changes' paths again after a pause (their batch failed unexpectedly)."""
        for change in changes:
            for path in (change.path, change.dest):
                if path:
                    self.retries.later([change.location], path, RETRY_FAILED_PATH_AFTER)

    def load_ignore_files(self) -> None:
        """Merge ``--ignore`` patterns with every available root's ``.filesyncignore``."""
        self.ignore = self.reader.ignore_rules(self.base_ignore)

    def available(self) -> list[Slot]:
        """The locations that can be read and written now (reachable, and answering)."""
        return self.reader.available()

    def converged(self) -> bool:
        """Report whether all locations hold the same files, as read after the last sync.

        Right after a full sync that changed nothing anywhere (``--once`` over trees already
        in step, or a first run over identical trees), its own listings are what a rescan
        would read, so they are planned again against the updated index; otherwise every
        location is scanned again.
        """
        if any(not s.ready or s.held_deletes for s in self.slots.values()):
            return False
        listings, self._quiet_listings = self._quiet_listings, None
        with self.io.patient():
            if listings is None or set(listings) != set(self.slots):
                listings = self.reader.scan_all(self.ignore)
            elif self._quiet_in_step:
                return True
            if every_location_in_step(listings, self.slots):
                return True
            paths = self._all_paths(listings)
            return all_in_step(paths, listings, self.slots) or all(
                in_step(path, listings, self.slots) or self._plan(path, listings).is_noop
                for path in paths
            )

    def _all_paths(self, listings: dict[str, Listing], in_step: bool = False) -> list[str]:
        """Every path a listed location holds or its index row knows, ignored ones left out.

        Listings may hold ignored paths (only their folders are pruned); each distinct path
        is checked against the rules once, not once per location. Where every location and
        its index rows hold the same paths (a restart with nothing changed, a first run over
        identical trees) no union is built: for 100,000 files that set alone costs 12 MB.
        Sorted, except with ``in_step`` (:func:`every_location_in_step` held, so every one of
        them holds the same): nothing will be planned, and the sort alone cost 40 ms.
        """
        names = [d for key, listing in listings.items() for d in (listing, self.slots[key].known)]
        widest = max(names, key=len, default={})
        if in_step:
            return self.ignore.kept(widest)
        if all(not d or d.keys() == widest.keys() for d in names):  # a tree in step: no union
            return sorted(self.ignore.kept(widest))
        paths: set[str] = set()
        for d in names:
            paths.update(d)
        return sorted(self.ignore.kept(paths))

    def _guard_mass_delete(
        self, slot: Slot, missing: Iterable[str], allow: bool, detail: str = ""
    ) -> None:
        """Hold ``slot``'s deletes if too many vanished at once (see :mod:`.massdelete`)."""
        if not (allow or self.allow_mass_delete_always):
            guard_mass_delete(slot, missing, self.record, detail)

    def full_sync(self, reason: str, allow_mass_delete: bool = False) -> None:
        """Scan every available location and bring them all to the same state.

        Used at start-up, every ``rescan_interval``, when a location comes back and on "Sync
        now". Re-reads the ``.filesyncignore`` files first, so edits to them take effect.
        """
        self._quiet_listings, self.outcomes.disturbed = None, False
        listings, paths, in_step_everywhere = self._read_all(allow_mass_delete)
        for key in listings:  # what a stalled location missed is covered by this sync
            self.slots[key].needs_full = False
            self.slots[key].parked = set()
            self.slots[key].late_stats = {}
        progress = Progress(reason, len(paths), log)
        if in_step_everywhere:  # nothing to plan: what _apply_all would do for every chunk
            self.settle.forget(paths)
            progress.step(len(paths), self.applier.files_copied, self.applier.bytes_copied)
        else:
            self._apply_all(paths, listings, progress)
        progress.finish(self.applier.files_copied, self.applier.bytes_copied)
        for key in listings:
            slot = self.slots[key]
            if slot.available:
                self.index.mark_known(key)
                slot.mark_ok()
        self.index.commit()
        if self.keep_listings and not self.outcomes.disturbed:
            self._quiet_listings, self._quiet_in_step = listings, in_step_everywhere

    def read_all(self, allow_mass_delete: bool = False) -> tuple[dict[str, Listing], list[str]]:
        """What a full sync plans from: every available location's listing and every path.

        Holds the deletes of a location that lost too many files at once (mass-delete guard).
        Reads only, so a dry run (:mod:`app.engine.preview`) uses it too.
        """
        listings, paths, _ = self._read_all(allow_mass_delete)
        return listings, paths

    def _read_all(self, allow_mass_delete: bool) -> tuple[dict[str, Listing], list[str], bool]:
        """:meth:`read_all`, and whether every location is in step (nothing to plan)."""
        self.load_ignore_files()
        listings = self.reader.scan_all(self.ignore)
        in_step_everywhere = every_location_in_step(listings, self.slots)
        for key, listing in listings.items():
            slot = self.slots[key]
            missing = [
                p
                for p in ([] if in_step_everywhere else slot.known.keys() - listing.keys())
                if not self.ignore.ignored(p) and not self.links.holds(key, p)
            ]
            slot.held_deletes = set()
            self._guard_mass_delete(slot, missing, allow_mass_delete)
        return listings, self._all_paths(listings, in_step_everywhere), in_step_everywhere

    def sync_changes(self, changes: list[Change]) -> None:
        """Sync the paths a batch of watcher changes touched (renames first, as renames)."""
        self._quiet_listings = None
        paths: set[str] = set()
        scan_deletes: dict[str, set[str]] = {}
        for change in changes:
            slot = self.slots.get(change.location)
            if slot is None or not slot.available:
                continue
            if change.kind is ChangeKind.MOVED:
                self.renamer.propagate(slot, change.path, change.dest, self.ignore)
                paths.update((change.path, change.dest))
            elif change.kind is ChangeKind.MOVED_TREE:
                moved = self.renamer.propagate_tree(slot, change.path, change.dest, self.ignore)
                paths.update(moved)
            elif change.kind is ChangeKind.TREE:
                paths.update(self.reader.expand_tree(slot, change.path))
            elif change.kind is ChangeKind.FILE:
                paths.add(change.path)
                if change.from_scan and change.path in slot.known:
                    scan_deletes.setdefault(slot.key, set()).add(change.path)
        self.sync_paths(paths, "changes", scan_deletes)

    def sync_paths(
        self, paths: set[str], reason: str, scan_deletes: dict[str, set[str]] | None = None
    ) -> None:
        """Stat ``paths`` in every available location and plan each one.

        ``scan_deletes`` are deletes a poller inferred by comparing two listings; only those
        go through the mass-delete guard, because an empty listing from a flaky server looks
        exactly like "everything deleted". Deletes the OS reported (``rm -rf`` in a watched
        folder) are real and propagate at once.
        """
        self._quiet_listings = None
        paths = {p for p in paths if p and not self.ignore.ignored(p)}
        if not paths:
            return
        listings = self.reader.stat(sorted(paths), self.ignore)
        for key, listing in listings.items():
            candidates = (scan_deletes or {}).get(key, set())
            vanished = {p for p in candidates if p not in listing and not self.links.holds(key, p)}
            self._guard_mass_delete(self.slots[key], vanished, False, " in one poll")
        self.outcomes.park(paths)
        self._apply_all(sorted(paths), listings, None)
        for key in listings:
            slot = self.slots[key]
            if slot.available and slot.state is LocationState.SYNCING:
                slot.mark_ok()
            elif slot.available:
                slot.last_sync = time.time()

    def _plan(self, path: str, listings: dict[str, Listing]) -> Decision:
        return self.sides.decide(path, self.sides.of(path, listings))

    def _apply_all(
        self, paths: list[str], listings: dict[str, Listing], progress: Progress | None
    ) -> None:
        if len(listings) < 1:
            return
        follow_ups: list[str] = []
        slots = [self.slots[key] for key in listings]
        try:
            for start in range(0, len(paths), COMMIT_EVERY):
                end = min(start + COMMIT_EVERY, len(paths))
                follow_ups += self._apply_chunk(paths, start, end, listings, progress)
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
        if follow_ups:
            self.sync_paths(set(follow_ups), "conflict copies")

    def _apply_chunk(
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
                for n in range(start, end):
                    self._check_stop()  # what landed so far is recorded; stop() commits it
                    if n % 100 == 0:
                        for slot in slots:
                            slot.pending = len(paths) - n
                    if in_step(paths[n], listings, self.slots):
                        self.settle.forget((paths[n],))  # all the planner would have done
                    else:
                        follow_ups += self._apply_one(paths[n], listings)
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
