"""Syncing paths: read the locations, plan each path, apply, keep the state index in step.

The engine thread owns a :class:`Syncer` and calls it for the initial and periodic full syncs
and for every batch of changes; nothing here runs on another thread. Reading is
:mod:`app.engine.reading`, deciding :mod:`app.engine.plan`, doing :mod:`app.engine.apply`,
renames :mod:`app.engine.renames`; this module runs them in order and decides what to try
again when a path or a location fails.
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
from app.engine.copies import CopyFailed
from app.engine.failures import retry_delay, target_failed
from app.engine.fastpath import all_in_step, in_step
from app.engine.ignore import IgnoreRules
from app.engine.index import StateIndex
from app.engine.links import HeldLinks
from app.engine.massdelete import guard_mass_delete
from app.engine.namegate import NameGate
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
from app.errors import (
    FileChanged,
    FileSyncError,
    FileVanished,
    LinkedPath,
    LocationBusy,
    LocationUnavailable,
)
from app.locations.base import Listing
from app.messages import shown
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
        #: The last full sync's listings, kept while nothing it did could have changed a
        #: location (no write, delete or conflict copy was tried, nothing failed or waited):
        #: :meth:`converged` then plans from them instead of reading every location again.
        #: Only kept while ``keep_listings`` (a start without watching, whose caller checks
        #: convergence next): a watching engine must not hold 100,000 entries while idle.
        self._quiet_listings: dict[str, Listing] | None = None
        self._disturbed = False
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
            paths = self._all_paths(listings)
            return all_in_step(paths, listings, self.slots) or all(
                in_step(path, listings, self.slots) or self._plan(path, listings).is_noop
                for path in paths
            )

    def _all_paths(self, listings: dict[str, Listing]) -> list[str]:
        """Every path a listed location holds or its index row knows, ignored ones left out.

        Listings may hold ignored paths (only their folders are pruned); each distinct path
        is checked against the rules once, not once per location. Where every location and
        its index rows hold the same paths (a restart with nothing changed, a first run over
        identical trees) no union is built: for 100,000 files that set alone costs 12 MB.
        """
        ignored = self.ignore.ignored
        names = [d for key, listing in listings.items() for d in (listing, self.slots[key].known)]
        widest = max(names, key=len, default={})
        if all(not d or d.keys() == widest.keys() for d in names):  # a tree in step: no union
            return sorted(p for p in widest if not ignored(p))
        paths: set[str] = set()
        for d in names:
            paths.update(d)
        return sorted(p for p in paths if not ignored(p))

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
        self._quiet_listings, self._disturbed = None, False
        listings, paths = self.read_all(allow_mass_delete)
        for key in listings:  # what a stalled location missed is covered by this sync
            self.slots[key].needs_full = False
            self.slots[key].parked = set()
            self.slots[key].late_stats = {}
        progress = Progress(reason, len(paths), log)
        self._apply_all(paths, listings, progress)
        progress.finish(self.applier.files_copied, self.applier.bytes_copied)
        for key in listings:
            slot = self.slots[key]
            if slot.available:
                self.index.mark_known(key)
                slot.mark_ok()
        self.index.commit()
        if self.keep_listings and not self._disturbed:
            self._quiet_listings = listings

    def read_all(self, allow_mass_delete: bool = False) -> tuple[dict[str, Listing], list[str]]:
        """What a full sync plans from: every available location's listing and every path.

        Holds the deletes of a location that lost too many files at once (mass-delete guard).
        Reads only, so a dry run (:mod:`app.engine.preview`) uses it too.
        """
        self.load_ignore_files()
        listings = self.reader.scan_all(self.ignore)
        for key, listing in listings.items():
            slot = self.slots[key]
            missing = [
                p
                for p in slot.known.keys() - listing.keys()
                if not self.ignore.ignored(p) and not self.links.holds(key, p)
            ]
            slot.held_deletes = set()
            self._guard_mass_delete(slot, missing, allow_mass_delete)
        return listings, self._all_paths(listings)

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
        self._park(paths)
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
        for start in range(0, len(paths), COMMIT_EVERY):
            end = min(start + COMMIT_EVERY, len(paths))
            if all_in_step(paths[start:end], listings, self.slots):  # no planning, no batch
                self._check_stop()
                self.settle.forget(paths[start:end])
                if progress is not None:
                    progress.step(end, self.applier.files_copied, self.applier.bytes_copied)
                continue
            # Each chunk is its own batch, committed only after the batch has landed: a ZIP
            # archive writes its staged members at batch exit, and an index row saved before
            # its file would make a crash look like a delete.
            self.applier.landing.begin(list(listings))
            with contextlib.ExitStack() as stack:
                for key in listings:
                    slot = self.slots[key]
                    unlanded = partial(self._unlanded, slot)
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
                            self._copies_failed(groups.send_due(self.slots), listings)
                        if progress is not None:
                            copied = self.applier.files_copied
                            progress.step(n + 1, copied, self.applier.bytes_copied)
                    # Every copy of the chunk is on disk (or failed) before its rows count.
                    self._copies_failed(groups.finish(self.slots), listings)
                except BaseException:
                    groups.abandon()
                    raise
            for key in listings:
                self.applier.landing.landed(key)
            if progress is not None:
                self.index.commit()
        for slot in slots:
            slot.pending = 0
        if follow_ups:
            self.sync_paths(set(follow_ups), "conflict copies")

    def _unlanded(self, slot: Slot, exc: Exception) -> None:
        """``slot``'s batch may not have landed: its rows go back, its paths are synced again."""
        self._disturbed = True
        paths = self.applier.landing.revert(slot, self.index)
        if not paths:
            return
        for path in paths:
            self._mark_behind(slot, path)
        if isinstance(exc, LocationBusy):
            slot.parked.update(paths)
            return
        log.warning("%s; %d changes there will be tried again", exc, len(paths))
        self.record("error", "", slot.location.name, str(exc))
        for path in paths:
            self.retries.later([slot.key], path, RETRY_FAILED_PATH_AFTER)

    def _check_stop(self) -> None:
        if self.stopping.is_set():
            raise SyncStopped("stopping")

    def _apply_one(self, path: str, listings: dict[str, Listing]) -> list[str]:
        sides = self.sides.of(path, listings)
        try:
            if self._still_written(path, sides):
                self._disturbed = True
                return []
            decision = self.sides.decide(path, sides)
            if decision.copy_to or decision.delete_in or decision.conflicts:
                self._disturbed = True  # a location may change: --once reads them all again
            for key, side in sides.items():  # learn a tag the index did not have yet
                current = side.current
                if current is not None and current != side.indexed and side.state is UNCHANGED:
                    self.applier.put(self.slots[key], path, current)
            applied = Applied()
            if not decision.is_noop:
                applied = self.applier.apply(path, decision, self.slots, sides)
                self._remember_missed(path, sides)
            for key, exc in applied.failed.items():
                self._target_failed(key, path, exc, listings)
            # Every location in this decision has caught up on the path, unless all of them
            # were behind on it (the ones that knew better were not part of it).
            informed = any(path not in self.slots[k].stale for k in sides)
            for key in sides:
                if key in applied.failed or not informed:
                    continue
                pending = applied.deferred.get(key)
                if pending is not None:  # caught up once its copy landed
                    pending.caught_up = partial(self._caught_up, key, path)
                else:
                    self._caught_up(key, path)
            return applied.follow_ups
        except (FileSyncError, OSError) as exc:
            self._path_failed(path, exc, listings)
        return []

    def _caught_up(self, key: str, path: str) -> None:
        """``key`` holds the latest version of ``path`` now."""
        slot = self.slots[key]
        slot.clear_failed(path)
        if path in slot.stale:
            slot.stale.discard(path)
            self.index.clear_stale(key, path)

    def _copies_failed(self, failed: list[CopyFailed], listings: dict[str, Listing]) -> None:
        """Copies of a group that did not land, each handled as a copy failing on its own."""
        for copy in failed:
            slot = self.slots[copy.key]
            exc = copy.error
            if copy.source_failed or isinstance(exc, FileChanged):
                self._path_failed(copy.path, exc, listings)
            elif isinstance(exc, LocationUnavailable | LocationBusy):
                self._target_failed(copy.key, copy.path, exc, listings)
            else:
                why = target_failed("write", copy.path, slot.location.name, exc)
                self._target_failed(copy.key, copy.path, why, listings)

    def _path_failed(
        self, path: str, exc: FileSyncError | OSError, listings: dict[str, Listing]
    ) -> None:
        """Syncing ``path`` failed for every location: plan it again later (or at once)."""
        if isinstance(exc, LocationBusy):  # comparing contents: a location stopped answering
            self._park({path})
        elif isinstance(exc, LocationUnavailable):  # the source, or a location compared
            slot = self.slots.get(exc.key or "")
            if slot is not None:
                slot.fail(exc, path)
                listings.pop(slot.key, None)
            else:
                log.error("%s", exc)
                self.record("error", path, exc.location or "", str(exc))
        elif isinstance(exc, FileVanished):
            log.debug("%s vanished while syncing; its own event will follow", shown(path))
        elif isinstance(exc, LinkedPath):  # a link appeared since the stat: hold the path there
            slot = self.slots.get(exc.key or "")
            if slot is not None:
                self.links.refresh(slot, self.ignore)
            self.retries.later(listings, path, self.debounce)
        elif isinstance(exc, FileChanged):
            log.info("%s changed while it was being synced; planning it again", shown(path))
            self.retries.later(listings, path, self.debounce)
        else:
            log.warning("cannot sync %s now (%s); will retry", shown(path), exc)
            self.record("error", path, "", str(exc))
            self.retries.later(listings, path, RETRY_FAILED_PATH_AFTER)
        self._disturbed = True  # the path is planned again later: --once reads everything again

    def _target_failed(
        self, key: str, path: str, exc: FileSyncError, listings: dict[str, Listing]
    ) -> None:
        """Only ``key`` missed this change: it is marked behind on ``path`` and retried."""
        self._disturbed = True
        slot = self.slots[key]
        self._mark_behind(slot, path)
        if isinstance(exc, LocationBusy):
            slot.parked.add(path)
            return
        if isinstance(exc, LocationUnavailable):
            slot.fail(exc, path)
            listings.pop(key, None)
            return
        self.record("error", path, slot.location.name, str(exc))
        attempts = slot.mark_failed(path, str(exc))
        if attempts == 1:
            log.warning("%s", exc)
        self.retries.later([key], path, retry_delay(attempts))

    def _park(self, paths: Iterable[str]) -> None:
        """Remember ``paths`` for every reachable location that is not answering now."""
        for slot in self.slots.values():
            if slot.available and slot.worker.stalled:
                slot.parked.update(paths)

    def _still_written(self, path: str, sides: dict[str, Side]) -> bool:
        """True when a copy of ``path`` is still being written: plan it again later instead."""
        parking = self.settle.check(path, sides, self.slots)
        if parking.recheck is not None and sides:
            self.retries.later([next(iter(sides))], path, parking.recheck)
        return parking.hold

    def _remember_missed(self, path: str, sides: dict[str, Side]) -> None:
        """Mark ``path`` stale for every location that was not part of this decision."""
        for slot in self.slots.values():
            if slot.key not in sides and self.names.holds(slot, path):
                self._mark_behind(slot, path)

    def _mark_behind(self, slot: Slot, path: str) -> None:
        """``slot`` missed the latest change of ``path`` (kept in the state index)."""
        if path not in slot.stale:
            slot.stale.add(path)
            self.index.mark_stale(slot.key, path)
