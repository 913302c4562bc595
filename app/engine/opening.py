"""Locations coming and going: opening, watching, closing, reopening and catching up.

A location that cannot be opened is marked unavailable and reopened by the engine's timer
(:meth:`Opener.retry_unavailable`); one that stalled (a call missed its deadline) is caught up
once its late call ends (:meth:`Opener.catch_up`). Opening runs on the location's worker, so a
server that accepts the connection but never answers does not hold up the engine thread.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial

from app.engine import calls
from app.engine.index import StateIndex
from app.engine.queue import ChangeQueue
from app.engine.slot import Slot
from app.engine.status import LocationState, Recorder
from app.engine.sync import Syncer
from app.errors import FileSyncError
from app.locations.base import Location
from app.watch.watcher import Watcher

log = logging.getLogger(__name__)


class Opener:
    """Opens and closes the engine's slots; only the engine thread calls it once running."""

    def __init__(
        self,
        slots: dict[str, Slot],
        index: StateIndex,
        queue: ChangeQueue,
        syncer: Syncer,
        record: Recorder,
        *,
        poll_interval: float | None,
        paused: Callable[[], bool],
    ) -> None:
        self.slots = slots
        self.index = index
        self.queue = queue
        self.syncer = syncer
        self.record = record
        self.poll_interval = poll_interval
        self.paused = paused

    def new_slot(self, location: Location) -> Slot:
        """A slot for ``location`` whose worker wakes the engine when a late call ends."""
        slot = Slot(location, record=self.record)
        slot.worker.wake = lambda: self.queue.put(partial(self.catch_up, slot))
        return slot

    def catch_up(self, slot: Slot) -> None:
        """A stalled location's late call ended: record its result, then catch the location up."""
        if self.slots.get(slot.key) is not slot or not slot.worker.collect():
            return
        if self.paused() or not slot.available or slot.worker.stalled:
            return  # resuming, reopening or the next answer catches it up
        log.info("%s answers again; catching up", slot.location.name)
        if not slot.failing and not slot.held_deletes:
            slot.state = LocationState.SYNCING
        if slot.needs_full:
            self.syncer.full_sync("catching up")
        else:
            paths, slot.parked = slot.parked, set()
            self.syncer.sync_paths(paths, "catching up")
            if slot.state is LocationState.SYNCING:
                slot.mark_ok()

    def open_all(self, watch: bool, then: Callable[[Slot], None]) -> None:
        """Load every location's index rows, then open each, calling ``then`` (its first scan)
        once it is open.

        The rows load before the scans start, not while they run: ``sqlite3`` lets go of the
        interpreter lock at every row, and the scan threads took it each time, so loading
        beside them cost more in lock hand-overs than it saved (a 100,000-file restart made
        three times the context switches and took longer). The scans of all locations still
        run at once, on their own workers.
        """
        for slot in self.slots.values():
            self._load(slot)
        for slot in self.slots.values():
            self.open(slot, watch, then, load=False)

    def open(
        self,
        slot: Slot,
        watch: bool,
        then: Callable[[Slot], None] | None = None,
        *,
        load: bool = True,
    ) -> bool:
        """Open, adopt and watch a location; False (and marked unavailable) if that fails.

        Runs on the location's worker: a server that accepts the connection but never answers
        must not hold up the engine thread. ``then`` is called once it is open, before its
        index rows are loaded (unless ``load`` is False: the caller loads them later): a first
        scan started there runs while they load.
        """
        loc = slot.location
        sink = self.queue.put if watch else None
        history = self.index.has_history(loc.key)
        poll = self.poll_interval
        opening = partial(calls.open_and_watch, loc, history, slot.watcher, sink, poll)
        try:
            watcher = slot.run(opening, self.syncer.io.deadline, partial(self._late_open, slot))
        except FileSyncError as exc:
            if load:
                self._load(slot)
            slot.fail(exc)
            return False
        self._opened(slot, watcher)
        if then is not None:
            then(slot)
        if load:
            self._load(slot)
        return True

    def _load(self, slot: Slot) -> None:
        """The location's rows of the state index, into the slot's mirror."""
        slot.known = self.index.load(slot.key)
        slot.stale = self.index.load_stale(slot.key)

    def _opened(self, slot: Slot, watcher: Watcher | None) -> None:
        if watcher is not None:
            slot.watcher = watcher
        slot.recovered()

    def _late_open(self, slot: Slot, future: Future[Watcher | None]) -> None:
        """An open that missed its deadline ended; if it worked, the location is back."""
        if future.exception() is None:
            self._opened(slot, future.result())
            slot.needs_full = True

    def close(self, slot: Slot) -> None:
        """Stop the location's watcher and close it (errors while closing are ignored)."""
        if slot.watcher is not None:
            slot.watcher.stop()
            slot.watcher = None
        with contextlib.suppress(Exception):
            slot.location.close()

    def retry_unavailable(self, watch: bool) -> None:
        """Reopen every unavailable location whose retry is due; catch up if one came back.

        A failed attempt pushes the next one out (:meth:`Slot.fail`), a successful one says
        the location is back (:meth:`Slot.recovered`).
        """
        now = time.monotonic()
        back = False
        for slot in self.slots.values():
            if slot.available or slot.next_retry > now:
                continue
            back = self.open(slot, watch) or back
        if back:
            self.syncer.full_sync("catching up")
