"""The sync engine: the single consumer of the change queue, and the one decision-maker.

Threads (decided once): every watcher runs its own thread(s) and only puts records on the
:class:`ChangeQueue`; one engine thread takes batches from it, re-reads the truth from each
location, asks :mod:`app.engine.plan` what to do and has :mod:`app.engine.apply` do it. Each
location's I/O runs on that location's worker thread (:mod:`app.engine.workers`), which the
engine thread waits for at most ``io_deadline`` once watching, so a stalled location only
delays itself; only the engine thread mutates slots and the index. The
public methods below are safe to call from any thread: they either read a snapshot under a lock
or post a command to the queue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial

from app.engine import calls
from app.engine.index import StateIndex
from app.engine.queue import ChangeQueue
from app.engine.slot import Slot
from app.engine.statehold import StateHold
from app.engine.status import Activity, EngineStatus, LocationState
from app.engine.stopping import SyncStopped
from app.engine.sync import Syncer
from app.engine.workers import DEFAULT_DEADLINE
from app.errors import (
    FileSyncError,
    LocationBusy,
    StateIndexUnwritable,
)
from app.locations.base import Location
from app.locations.overlap import check_new_location, check_overlaps
from app.messages import shown
from app.watch.change import Change, ChangeKind
from app.watch.watcher import Watcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSettings:
    """Tunables; the defaults are what a user gets."""

    debounce: float = 0.05
    poll_interval: float = 2.0
    rescan_interval: float = 900.0
    ignore: tuple[str, ...] = ()
    allow_mass_delete: bool = False
    #: Longest wait for one location's answer while watching; a slower one is parked.
    io_deadline: float = DEFAULT_DEADLINE
    #: Seconds a file may grow without pause before it is copied as it is (a busy log).
    settle_bound: float = 60.0


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
        check_overlaps(locations, state_dir=index.path.parent)
        self._slots: dict[str, Slot] = {}
        for loc in locations:
            if loc.key in self._slots:
                raise FileSyncError(f"{loc.name} is listed twice")
            self._slots[loc.key] = self._new_slot(loc)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._activity: deque[Activity] = deque(maxlen=200)
        self._listeners: list[Callable[[Activity], None]] = []
        self._sync = Syncer(
            self._slots,
            index,
            self._record,
            debounce=self.settings.debounce,
            allow_mass_delete=self.settings.allow_mass_delete,
            ignore=self.settings.ignore,
            stopping=self._stopping,
            settle_bound=self.settings.settle_bound,
        )
        self._thread: threading.Thread | None = None
        self._paused = False
        self._backlog: set[str] = set()
        self._busy = False
        self._next_rescan = 0.0
        self.batches = 0
        self._hold = StateHold()  # on while the state index cannot be saved

    # ----- public API (any thread) -------------------------------------------------------

    def start(self, watch: bool = True) -> None:
        """Open every location, start watchers, run the initial sync, then watch.

        Watchers start BEFORE the initial scan, so nothing changed during the scan is missed.
        Blocks until the initial sync is done; locations that cannot be opened are reported
        unavailable and retried in the background. After :meth:`request_stop` (a signal) it
        returns early, without watching; :meth:`stop` then records what landed.
        """
        for slot in self._slots.values():
            self._open_slot(slot, watch)
        self._busy = True
        try:
            self._sync.full_sync("initial sync")
        except StateIndexUnwritable as exc:
            if not watch:
                raise
            self._state_failed(exc)  # the engine thread retries and catches up
        except SyncStopped:
            log.info("stopped during the initial sync; the next start continues it")
            return
        finally:
            self._busy = False
        self._next_rescan = time.monotonic() + self.settings.rescan_interval
        if watch and not self._stopping.is_set():
            self._sync.io.deadline = self.settings.io_deadline  # from now on, never wait long
            self._thread = threading.Thread(target=self._run, name="filesync-engine", daemon=True)
            self._thread.start()

    def request_stop(self) -> None:
        """Make a running sync end at its next path or chunk (safe from a signal handler)."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop watchers and the engine thread, commit the index, close locations."""
        self._stopping.set()
        self.queue.put(lambda: None)  # wake the engine thread
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for slot in list(self._slots.values()):
            slot.worker.shutdown()  # a stalled call ends at the location's own timeout
            # Take over what it left: a late open's new watcher (closed just below), a late
            # write's or delete's row; then let the worker end what that queued (a batch end).
            slot.worker.collect()
            slot.worker.shutdown()
            self._close_slot(slot)
        self.index.commit()

    def run_once(self) -> bool:
        """Initial sync only (``--once``). True when every location ended up identical."""
        try:
            self.start(watch=False)
            converged = not self._stopping.is_set() and self.converged()
        except SyncStopped:
            converged = False
        finally:
            self.stop()
        return converged

    def converged(self) -> bool:
        """Rescan everything and report whether all locations hold the same files.

        Reads every location on the caller's thread: call it when the engine thread is not
        running (``run_once``, tests after ``start(watch=False)``).
        """
        with self._lock:
            return self._sync.converged()

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
                pending=self.queue.qsize() + len(self._backlog),
                last_sync=max(last) if last else None,
                error=self._hold.message,
            )

    def writes(self, key: str) -> int:
        """How many files the engine wrote into location ``key`` (for tests and benches)."""
        return self._slots[key].writes

    def add_listener(self, callback: Callable[[Activity], None]) -> None:
        """Call ``callback`` (from the engine thread) for every activity record."""
        self._listeners.append(callback)

    def add_location(self, location: Location) -> None:
        """Add a location to the running engine; it gets an initial sync, no restart.

        Raises :class:`~app.errors.LocationsOverlap` at once if it shares a place on the disk
        with a location already synced or with the state folder.
        """
        self._check_overlaps(location)

        def command() -> None:
            if location.key in self._slots:
                raise FileSyncError(f"{location.name} is already synced")
            self._check_overlaps(location)
            slot = self._new_slot(location)
            with self._lock:
                self._slots[location.key] = slot
            self._open_slot(slot, watch=True)
            self._sync.full_sync(f"adding {location.name}")

        self.queue.put(command)

    def _check_overlaps(self, location: Location) -> None:
        with self._lock:
            current = [s.location for s in self._slots.values() if s.location.key != location.key]
        check_new_location(location, current, state_dir=self.index.path.parent)

    def remove_location(self, key: str) -> None:
        """Stop syncing a location and forget its history (its files are left alone)."""

        def command() -> None:
            slot = self._slots.get(key)
            if slot is None:
                return
            slot.worker.shutdown(wait=False)
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
        self._backlog = set()
        self.sync_now()

    def sync_now(self) -> None:
        """Full rescan of every location now (also retries unavailable ones)."""

        def command() -> None:
            for slot in self._slots.values():
                if not slot.available:
                    slot.next_retry = 0.0
            self._retry_unavailable()
            self._sync.full_sync("sync")

        self.queue.put(command)

    def allow_mass_delete(self, key: str | None = None) -> None:
        """Confirm held deletes of one location (or all) and apply them."""

        def command() -> None:
            for slot in self._slots.values():
                if key in (None, slot.key):
                    slot.held_deletes.clear()
            self._sync.full_sync("confirmed deletes", allow_mass_delete=True)

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
                self._retry_state()
                self._handle(batch)
                self._timers()
            except StateIndexUnwritable as exc:
                self._state_failed(exc)
            except SyncStopped:
                log.info("stopped in the middle of a sync; the next start continues it")
            except Exception:  # the engine thread must survive anything a location throws
                log.exception("unexpected error while syncing; will retry these paths")
                self._sync.retry_later(c for c in batch if isinstance(c, Change))
            finally:
                if not self._hold.active:
                    try:
                        self.index.commit()
                    except StateIndexUnwritable as exc:
                        self._state_failed(exc)
                self._busy = False
                self.queue.mark_idle_if_empty()

    def _state_failed(self, exc: StateIndexUnwritable) -> None:
        """Apply nothing until the index can be saved (see :mod:`app.engine.statehold`)."""
        if self._hold.failed(exc):
            log.error("%s", self._hold.message)
            self._record("error", "", "", self._hold.message)

    def _retry_state(self) -> None:
        """When due, try to save the index again; once it works, catch up with a full sync."""
        if not self._hold.due():
            return
        try:
            self.index.commit()
        except StateIndexUnwritable as exc:
            self._state_failed(exc)
            return
        log.info("the state index is saved again; syncing resumes")
        self._handle(list(self._hold.end()))
        if not self._paused:
            self._backlog = set()
            self._sync.full_sync("catching up")

    def _seconds_to_next_timer(self) -> float:
        now = time.monotonic()
        if self._hold.active:
            return max(0.01, self._hold.retry_at - now)
        deadlines = [self._next_rescan]
        deadlines += [s.next_retry for s in self._slots.values() if not s.available]
        deadlines += list(self._sync.retry_paths.values())
        return max(0.01, min(deadlines) - now)

    def _timers(self) -> None:
        now = time.monotonic()
        if self._paused or self._hold.active:
            return
        self._retry_unavailable()
        due = [kp for kp, t in self._sync.retry_paths.items() if t <= now]
        if due:
            for kp in due:
                del self._sync.retry_paths[kp]
            self._sync.sync_paths({p for _, p in due}, "retry")
        if now >= self._next_rescan:
            self._next_rescan = now + self.settings.rescan_interval
            for slot in self._sync.available():
                with contextlib.suppress(LocationBusy):
                    slot.run(slot.location.housekeeping, self._sync.io.deadline)
            self._sync.full_sync("periodic rescan")

    def _handle(self, batch: list[Change | Callable[[], None]]) -> None:
        changes: list[Change] = []
        for item in batch:
            if isinstance(item, Change):
                changes.append(item)
            elif self._hold.active:
                self._hold.keep(item)
            else:
                try:
                    item()
                except StateIndexUnwritable as exc:
                    self._state_failed(exc)
                except (FileSyncError, OSError) as exc:
                    log.error("%s", exc)
                    self._record("error", "", "", str(exc))
        if self._paused or self._hold.active:
            self._backlog.update(c.path or c.location for c in changes)
            return
        if not changes:
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
            self._sync.full_sync("catching up")
            return
        self._sync.sync_changes(changes)

    # ----- opening and closing -----------------------------------------------------------

    def _new_slot(self, location: Location) -> Slot:
        slot = Slot(location)
        slot.worker.wake = lambda: self.queue.put(partial(self._catch_up, slot))
        return slot

    def _catch_up(self, slot: Slot) -> None:
        """A stalled location's late call ended: record its result, then catch the location up."""
        if self._slots.get(slot.key) is not slot or not slot.worker.collect():
            return
        if self._paused or not slot.available or slot.worker.stalled:
            return  # resuming, reopening or the next answer catches it up
        log.info("%s answers again; catching up", slot.location.name)
        if not slot.failing and not slot.held_deletes:
            slot.state = LocationState.SYNCING
        if slot.needs_full:
            self._sync.full_sync("catching up")
        else:
            paths, slot.parked = slot.parked, set()
            self._sync.sync_paths(paths, "catching up")
            if slot.state is LocationState.SYNCING:
                slot.mark_ok()

    def _open_slot(self, slot: Slot, watch: bool) -> bool:
        """Open, adopt and watch a location; False (and marked unavailable) if that fails.

        Runs on the location's worker: a server that accepts the connection but never answers
        must not hold up the engine thread.
        """
        loc = slot.location
        slot.index = self.index.load(loc.key)
        slot.stale = self.index.load_stale(loc.key)
        sink = self.queue.put if watch else None
        history = self.index.has_history(loc.key)
        poll = self.settings.poll_interval
        opening = partial(calls.open_and_watch, loc, history, slot.watcher, sink, poll)
        try:
            watcher = slot.run(opening, self._sync.io.deadline, partial(self._late_open, slot))
        except FileSyncError as exc:
            slot.mark_unavailable(str(exc))
            log.error("%s", exc)
            self._record("error", "", loc.name, str(exc))
            return False
        self._opened(slot, watcher)
        return True

    def _opened(self, slot: Slot, watcher: Watcher | None) -> None:
        if watcher is not None:
            slot.watcher = watcher
        slot.state = LocationState.SYNCING

    def _late_open(self, slot: Slot, future: Future[Watcher | None]) -> None:
        """An open that missed its deadline ended; if it worked, the location is back."""
        if future.exception() is None:
            self._opened(slot, future.result())
            slot.needs_full = True

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
            self._sync.full_sync("catching up")

    def _record(self, action: str, path: str, location: str, detail: str) -> None:
        entry = Activity(time.time(), action, path, location, detail)
        with self._lock:
            self._activity.append(entry)
        if action in ("copied", "deleted", "renamed"):
            log.info("%s %s in %s %s", action, shown(path), location, detail)
        for listener in list(self._listeners):
            try:
                listener(entry)
            except Exception:
                log.exception("activity listener failed")
