"""The sync engine: the single consumer of the change queue, and the owner of all I/O.

Threads (decided once): every watcher runs its own thread(s) and only puts records on the
:class:`ChangeQueue`; one engine thread takes batches from it, re-reads the truth from each
location, asks :mod:`app.engine.plan` what to do and has :mod:`app.engine.apply` do it. The
public methods below are safe to call from any thread: they either read a snapshot under a lock
or post a command to the queue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from app.engine.apply import Applier
from app.engine.ignore import IgnoreRules
from app.engine.index import StateIndex
from app.engine.plan import Decision, Side, plan_path
from app.engine.progress import Progress
from app.engine.queue import ChangeQueue
from app.engine.slot import Slot
from app.engine.status import Activity, EngineStatus, LocationState
from app.errors import (
    FileChanged,
    FileSyncError,
    FileVanished,
    LocationUnavailable,
    MassDeleteHeld,
)
from app.locations.base import IGNORE_FILE, FileMeta, Listing, Location
from app.watch.change import Change, ChangeKind

log = logging.getLogger(__name__)

#: A scan may miss this many indexed files before the mass-delete guard looks at the ratio.
MASS_DELETE_MIN = 5
RETRY_FAILED_PATH_AFTER = 5.0


@dataclass(frozen=True)
class EngineSettings:
    """Tunables; the defaults are what a user gets."""

    debounce: float = 0.05
    poll_interval: float = 2.0
    rescan_interval: float = 900.0
    ignore: tuple[str, ...] = ()
    allow_mass_delete: bool = False


class Engine:
    """Keeps a set of locations identical. See the module docstring for the threading model."""

    def __init__(
        self,
        locations: Sequence[Location],
        index: StateIndex,
        settings: EngineSettings | None = None,
    ) -> None:
        self.settings = settings or EngineSettings()
        self.index = index
        self.queue = ChangeQueue(debounce=self.settings.debounce)
        self._slots: dict[str, Slot] = {}
        for loc in locations:
            if loc.key in self._slots:
                raise FileSyncError(f"{loc.name} is listed twice")
            self._slots[loc.key] = Slot(loc)
        self._lock = threading.RLock()
        self._activity: deque[Activity] = deque(maxlen=200)
        self._listeners: list[Callable[[Activity], None]] = []
        self._applier = Applier(index, self._record)
        self._ignore = IgnoreRules(self.settings.ignore)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._paused = False
        self._busy = False
        self._next_rescan = 0.0
        self._retry_paths: dict[tuple[str, str], float] = {}
        self.batches = 0

    # ----- public API (any thread) -------------------------------------------------------

    def start(self, watch: bool = True) -> None:
        """Open every location, start watchers, run the initial sync, then watch.

        Watchers start BEFORE the initial scan, so nothing changed during the scan is missed.
        Blocks until the initial sync is done; locations that cannot be opened are reported
        unavailable and retried in the background.
        """
        for slot in self._slots.values():
            self._open_slot(slot, watch)
        self._load_ignore_files()
        self._full_sync("initial sync")
        self._next_rescan = time.monotonic() + self.settings.rescan_interval
        if watch:
            self._thread = threading.Thread(target=self._run, name="filesync-engine", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watchers and the engine thread, commit the index, close locations."""
        self._stopping.set()
        self.queue.put(lambda: None)  # wake the engine thread
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for slot in list(self._slots.values()):
            self._close_slot(slot)
        self.index.commit()

    def run_once(self) -> bool:
        """Initial sync only (``--once``). True when every location ended up identical."""
        self.start(watch=False)
        converged = self.converged()
        self.stop()
        return converged

    def converged(self) -> bool:
        """Rescan everything and report whether all locations hold the same files."""
        with self._lock:
            if any(not s.available or s.held_deletes for s in self._slots.values()):
                return False
            listings = self._scan_all()
            return all(self._plan(path, listings).is_noop for path in self._all_paths(listings))

    def status(self) -> EngineStatus:
        """A consistent snapshot for the front ends."""
        with self._lock:
            rows = tuple(s.snapshot() for s in self._slots.values())
            last = [r.last_sync for r in rows if r.last_sync]
            return EngineStatus(
                locations=rows,
                activity=tuple(self._activity),
                paused=self._paused,
                syncing=self._busy,
                pending=self.queue.qsize(),
                last_sync=max(last) if last else None,
            )

    def writes(self, key: str) -> int:
        """How many files the engine wrote into location ``key`` (for tests and benches)."""
        return self._slots[key].writes

    def add_listener(self, callback: Callable[[Activity], None]) -> None:
        """Call ``callback`` (from the engine thread) for every activity record."""
        self._listeners.append(callback)

    def add_location(self, location: Location) -> None:
        """Add a location to the running engine; it gets an initial sync, no restart."""

        def command() -> None:
            if location.key in self._slots:
                raise FileSyncError(f"{location.name} is already synced")
            slot = Slot(location)
            with self._lock:
                self._slots[location.key] = slot
            self._open_slot(slot, watch=True)
            self._load_ignore_files()
            self._full_sync(f"adding {location.name}")

        self.queue.put(command)

    def remove_location(self, key: str) -> None:
        """Stop syncing a location and forget its history (its files are left alone)."""

        def command() -> None:
            slot = self._slots.get(key)
            if slot is None:
                return
            self._close_slot(slot)
            with self._lock:
                del self._slots[key]
            self.index.forget_location(key)
            self.index.commit()

        self.queue.put(command)

    def pause(self) -> None:
        """Stop applying changes; watchers keep collecting. Resume rescans everything."""
        self._paused = True

    def resume(self) -> None:
        """Resume after :meth:`pause` with a full sync, so nothing seen meanwhile is lost."""
        self._paused = False
        self.sync_now()

    def sync_now(self) -> None:
        """Full rescan of every location now (also retries unavailable ones)."""

        def command() -> None:
            for slot in self._slots.values():
                if not slot.available:
                    slot.next_retry = 0.0
            self._retry_unavailable()
            self._full_sync("sync")

        self.queue.put(command)

    def allow_mass_delete(self, key: str | None = None) -> None:
        """Confirm held deletes of one location (or all) and apply them."""

        def command() -> None:
            for slot in self._slots.values():
                if key in (None, slot.key):
                    slot.held_deletes.clear()
            self._full_sync("confirmed deletes", allow_mass_delete=True)

        self.queue.put(command)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until everything queued so far has been processed (tests, benches)."""
        return self.queue.wait_idle(timeout)

    # ----- engine thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch = self.queue.next_batch(timeout=self._seconds_to_next_timer())
            if self._stopping.is_set():
                break
            self._busy = True
            try:
                self._handle(batch)
                self._timers()
            except Exception:  # the engine thread must survive anything a location throws
                log.exception("unexpected error while syncing; continuing")
            finally:
                self.index.commit()
                self._busy = False
                self.queue.mark_idle_if_empty()

    def _seconds_to_next_timer(self) -> float:
        now = time.monotonic()
        deadlines = [self._next_rescan]
        deadlines += [s.next_retry for s in self._slots.values() if not s.available]
        deadlines += list(self._retry_paths.values())
        return max(0.01, min(deadlines) - now)

    def _timers(self) -> None:
        now = time.monotonic()
        self._retry_unavailable()
        due = [kp for kp, t in self._retry_paths.items() if t <= now]
        if due and not self._paused:
            for kp in due:
                del self._retry_paths[kp]
            self._sync_paths({p for _, p in due}, "retry")
        if now >= self._next_rescan and not self._paused:
            self._next_rescan = now + self.settings.rescan_interval
            self._full_sync("periodic rescan")

    def _handle(self, batch: list[Change | Callable[[], None]]) -> None:
        changes: list[Change] = []
        for item in batch:
            if isinstance(item, Change):
                changes.append(item)
            else:
                try:
                    item()
                except FileSyncError as exc:
                    log.error("%s", exc)
                    self._record("error", "", "", str(exc))
        if not changes or self._paused:
            return
        self.batches += 1
        rescan = False
        for change in changes:
            slot = self._slots.get(change.location)
            if slot is None:
                continue
            if change.kind is ChangeKind.UNAVAILABLE:
                if slot.available:
                    slot.mark_unavailable(change.error)
                    self._record("error", "", slot.location.name, change.error)
            elif change.kind is ChangeKind.RESCAN:
                slot.state = LocationState.SYNCING
                rescan = True
        if rescan:
            self._full_sync("catching up")
            return
        self._sync_changes(changes)

    # ----- opening and closing -----------------------------------------------------------

    def _open_slot(self, slot: Slot, watch: bool) -> bool:
        """Open, adopt and watch a location; False (and marked unavailable) if that fails."""
        loc = slot.location
        try:
            loc.open()
            loc.adopt(self.index.has_history(loc.key))
            slot.index = self.index.load(loc.key)
            slot.stale = self.index.load_stale(loc.key)
            if watch and slot.watcher is None:
                slot.watcher = loc.watcher(self.queue.put, self.settings.poll_interval)
                slot.watcher.start()
            slot.state = LocationState.SYNCING
        except FileSyncError as exc:
            slot.index = self.index.load(loc.key)
            slot.stale = self.index.load_stale(loc.key)
            slot.mark_unavailable(str(exc))
            log.error("%s", exc)
            self._record("error", "", loc.name, str(exc))
            return False
        return True

    def _close_slot(self, slot: Slot) -> None:
        if slot.watcher is not None:
            slot.watcher.stop()
            slot.watcher = None
        with contextlib.suppress(Exception):
            slot.location.close()

    def _retry_unavailable(self) -> None:
        now = time.monotonic()
        back = False
        for slot in self._slots.values():
            if slot.available or slot.next_retry > now:
                continue
            if self._open_slot(slot, watch=self._thread is not None):
                log.info("%s is available again", slot.location.name)
                back = True
        if back:
            self._full_sync("catching up")

    def _load_ignore_files(self) -> None:
        patterns: list[str] = list(self.settings.ignore)
        for slot in self._available():
            try:
                with slot.location.open_read(IGNORE_FILE) as f:
                    patterns += f.read(1 << 20).decode("utf-8", "replace").splitlines()
            except FileVanished:
                continue
            except FileSyncError as exc:
                log.warning("cannot read %s: %s", IGNORE_FILE, exc)
        self._ignore = IgnoreRules(patterns)

    def _available(self) -> list[Slot]:
        return [s for s in self._slots.values() if s.available]

    # ----- syncing -----------------------------------------------------------------------

    def _scan_all(self) -> dict[str, Listing]:
        listings: dict[str, Listing] = {}
        for slot in self._available():
            try:
                slot.location.check_available()
                listings[slot.key] = {
                    p: m for p, m in slot.location.scan().items() if not self._ignore.ignored(p)
                }
            except FileSyncError as exc:
                slot.mark_unavailable(str(exc))
                log.error("%s", exc)
                self._record("error", "", slot.location.name, str(exc))
        return listings

    def _all_paths(self, listings: dict[str, Listing]) -> list[str]:
        paths: set[str] = set()
        for key, listing in listings.items():
            paths.update(listing)
            paths.update(p for p in self._slots[key].index if not self._ignore.ignored(p))
        return sorted(paths)

    def _guard_mass_delete(
        self, slot: Slot, missing: Iterable[str], allow: bool, detail: str = ""
    ) -> set[str]:
        """Return the deletes to hold for ``slot`` (empty when they may proceed)."""
        missing = set(missing)
        if allow or self.settings.allow_mass_delete:
            return set()
        threshold = max(MASS_DELETE_MIN, len(slot.index) // 2)
        if len(missing) <= threshold:
            return set()
        error = MassDeleteHeld(
            f"{len(missing)} of {len(slot.index)} files vanished at once{detail}; their deletes "
            "are held. If that was intended, run again with --allow-mass-delete",
            location=slot.location.name,
        )
        if slot.held_deletes != missing:
            log.error("%s", error)
            self._record("held", "", slot.location.name, str(error))
        slot.held_deletes = missing
        slot.state = LocationState.ERROR
        slot.error = str(error)
        return missing

    def _full_sync(self, reason: str, allow_mass_delete: bool = False) -> None:
        with self._lock:
            self._busy = True
        listings = self._scan_all()
        for key, listing in listings.items():
            slot = self._slots[key]
            missing = [p for p in slot.index if p not in listing and not self._ignore.ignored(p)]
            held = self._guard_mass_delete(slot, missing, allow_mass_delete)
            if not held:
                slot.held_deletes = set()
            for path in held:  # held files look unchanged, so nothing is deleted elsewhere
                listing[path] = slot.index[path]
        paths = self._all_paths(listings)
        progress = Progress(reason, len(paths), log)
        self._apply_all(paths, listings, progress)
        progress.finish(self._applier.files_copied, self._applier.bytes_copied)
        for key in listings:
            slot = self._slots[key]
            if slot.available:
                self.index.mark_known(key)
                slot.mark_ok()
        self.index.commit()

    def _sync_changes(self, changes: list[Change]) -> None:
        paths: set[str] = set()
        scan_deletes: dict[str, set[str]] = {}
        for change in changes:
            slot = self._slots.get(change.location)
            if slot is None or not slot.available:
                continue
            if change.kind is ChangeKind.MOVED:
                self._propagate_rename(slot, change.path, change.dest)
                paths.update((change.path, change.dest))
            elif change.kind is ChangeKind.TREE:
                paths.update(self._expand_tree(slot, change.path))
            elif change.kind is ChangeKind.FILE:
                paths.add(change.path)
                if change.from_scan and change.path in slot.index:
                    scan_deletes.setdefault(slot.key, set()).add(change.path)
        self._sync_paths(paths, "changes", scan_deletes)

    def _expand_tree(self, slot: Slot, prefix: str) -> set[str]:
        found = {p for p in slot.index if p.startswith(prefix + "/")}
        try:
            found.update(slot.location.scan(prefix))
        except FileSyncError as exc:
            log.debug("scan of %s failed: %s", prefix, exc)
        return found

    def _sync_paths(
        self, paths: set[str], reason: str, scan_deletes: dict[str, set[str]] | None = None
    ) -> None:
        paths = {p for p in paths if p and not self._ignore.ignored(p)}
        if not paths:
            return
        listings: dict[str, Listing] = {}
        for slot in self._available():
            try:
                slot.location.check_available()
                stats = slot.location.stat_many(sorted(paths))
            except FileSyncError as exc:
                slot.mark_unavailable(str(exc))
                self._record("error", "", slot.location.name, str(exc))
                continue
            listing = {p: m for p, m in stats.items() if m is not None}
            candidates = (scan_deletes or {}).get(slot.key, set())
            vanished = {p for p in candidates if p not in listing}
            held = self._guard_mass_delete(slot, vanished, False, " in one poll")
            for path in held | (slot.held_deletes & paths):
                if path in slot.index:
                    listing[path] = slot.index[path]
            listings[slot.key] = listing
        self._apply_all(sorted(paths), listings, None)
        for key in listings:
            slot = self._slots[key]
            if slot.available and slot.state is LocationState.SYNCING:
                slot.mark_ok()
            elif slot.available:
                slot.last_sync = time.time()

    def _plan(self, path: str, listings: dict[str, Listing]) -> Decision:
        sides = self._sides(path, listings)
        same = self._applier.same_content(self._slots, path)
        return plan_path(list(sides.values()), same, self._stale_keys(path, listings))

    def _sides(self, path: str, listings: dict[str, Listing]) -> dict[str, Side]:
        sides = {}
        for key, listing in listings.items():
            slot = self._slots[key]
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
        with contextlib.ExitStack() as stack:
            for key in listings:
                stack.enter_context(self._slots[key].location.batch())
            slots = [self._slots[key] for key in listings]
            for n, path in enumerate(paths):
                if n % 100 == 0:
                    for slot in slots:
                        slot.pending = len(paths) - n
                follow_ups += self._apply_one(path, listings)
                if progress is not None:
                    progress.step(n + 1, self._applier.files_copied, self._applier.bytes_copied)
                    if n % 2000 == 1999:
                        self.index.commit()
            for slot in slots:
                slot.pending = 0
        if follow_ups:
            self._sync_paths(set(follow_ups), "conflict copies")

    def _stale_keys(self, path: str, listings: dict[str, Listing]) -> frozenset[str]:
        return frozenset(k for k in listings if path in self._slots[k].stale)

    def _apply_one(self, path: str, listings: dict[str, Listing]) -> list[str]:
        sides = self._sides(path, listings)
        try:
            stale = self._stale_keys(path, listings)
            decision = plan_path(
                list(sides.values()), self._applier.same_content(self._slots, path), stale
            )
            follow_ups = []
            if not decision.is_noop:
                follow_ups = self._applier.apply(path, decision, self._slots, sides)
                self._remember_missed(path, listings)
            for key in stale:
                self._slots[key].stale.discard(path)
                self.index.clear_stale(key, path)
            return follow_ups
        except LocationUnavailable as exc:
            slot = self._slots.get(exc.location or "") or self._slot_by_name(exc.location)
            if slot is not None:
                slot.mark_unavailable(str(exc))
                listings.pop(slot.key, None)
            log.error("%s", exc)
            self._record("error", path, exc.location or "", str(exc))
        except FileVanished:
            log.debug("%s vanished while syncing; its own event will follow", path)
        except FileChanged:
            log.info("%s changed while it was being synced; planning it again", path)
            for key in listings:
                self._retry_paths[(key, path)] = time.monotonic() + self.settings.debounce
        except (FileSyncError, OSError) as exc:
            log.warning("cannot sync %s now (%s); will retry", path, exc)
            self._record("error", path, "", str(exc))
            for key in listings:
                self._retry_paths[(key, path)] = time.monotonic() + RETRY_FAILED_PATH_AFTER
        return []

    def _remember_missed(self, path: str, listings: dict[str, Listing]) -> None:
        """Mark ``path`` stale for every location that was not part of this decision."""
        for slot in self._slots.values():
            if slot.key not in listings and path not in slot.stale:
                slot.stale.add(path)
                self.index.mark_stale(slot.key, path)

    def _slot_by_name(self, name: str | None) -> Slot | None:
        for slot in self._slots.values():
            if slot.location.name == name:
                return slot
        return None

    def _propagate_rename(self, origin: Slot, src: str, dst: str) -> None:
        """Rename in the other locations instead of re-copying, where that is safe."""
        if self._ignore.ignored(src) or self._ignore.ignored(dst):
            return
        old = origin.index.get(src)
        try:
            moved = origin.location.stat(dst)
            if moved is None or moved != old or origin.location.stat(src) is not None:
                return  # not a plain rename of a synced file: the planner handles it
            everywhere = True
            for slot in self._available():
                loc = slot.location
                if slot is origin:
                    continue
                if (
                    not loc.capabilities.can_rename
                    or slot.index.get(src) is None
                    or loc.stat(src) != slot.index.get(src)
                    or loc.stat(dst) is not None
                ):
                    everywhere = False  # the planner copies and deletes there instead
                    continue
                with loc.batch():
                    meta = loc.rename(src, dst)
                slot.renames += 1
                self._move_row(slot, src, dst, meta)
                self._record("renamed", dst, loc.name, f"from {src}")
            if everywhere:
                self._move_row(origin, src, dst, moved)
        except FileSyncError as exc:
            log.info("rename %s -> %s not propagated (%s); copying instead", src, dst, exc)

    def _move_row(self, slot: Slot, src: str, dst: str, meta: FileMeta) -> None:
        slot.index.pop(src, None)
        self.index.remove(slot.key, src)
        slot.index[dst] = meta
        self.index.put(slot.key, dst, meta)

    def _record(self, action: str, path: str, location: str, detail: str) -> None:
        entry = Activity(time.time(), action, path, location, detail)
        with self._lock:
            self._activity.append(entry)
        if action in ("copied", "deleted", "renamed"):
            log.info("%s %s in %s %s", action, path, location, detail)
        for listener in list(self._listeners):
            try:
                listener(entry)
            except Exception:
                log.exception("activity listener failed")
