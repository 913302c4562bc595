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
from collections.abc import Callable, Sequence

from app.engine.activity import ActivityLog
from app.engine.index import StateIndex
from app.engine.opening import Opener
from app.engine.queue import ChangeQueue
from app.engine.settings import EngineSettings
from app.engine.slot import Slot
from app.engine.statehold import StateHold
from app.engine.status import Activity, EngineStatus
from app.engine.stopping import SyncStopped
from app.engine.sync import Syncer
from app.errors import (
    FileSyncError,
    LocationBusy,
    LocationUnavailable,
    StateIndexUnwritable,
)
from app.locations.base import Location
from app.locations.overlap import check_new_location, check_overlaps
from app.watch.change import Change, ChangeKind

log = logging.getLogger(__name__)


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
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self.activity = ActivityLog()
        self._record = self.activity.record
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
        self._opener = Opener(
            self._slots,
            index,
            self.queue,
            self._sync,
            self._record,
            poll_interval=self.settings.poll_interval,
            paused=lambda: self._paused,
        )
        for loc in locations:
            if loc.key in self._slots:
                raise FileSyncError(f"{loc.name} is listed twice")
            self._slots[loc.key] = self._opener.new_slot(loc)
        self._thread: threading.Thread | None = None
        self._paused = False
        self._backlog: set[str] = set()
        self._busy = False
        self._next_rescan = 0.0
        self._hold = StateHold()  # on while the state index cannot be saved

    # ----- public API (any thread) -------------------------------------------------------

    def start(self, watch: bool = True) -> None:
        """Open every location, start watchers, run the initial sync, then watch.

        Watchers start BEFORE the initial scan, so nothing changed during the scan is missed.
        Blocks until the initial sync is done; locations that cannot be opened are reported
        unavailable and retried in the background. After :meth:`request_stop` (a signal) it
        returns early, without watching; :meth:`stop` then records what landed.
        """
        self._sync.keep_listings = not watch  # for converged(), right after
        # each one's first scan overlaps the next one's opening and the initial sync's first steps
        self._opener.open_all(watch, then=self._sync.reader.prefetch)
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
        self._sync.keep_listings = False
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
            self._opener.close(slot)
        self.index.commit()

    def close(self) -> None:
        """Close the state index (after :meth:`stop`, or when the engine never started).

        The engine owns its index: whoever holds the engine closes it, once it is done.
        """
        self.index.close()

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
                activity=self.activity.recent(),
                paused=self._paused,
                syncing=self._busy,
                pending=self.queue.qsize() + len(self._backlog),
                last_sync=max(last) if last else None,
                error=self._hold.message,
            )

    def locations(self) -> tuple[Location, ...]:
        """The synced locations, for :mod:`app.versions` (which only reads their identity)."""
        with self._lock:
            return tuple(s.location for s in self._slots.values())

    def writes(self, key: str) -> int:
        """How many files the engine wrote into location ``key`` (for tests and benches)."""
        return self._slots[key].writes

    def add_listener(self, callback: Callable[[Activity], None]) -> None:
        """Call ``callback`` (from the engine thread) for every activity record."""
        self.activity.add_listener(callback)

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
            slot = self._opener.new_slot(location)
            with self._lock:
                self._slots[location.key] = slot
            self._opener.open(slot, watch=True)
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
            self._opener.close(slot)
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
                slot.retry_now()
            self._opener.retry_unavailable(watch=self._thread is not None)
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
        retry = self._sync.next_retry_at()
        if retry is not None:
            deadlines.append(retry)
        return max(0.01, min(deadlines) - now)

    def _timers(self) -> None:
        now = time.monotonic()
        if self._paused or self._hold.active:
            return
        self._opener.retry_unavailable(watch=self._thread is not None)
        self._sync.retry_due()
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
        for change in changes:
            slot = self._slots.get(change.location)
            if slot is not None and change.kind is ChangeKind.UNAVAILABLE and slot.available:
                # A poller that could not scan: the same outage as any other (its polling
                # ended; reopening the location starts a new watcher).
                slot.fail(LocationUnavailable(change.error))
        self._sync.sync_changes(changes)
