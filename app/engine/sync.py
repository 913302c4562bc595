"""Syncing paths: read the locations, plan each path, apply, keep the state index in step.

The engine thread owns a :class:`Syncer` and calls it for the initial and periodic full syncs
and for every batch of changes; nothing here runs on another thread. Reading is
:mod:`app.engine.reading`, deciding :mod:`app.engine.plan`, doing :mod:`app.engine.apply`,
renames :mod:`app.engine.renames`, planning and applying a list of paths chunk by chunk
:mod:`app.engine.chunks`; this module runs them in order, and :mod:`app.engine.outcomes` decides
what to try again when a path or a location fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from app.engine.apply import Applier
from app.engine.chunks import Chunks
from app.engine.fastpath import all_in_step, every_location_in_step, in_step
from app.engine.ignore import IgnoreRules
from app.engine.index import StateIndex
from app.engine.links import HeldLinks
from app.engine.massdelete import guard_mass_delete
from app.engine.namegate import NameGate
from app.engine.outcomes import Outcomes
from app.engine.plan import Decision
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
from app.locations.base import Listing
from app.watch.change import Change, ChangeKind

log = logging.getLogger(__name__)


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
        self.chunks = Chunks(
            slots,
            index,
            self.io,
            applier=self.applier,
            sides=self.sides,
            outcomes=self.outcomes,
            settle=self.settle,
            retries=self.retries,
            links=self.links,
            names=self.names,
            stopping=self.stopping,
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

    def _check_stop(self) -> None:
        if self.stopping.is_set():
            raise SyncStopped("stopping")

    def _apply_all(
        self, paths: list[str], listings: dict[str, Listing], progress: Progress | None
    ) -> None:
        follow_ups = self.chunks.apply(paths, listings, progress)
        if follow_ups:
            self.sync_paths(set(follow_ups), "conflict copies")
