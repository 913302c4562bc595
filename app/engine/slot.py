"""The engine's bookkeeping for one location: its last-known files, state and counters."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

from app.engine.status import LocationState, LocationStatus
from app.engine.workers import Late, Worker
from app.errors import LocationBusy
from app.locations.base import FileMeta, Listing, Location
from app.watch.watcher import Watcher

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Slot:
    """One location as the engine tracks it. Only the engine thread mutates a slot."""

    location: Location
    #: The last-known meta of every file in this location (its rows of the state index).
    known: dict[str, FileMeta] = field(default_factory=dict)
    watcher: Watcher | None = None
    state: LocationState = LocationState.SYNCING
    error: str = ""
    last_sync: float | None = None
    held_deletes: set[str] = field(default_factory=set)
    stale: set[str] = field(default_factory=set)
    writes: int = 0
    deletes: int = 0
    renames: int = 0
    pending: int = 0
    next_retry: float = 0.0
    retry_delay: float = 1.0
    #: Paths this location refused to take (read-only, full, ...), with the attempts so far.
    failing: dict[str, int] = field(default_factory=dict)
    #: The thread that runs this location's I/O (see :mod:`app.engine.workers`).
    worker: Worker = field(init=False)
    #: Paths to sync again once the stalled location answers; ``needs_full``: rescan it all.
    parked: set[str] = field(default_factory=set)
    needs_full: bool = False
    #: A scan that answered after its deadline, used by the catch-up instead of scanning again.
    late_listing: Listing | None = None
    #: Stats that answered after their deadline, likewise.
    late_stats: dict[str, FileMeta | None] = field(default_factory=dict)
    #: A scan started ahead of the first full sync (it runs while the index rows load).
    prefetched: Future[Listing] | None = None

    def __post_init__(self) -> None:
        self.worker = Worker(self.location.name)

    @property
    def key(self) -> str:
        """The location's index key."""
        return self.location.key

    @property
    def available(self) -> bool:
        """True unless the location is unreachable (an ERROR location still syncs)."""
        return self.state is not LocationState.UNAVAILABLE

    def mark_unavailable(self, error: str) -> None:
        """Stop using the location until a retry or the watcher says it is back."""
        self.state = LocationState.UNAVAILABLE
        self.error = error
        self.next_retry = time.monotonic() + self.retry_delay
        self.retry_delay = min(self.retry_delay * 2, 60.0)

    @property
    def ready(self) -> bool:
        """Available and answering: the engine gives it work now."""
        return self.available and not self.worker.stalled

    def run(self, call: Callable[[], T], deadline: float | None, on_late: Late | None = None) -> T:
        """Run ``call`` on this location's worker, marking the location stalled on a timeout."""
        try:
            return self.worker.run(call, deadline, on_late)
        except LocationBusy as exc:
            self.mark_stalled(exc)
            raise

    def mark_stalled(self, exc: LocationBusy) -> None:
        """Show that the location is not answering (once per stall in the log)."""
        if self.state is not LocationState.UNAVAILABLE and self.error != str(exc):
            if self.state is not LocationState.ERROR:
                log.warning("%s", exc)
            self.state = LocationState.ERROR
            self.error = str(exc)

    def mark_failed(self, path: str, error: str) -> int:
        """``path`` could not be written or deleted here; return how often that happened."""
        attempts = self.failing.get(path, 0) + 1
        self.failing[path] = attempts
        self.state = LocationState.ERROR
        self.error = error
        return attempts

    def clear_failed(self, path: str) -> None:
        """``path`` caught up here; the error goes once no path is failing any more."""
        cleared = self.failing.pop(path, None) is not None and not self.failing
        if cleared and self.state is LocationState.ERROR and not self.held_deletes:
            self.state = LocationState.OK
            self.error = ""

    def mark_ok(self) -> None:
        """The location synced cleanly; an ERROR set by held deletes or failing paths stays."""
        self.last_sync = time.time()
        self.retry_delay = 1.0
        if self.held_deletes or self.failing:
            self.state = LocationState.ERROR
        else:
            self.state = LocationState.OK
            self.error = ""

    def snapshot(self) -> LocationStatus:
        """Plain-data status for the front ends."""
        return LocationStatus(
            key=self.key,
            name=self.location.name,
            kind=self.location.kind,
            state=self.state,
            last_sync=self.last_sync,
            pending=self.pending + len(self.parked),
            last_error=self.error,
            file_count=len(self.known),
        )
