"""Syncing paths: scan or stat the locations, plan each path, apply, keep the index in step.

The engine thread owns a :class:`Syncer` and calls it for the initial and periodic full syncs
and for every batch of changes; nothing here runs on another thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from functools import partial

from app.engine import calls
from app.engine.apply import Applied, Applier
from app.engine.failures import retry_delay
from app.engine.ignore import IgnoreRules
from app.engine.index import StateIndex
from app.engine.links import HeldLinks
from app.engine.namegate import NameGate
from app.engine.plan import Decision, Side, SideState, plan_path
from app.engine.progress import Progress
from app.engine.settle import SETTLE_BOUND, SettleGate
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
    MassDeleteHeld,
)
from app.locations.base import IGNORE_FILE, FileMeta, Listing
from app.messages import shown
from app.watch.change import Change, ChangeKind

log = logging.getLogger(__name__)
UNCHANGED = SideState.UNCHANGED

#: A scan may miss this many indexed files before the mass-delete guard looks at the ratio.
MASS_DELETE_MIN = 5
#: A path that failed for a reason other than a vanished location is tried again after this.
RETRY_FAILED_PATH_AFTER = 5.0
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
        self.retry_paths: dict[tuple[str, str], float] = {}
        self.settle = SettleGate(settle_bound)
        self.links = HeldLinks(record)
        self.names = NameGate(record)

    def retry_later(self, changes: Iterable[Change]) -> None:
        """Plan these changes' paths again after a pause (their batch failed unexpectedly)."""
        when = time.monotonic() + RETRY_FAILED_PATH_AFTER
        for change in changes:
            for path in (change.path, change.dest):
                if path:
                    self.retry_paths[(change.location, path)] = when

    def load_ignore_files(self) -> None:
        """Merge ``--ignore`` patterns with every available root's ``.filesyncignore``."""
        patterns: list[str] = list(self.base_ignore)
        for slot in self.available():
            try:
                patterns += slot.run(
                    partial(calls.read_ignore_file, slot.location), self.io.deadline
                )
            except FileVanished:
                continue
            except LocationBusy:
                slot.needs_full = True  # its patterns count again once it answers
            except (FileSyncError, OSError) as exc:
                log.warning("cannot read %s: %s", IGNORE_FILE, exc)
        self.ignore = IgnoreRules(patterns)

    def converged(self) -> bool:
        """Rescan everything and report whether all locations hold the same files."""
        if any(not s.ready or s.held_deletes for s in self.slots.values()):
            return False
        with self.io.patient():
            listings = self._scan_all()
            paths = self._all_paths(listings)
            return all(self._plan(path, listings).is_noop for path in paths)

    def available(self) -> list[Slot]:
        """The locations that can be read and written now (reachable, and answering)."""
        return [s for s in self.slots.values() if s.ready]

    def _scan_all(self) -> dict[str, Listing]:
        """Scan every ready location, all at once on their workers.

        A location that does not answer in time is left out (it is caught up with a full sync
        once it answers, using the scan it was busy with).
        """
        listings: dict[str, Listing] = {}
        started: dict[str, Future[Listing]] = {}
        for slot in self.slots.values():
            if slot.available and slot.worker.stalled:
                slot.needs_full = True
        for slot in self.available():
            self._check_stop()
            if slot.late_listing is not None:
                listings[slot.key], slot.late_listing = slot.late_listing, None
                self.links.refresh(slot, self.ignore)
            else:
                started[slot.key] = slot.worker.start(partial(calls.scan, slot.location))
        for key, future in started.items():
            slot = self.slots[key]
            try:
                late = partial(calls.keep_late_listing, slot)
                listings[key] = slot.worker.finish(future, self.io.deadline, late)
                self.links.refresh(slot, self.ignore)
            except LocationBusy as exc:
                slot.mark_stalled(exc)
                slot.needs_full = True
            except FileSyncError as exc:
                slot.mark_unavailable(str(exc))
                log.error("%s", exc)
                self.record("error", "", slot.location.name, str(exc))
        return {
            key: {p: m for p, m in listing.items() if not self.ignore.ignored(p)}
            for key, listing in listings.items()
        }

    def _all_paths(self, listings: dict[str, Listing]) -> list[str]:
        paths: set[str] = set()
        for key, listing in listings.items():
            paths.update(listing)
            paths.update(p for p in self.slots[key].index if not self.ignore.ignored(p))
        return sorted(paths)

    def _guard_mass_delete(
        self, slot: Slot, missing: Iterable[str], allow: bool, detail: str = ""
    ) -> set[str]:
        """Return the deletes to hold for ``slot`` (empty when they may proceed)."""
        missing = set(missing)
        if allow or self.allow_mass_delete_always:
            return set()
        threshold = max(MASS_DELETE_MIN, len(slot.index) // 2)
        if len(missing) <= threshold:
            return set()
        error = MassDeleteHeld(
            f"{len(missing)} of {len(slot.index)} files vanished at once{detail}; their deletes "
            "are held. If that was intended, run again with --allow-mass-delete",
            location=slot.location.name,
        )
        if not missing <= slot.held_deletes:
            log.error("%s", error)
            self.record("held", "", slot.location.name, str(error))
        slot.held_deletes |= missing
        slot.state = LocationState.ERROR
        slot.error = str(error)
        return missing

    def full_sync(self, reason: str, allow_mass_delete: bool = False) -> None:
        """Scan every available location and bring them all to the same state.

        Used at start-up, every ``rescan_interval``, when a location comes back and on "Sync
        now". Re-reads the ``.filesyncignore`` files first, so edits to them take effect.
        """
        self.load_ignore_files()
        listings = self._scan_all()
        for key, listing in listings.items():
            slot = self.slots[key]
            missing = [
                p
                for p in slot.index
                if p not in listing and not self.ignore.ignored(p) and not self.links.holds(key, p)
            ]
            slot.held_deletes = set()
            self._guard_mass_delete(slot, missing, allow_mass_delete)
        for key in listings:  # what a stalled location missed is covered by this sync
            self.slots[key].needs_full = False
            self.slots[key].parked = set()
            self.slots[key].late_stats = {}
        paths = self._all_paths(listings)
        progress = Progress(reason, len(paths), log)
        self._apply_all(paths, listings, progress)
        progress.finish(self.applier.files_copied, self.applier.bytes_copied)
        for key in listings:
            slot = self.slots[key]
            if slot.available:
                self.index.mark_known(key)
                slot.mark_ok()
        self.index.commit()

    def sync_changes(self, changes: list[Change]) -> None:
        """Sync the paths a batch of watcher changes touched (renames first, as renames)."""
        paths: set[str] = set()
        scan_deletes: dict[str, set[str]] = {}
        for change in changes:
            slot = self.slots.get(change.location)
            if slot is None or not slot.available:
                continue
            if change.kind is ChangeKind.MOVED:
                self._propagate_rename(slot, change.path, change.dest)
                paths.update((change.path, change.dest))
            elif change.kind is ChangeKind.MOVED_TREE:
                paths.update(self._propagate_tree_rename(slot, change.path, change.dest))
            elif change.kind is ChangeKind.TREE:
                paths.update(self._expand_tree(slot, change.path))
            elif change.kind is ChangeKind.FILE:
                paths.add(change.path)
                if change.from_scan and change.path in slot.index:
                    scan_deletes.setdefault(slot.key, set()).add(change.path)
        self.sync_paths(paths, "changes", scan_deletes)

    def _expand_tree(self, slot: Slot, prefix: str) -> set[str]:
        found = {p for p in slot.index if p.startswith(prefix + "/")}
        try:
            found.update(slot.run(partial(slot.location.scan, prefix), self.io.deadline))
        except LocationBusy:
            slot.needs_full = True
        except (FileSyncError, OSError) as exc:
            log.debug("scan of %s failed: %s", shown(prefix), exc)
        return found

    def sync_paths(
        self, paths: set[str], reason: str, scan_deletes: dict[str, set[str]] | None = None
    ) -> None:
        """Stat ``paths`` in every available location and plan each one.

        ``scan_deletes`` are deletes a poller inferred by comparing two listings; only those
        go through the mass-delete guard, because an empty listing from a flaky server looks
        exactly like "everything deleted". Deletes the OS reported (``rm -rf`` in a watched
        folder) are real and propagate at once.
        """
        paths = {p for p in paths if p and not self.ignore.ignored(p)}
        if not paths:
            return
        listings: dict[str, Listing] = {}
        wanted = sorted(paths)
        known: dict[str, dict[str, FileMeta | None]] = {}
        started: dict[str, Future[dict[str, FileMeta | None]]] = {}
        for slot in self.available():  # a stat that answered late still counts: no livelock
            known[slot.key] = {p: slot.late_stats.pop(p) for p in wanted if p in slot.late_stats}
            rest = [p for p in wanted if p not in known[slot.key] and self.names.holds(slot, p)]
            started[slot.key] = slot.worker.start(partial(calls.stat, slot.location, rest))
        for key, future in started.items():
            slot = self.slots[key]
            late = partial(calls.keep_late_stats, slot)
            try:
                fresh: dict[str, FileMeta | None] = slot.worker.finish(
                    future, self.io.deadline, late
                )
                stats = known[key] | fresh
            except LocationBusy as exc:
                slot.mark_stalled(exc)
                continue
            except (FileSyncError, OSError) as exc:
                log.error("%s", exc)
                slot.mark_unavailable(str(exc))
                self.record("error", "", slot.location.name, str(exc))
                continue
            self.links.refresh(slot, self.ignore)
            listing = {p: m for p, m in stats.items() if m is not None}
            candidates = (scan_deletes or {}).get(slot.key, set())
            vanished = {
                p for p in candidates if p not in listing and not self.links.holds(slot.key, p)
            }
            self._guard_mass_delete(slot, vanished, False, " in one poll")
            listings[slot.key] = listing
        self._park(paths)
        self._apply_all(sorted(paths), listings, None)
        for key in listings:
            slot = self.slots[key]
            if slot.available and slot.state is LocationState.SYNCING:
                slot.mark_ok()
            elif slot.available:
                slot.last_sync = time.time()

    def _plan(self, path: str, listings: dict[str, Listing]) -> Decision:
        return self._decide(path, self._sides(path, listings))

    def _decide(self, path: str, sides: dict[str, Side]) -> Decision:
        """The planner's decision for ``path`` given these sides (may compare file bytes)."""
        stale = frozenset(k for k in sides if path in self.slots[k].stale)
        same = self.applier.same_content(self.slots, path)
        return plan_path(list(sides.values()), same, stale)

    def _sides(self, path: str, listings: dict[str, Listing]) -> dict[str, Side]:
        """Each location's view of ``path``; a location holding its delete, or holding the
        path behind a symbolic link, has no say."""
        sides = {}
        for key, listing in listings.items():
            slot = self.slots[key]
            if (
                path in slot.held_deletes
                or self.links.holds(key, path)
                or not self.names.holds(slot, path)
            ):
                continue
            caps = slot.location.capabilities
            sides[key] = Side(
                key,
                listing.get(path),
                slot.index.get(path),
                caps.mtime_precision_ns,
                caps.can_set_mtime,
            )
        return sides

    def _apply_all(
        self, paths: list[str], listings: dict[str, Listing], progress: Progress | None
    ) -> None:
        if len(listings) < 1:
            return
        follow_ups: list[str] = []
        slots = [self.slots[key] for key in listings]
        for start in range(0, len(paths), COMMIT_EVERY):
            # Each chunk is its own batch, committed only after the batch has landed: a ZIP
            # archive writes its staged members at batch exit, and an index row saved before
            # its file would make a crash look like a delete.
            self.applier.landing.begin(list(listings))
            with contextlib.ExitStack() as stack:
                for key in listings:
                    slot = self.slots[key]
                    unlanded = partial(self._unlanded, slot)
                    stack.enter_context(calls.batch(slot, self.io.deadline, unlanded))
                for n in range(start, min(start + COMMIT_EVERY, len(paths))):
                    self._check_stop()  # what landed so far is recorded; stop() commits it
                    if n % 100 == 0:
                        for slot in slots:
                            slot.pending = len(paths) - n
                    follow_ups += self._apply_one(paths[n], listings)
                    if progress is not None:
                        progress.step(n + 1, self.applier.files_copied, self.applier.bytes_copied)
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
        paths = self.applier.landing.revert(slot, self.index)
        if not paths:
            return
        for path in paths:
            if path not in slot.stale:
                slot.stale.add(path)
                self.index.mark_stale(slot.key, path)
        if isinstance(exc, LocationBusy):
            slot.parked.update(paths)
            return
        log.warning("%s; %d changes there will be tried again", exc, len(paths))
        self.record("error", "", slot.location.name, str(exc))
        when = time.monotonic() + RETRY_FAILED_PATH_AFTER
        for path in paths:
            self.retry_paths[(slot.key, path)] = when

    def _check_stop(self) -> None:
        if self.stopping.is_set():
            raise SyncStopped("stopping")

    def _apply_one(self, path: str, listings: dict[str, Listing]) -> list[str]:
        sides = self._sides(path, listings)
        try:
            if self._still_written(path, sides):
                return []
            decision = self._decide(path, sides)
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
                caught_up = self.slots[key]
                caught_up.clear_failed(path)
                if path in caught_up.stale:
                    caught_up.stale.discard(path)
                    self.index.clear_stale(key, path)
            return applied.follow_ups
        except LocationBusy:  # comparing contents: a location stopped answering
            self._park({path})
        except LocationUnavailable as exc:
            slot = self.slots.get(exc.location or "") or self._slot_by_name(exc.location)
            if slot is not None:
                slot.mark_unavailable(str(exc))
                listings.pop(slot.key, None)
            log.error("%s", exc)
            self.record("error", path, exc.location or "", str(exc))
        except FileVanished:
            log.debug("%s vanished while syncing; its own event will follow", shown(path))
        except LinkedPath as exc:  # a link appeared since the stat: hold the path there
            slot = self._slot_by_name(exc.location)
            if slot is not None:
                self.links.refresh(slot, self.ignore)
            for key in listings:
                self.retry_paths[(key, path)] = time.monotonic() + self.debounce
        except FileChanged:
            log.info("%s changed while it was being synced; planning it again", shown(path))
            for key in listings:
                self.retry_paths[(key, path)] = time.monotonic() + self.debounce
        except (FileSyncError, OSError) as exc:
            log.warning("cannot sync %s now (%s); will retry", shown(path), exc)
            self.record("error", path, "", str(exc))
            for key in listings:
                self.retry_paths[(key, path)] = time.monotonic() + RETRY_FAILED_PATH_AFTER
        return []

    def _target_failed(
        self, key: str, path: str, exc: FileSyncError, listings: dict[str, Listing]
    ) -> None:
        """Only ``key`` missed this change: it is marked behind on ``path`` and retried."""
        slot = self.slots[key]
        if path not in slot.stale:
            slot.stale.add(path)
            self.index.mark_stale(key, path)
        if isinstance(exc, LocationBusy):
            slot.parked.add(path)
            return
        self.record("error", path, slot.location.name, str(exc))
        if isinstance(exc, LocationUnavailable):
            log.error("%s", exc)
            slot.mark_unavailable(str(exc))
            listings.pop(key, None)
            return
        attempts = slot.mark_failed(path, str(exc))
        if attempts == 1:
            log.warning("%s", exc)
        self.retry_paths[(key, path)] = time.monotonic() + retry_delay(attempts)

    def _park(self, paths: Iterable[str]) -> None:
        """Remember ``paths`` for every reachable location that is not answering now."""
        for slot in self.slots.values():
            if slot.available and slot.worker.stalled:
                slot.parked.update(paths)

    def _still_written(self, path: str, sides: dict[str, Side]) -> bool:
        """True when a copy of ``path`` is still being written: plan it again later instead."""
        parking = self.settle.check(path, sides, self.slots)
        if parking.recheck is not None and sides:
            self.retry_paths[(next(iter(sides)), path)] = time.monotonic() + parking.recheck
        return parking.hold

    def _remember_missed(self, path: str, sides: dict[str, Side]) -> None:
        """Mark ``path`` stale for every location that was not part of this decision."""
        for slot in self.slots.values():
            if slot.key not in sides and path not in slot.stale and self.names.holds(slot, path):
                slot.stale.add(path)
                self.index.mark_stale(slot.key, path)

    def _slot_by_name(self, name: str | None) -> Slot | None:
        for slot in self.slots.values():
            if slot.location.name == name:
                return slot
        return None

    def _propagate_rename(self, origin: Slot, src: str, dst: str) -> None:
        """Rename in the other locations instead of re-copying, where that is safe."""
        if self.ignore.ignored(src) or self.ignore.ignored(dst):
            return
        old = origin.index.get(src)
        deadline = self.io.deadline
        try:
            moved = origin.run(partial(calls.moved_here, origin.location, src, dst, old), deadline)
            if moved is None:
                return  # not a plain rename of a synced file: the planner handles it
            everywhere = True
            for slot in self.available():
                if slot is origin:
                    continue
                indexed = slot.index.get(src)
                if (
                    not self.names.holds(slot, src)
                    or not self.names.holds(slot, dst)
                    or not slot.location.capabilities.can_rename
                    or indexed is None
                    or self.links.holds(slot.key, src)
                    or self.links.holds(slot.key, dst)
                ):
                    everywhere = False  # the planner copies and deletes there instead
                    continue
                rename = partial(calls.rename_if_unchanged, slot.location, src, dst, indexed)
                try:
                    meta = slot.run(rename, deadline, partial(self._late_rename, slot, src, dst))
                except (FileSyncError, OSError) as exc:
                    log.info(
                        "rename %s -> %s not done in %s (%s)", shown(src), shown(dst), slot.key, exc
                    )
                    meta = None
                if meta is None:
                    everywhere = False
                    continue
                self._renamed(slot, src, dst, meta)
            if everywhere:
                self._move_row(origin, src, dst, moved)
        except (FileSyncError, OSError) as exc:
            log.info(
                "rename %s -> %s not propagated (%s); copying instead", shown(src), shown(dst), exc
            )

    def _propagate_tree_rename(self, origin: Slot, src: str, dst: str) -> set[str]:
        """A folder moved: rename each file it held in the other locations; return the paths
        to plan (both trees), so whatever could not be renamed is copied and deleted."""
        moved = sorted(p for p in origin.index if p.startswith(src + "/"))
        for old in moved:
            self._propagate_rename(origin, old, dst + old[len(src) :])
        return set(moved) | self._expand_tree(origin, dst)

    def _renamed(self, slot: Slot, src: str, dst: str, meta: FileMeta) -> None:
        slot.renames += 1
        self._move_row(slot, src, dst, meta)
        self.record("renamed", dst, slot.location.name, f"from {shown(src)}")

    def _late_rename(self, slot: Slot, src: str, dst: str, future: Future[FileMeta | None]) -> None:
        """A rename that missed its deadline ended: record it if it happened."""
        meta = future.result() if future.exception() is None else None
        if meta is not None:
            self._renamed(slot, src, dst, meta)

    def _move_row(self, slot: Slot, src: str, dst: str, meta: FileMeta) -> None:
        self.applier.drop(slot, src)
        self.applier.put(slot, dst, meta)
